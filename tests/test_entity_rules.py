"""Word splitting, ticker rules, IOB2 merging and sub-word alignment (no trained weights needed)."""

from transformers import AutoTokenizer

from models.encoder import (
    SHAPE_LOWER,
    SHAPE_PAD,
    SHAPE_TITLE,
    SHAPE_UPPER,
    base_encoder_path,
    word_shape,
)
from models.entities import (
    IGNORE,
    encode_words,
    find_tickers,
    split_words,
    tags_to_spans,
)


def words_of(text):
    return [text[a:b] for a, b in split_words(text)]


def test_split_words_is_ptb_like_and_offsets_match():
    text = "U.S. stocks rose 2.5% on Macy's results, (NASDAQ: AAPL) said."
    assert words_of(text) == ["U.S.", "stocks", "rose", "2.5%", "on", "Macy", "'s", "results", ",", "(",
                              "NASDAQ", ":", "AAPL", ")", "said", "."]
    for a, b in split_words(text):
        assert text[a:b].strip() == text[a:b]


def test_cashtags_and_exchange_tickers():
    text = "Shares of $AAPL and $brk.b fell; Nokia (NYSE: NOK) and Fortum (Nasdaq Helsinki: FORTUM) rose. $5 is no ticker."
    tickers = find_tickers(text)
    assert [(t.text, t.label) for t in tickers] == [("AAPL", "TICKER"), ("brk.b", "TICKER"), ("NOK", "TICKER"),
                                                     ("FORTUM", "TICKER")]
    for t in tickers:
        assert text[t.start:t.end] == t.text


def test_tags_to_spans_merges_words_and_repairs_stray_inside_tags():
    tags = ["B-ORG", "I-ORG", "O", "I-PER", "I-PER", "B-LOC", "B-LOC", "I-MISC"]
    assert tags_to_spans(tags) == [("ORG", 0, 1), ("PER", 3, 4), ("LOC", 5, 5), ("LOC", 6, 6), ("MISC", 7, 7)]


def test_word_shapes():
    assert word_shape("nokia") == SHAPE_LOWER
    assert word_shape("Nokia") == SHAPE_TITLE
    assert word_shape("NOKIA") == SHAPE_UPPER


def test_encode_words_labels_first_sub_token_only():
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path())
    words = [["Supercalifragilistic", "Holdings", "rose"], []]
    features = encode_words(tokenizer, words, 64, [[3, 4, 0], []])
    f = features[0]
    labelled = [(pos, lab) for pos, lab in enumerate(f["labels"]) if lab != IGNORE]
    assert [lab for _, lab in labelled] == [3, 4, 0]
    assert [pos for pos, _ in labelled] == f["_first"]
    assert f["_words"] == [0, 1, 2]
    assert len(f["input_ids"]) > 5  # the long word was split into several sub-tokens
    assert features[1]["_first"] == []


def test_encode_words_survives_words_without_sub_tokens():
    """A word the tokenizer drops (a zero-width space) gets no sub-token: it is left out of
    ``_first``/``_words`` and its label is dropped, while the other words keep their own index."""
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path())
    f = encode_words(tokenizer, [["Nokia", "\u200b", "rose"]], 64, [[3, 5, 0]])[0]
    assert tokenizer.convert_ids_to_tokens(f["input_ids"]) == ["[CLS]", "nokia", "rose", "[SEP]"]
    assert f["_words"] == [0, 2]  # word 1 skipped, word 2 keeps its index
    assert f["_first"] == [1, 2]
    assert f["labels"] == [IGNORE, 3, 0, IGNORE]  # word 1's label (5) appears nowhere
    assert f["shape_ids"] == [SHAPE_PAD, SHAPE_TITLE, SHAPE_LOWER, SHAPE_PAD]
    assert encode_words(tokenizer, [["Nokia", "\u200b", "rose"]], 64)[0]["_words"] == [0, 2]
