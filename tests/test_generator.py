"""The bundled generator reuses its stop-string criterion: building one embeds the whole vocabulary."""

from transformers.generation import stopping_criteria

from models.generator import ReplyGenerator


def test_generations_reuse_one_stop_string_criterion():
    generator = ReplyGenerator.from_settings()
    prompts = [generator.prompt("Restate the request.", f"Customer message: where is my card {i}?") + "I understand"
               for i in range(2)]
    stopping_criteria.STOP_STRING_EMBEDDING_CACHE.clear()
    first = generator.generate(prompts, stop_strings=[".", "!", "?"], max_new_tokens=12)
    criterion = generator.stop_criteria([".", "!", "?"])[0]
    for _ in range(3):
        assert generator.generate(prompts, stop_strings=[".", "!", "?"], max_new_tokens=12) == first
    assert generator.stop_criteria([".", "!", "?"])[0] is criterion
    # one embedding of the vocabulary, not one per call (the cache's key changes with get_vocab()'s order)
    assert len(stopping_criteria.STOP_STRING_EMBEDDING_CACHE) == 1
    assert all(text.endswith((".", "!", "?")) or len(text.split()) >= 8 for text in first)
