"""Stories that tell events apart (no services): the checks of ``story_events`` and the index that uses them."""

from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agents.alerts.stories import EmbeddingMatrix, StoryIndex, event_facts, normalize, strip_wire
from agents.alerts.story_events import between, conflicts

T = datetime(2026, 3, 2, tzinfo=timezone.utc)


def told_apart(a: str, b: str) -> list[str]:
    return between(event_facts(a), event_facts(b))


def test_opposite_verbs_and_negation_split():
    for a, b, check in [
        ("Kestrel Paper to cut 300 jobs", "Kestrel Paper to add 300 jobs", "direction"),
        ("Corvell Energy raises full-year guidance", "Corvell Energy cuts full-year guidance", "direction"),
        ("Ashby Motors beats quarterly profit estimates", "Ashby Motors misses quarterly profit estimates",
         "direction"),
        ("Ashby Motors shares rise 5% after earnings", "Ashby Motors shares fall 5% after earnings", "direction"),
        ("Apple wins fight against EU tax order", "Apple loses fight against EU tax order", "direction"),
        ("Analysts upgrade Fenwick Steel to buy", "Analysts downgrade Fenwick Steel to sell", "direction"),
        ("Westmere Airlines hires 2,000 pilots", "Westmere Airlines fires 2,000 pilots", "direction"),
        ("Gorse Mining posts annual gain", "Gorse Mining posts annual loss", "direction"),
        ("Regulator approves Marlow merger", "Regulator rejects Marlow merger", "direction"),
        # the same words on both sides cancel out; what differs is the direction
        ("Oil rises as OPEC cuts output", "Oil falls as OPEC cuts output", "direction"),
        ("Norvale Pharma wins approval for migraine drug", "Norvale Pharma denied approval for migraine drug",
         "negation"),
        ("Norvale Pharma wins approval for migraine drug", "Norvale Pharma fails to win approval for migraine drug",
         "negation"),
    ]:
        assert check in told_apart(a, b), (a, b)
        assert check in told_apart(b, a), (b, a)


def test_other_numbers_periods_names_and_roles_split():
    for a, b, check in [
        ("Kestrel Paper to cut 300 jobs", "Kestrel Paper to cut 500 jobs", "number"),
        ("Google hit with 600,000 euro fine", "Google hit with 6 million euro fine", "number"),
        ("Tamsin Foods reports first-quarter results", "Tamsin Foods reports third-quarter results", "period"),
        ("Tamsin Foods reports Q1 results", "Tamsin Foods reports Q3 results", "period"),
        ("Diageo to launch paper bottles in 2021", "Diageo to launch paper bottles in 2023", "period"),
        ("Aeromexico traffic drops 86% in June", "Aeromexico traffic drops 86% in May", "period"),
        ("Wells Fargo preparing to cut thousands of jobs", "Citigroup preparing to cut thousands of jobs", "name"),
        ("Pellham Bank sues Orbis Capital over loan deal", "Orbis Capital sues Pellham Bank over loan deal", "role"),
        ("Quarry Tech to buy Lindell Software", "Lindell Software to buy Quarry Tech", "role"),
        ("Investors sue Deutsche Bank and its CEO", "Deutsche Bank sues investors", "role"),
    ]:
        assert check in told_apart(a, b), (a, b)
        assert check in told_apart(b, a), (b, a)


def test_reprints_and_paraphrases_tell_the_same_event():
    for a, b in [
        ("Harrow Logistics CEO resigns amid accounting probe",
         "Harrow Logistics chief executive resigns amid accounting investigation"),
        ("Brantwood Retail to close 60 stores", "Brantwood Retail will close 60 stores, company says"),
        ("Quarry Tech to buy Lindell Software for $1.1 billion", "Quarry Tech to acquire Lindell Software for $1.1bn"),
        ("Quarry Tech to buy Lindell Software for $1.1 billion", "Quarry Tech to buy Lindell Software for $1,100 mln"),
        ("Tesla registrations halve in second quarter", "Tesla registrations halve in Q2"),
        ("Quarry Tech agrees to buy Lindell Software", "Lindell Software to be acquired by Quarry Tech"),
        ("Oil rises as International Energy Agency boosts demand forecast", "Oil rises as IEA boosts demand forecast"),
        ("J.C. Penney to cut 1,000 jobs, close 152 stores", "J.C. Penney to cut 1,000 jobs"),  # a number dropped
        ("Kestrel Paper to cut 300 jobs", "UPDATE 1-KESTREL PAPER TO CUT 300 JOBS - Reuters"),
        ("Tarrant Foods says it will not cut jobs", "Tarrant Foods rules out job cuts"),
    ]:
        assert told_apart(a, b) == [], (a, b)
        assert told_apart(b, a) == [], (b, a)


def fake_unit(seed: int, near: np.ndarray | None = None, cosine: float = 1.0) -> np.ndarray:
    """A fake headline embedding: random, or at ``cosine`` from ``near``."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=16)
    if near is None:
        return v / np.linalg.norm(v)
    v -= (v @ near) * near
    v /= np.linalg.norm(v)
    return cosine * near + np.sqrt(1 - cosine ** 2) * v


def test_the_index_joins_paraphrases_by_cosine_and_keeps_opposite_events_apart():
    index = StoryIndex(threshold=0.6, horizon_s=48 * 3600, cosine=0.8)
    base = fake_unit(1)
    first = index.assign("a", "Harrow Logistics CEO resigns amid accounting probe", T, base)
    assert first.new and first.embedding is not None
    # few shared words (Jaccard well below 0.6), but a cosine above the threshold: one story
    para = index.assign("b", "Harrow Logistics chief executive quits amid accounting investigation",
                        T + timedelta(minutes=1), fake_unit(2, base, 0.9))
    assert para.story_id == first.story_id and abs(para.similarity - 0.9) < 1e-5
    # the same cosine below the threshold: a story of its own
    far = index.assign("c", "Harrow Logistics shares slide as auditors flag gaps in its books",
                       T + timedelta(minutes=2), fake_unit(3, base, 0.5))
    assert far.story_id != first.story_id
    # an identical embedding and most words shared, but the opposite event: a story of its own
    jobs = index.assign("d", "Kestrel Paper to cut 300 jobs", T, fake_unit(4))
    added = index.assign("e", "Kestrel Paper to add 300 jobs", T + timedelta(minutes=3), fake_unit(4))
    assert added.new and added.story_id != jobs.story_id
    # without embeddings, the Jaccard rule and the same checks
    plain = StoryIndex(threshold=0.5, horizon_s=48 * 3600)
    cut = plain.assign("f", "Kestrel Paper to cut 300 jobs at its Ohio mills", T)
    assert plain.assign("g", "Kestrel Paper to cut 500 jobs at its Ohio mills", T).story_id != cut.story_id
    assert plain.assign("h", "Kestrel Paper will cut 300 jobs at its Ohio mills", T).story_id == cut.story_id


def test_evicted_stories_leave_the_embedding_matrix_and_their_rows_are_reused():
    matrix = EmbeddingMatrix()
    a, b = fake_unit(5), fake_unit(6)
    matrix.add("a", a)
    matrix.add("b", b)
    assert matrix.near(a, 0.99) == ["a"]
    matrix.remove("a")
    assert matrix.near(a, 0.99) == []
    matrix.add("c", b)  # takes the freed row
    assert sorted(matrix.near(b, 0.99)) == ["b", "c"] and matrix.near(a, 0.99) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.text(max_size=400))
def test_checks_and_grouping_never_raise_and_a_headline_joins_its_own_reprint(a, b):
    normalize(a)
    conflicts(strip_wire(a), strip_wire(b))
    index = StoryIndex()
    first = index.assign("a", a, T, fake_unit(7))
    index.assign("x", b, T, fake_unit(8))
    if normalize(a):
        assert index.assign("b", a, T + timedelta(minutes=1), fake_unit(7)).story_id == first.story_id
        assert index.assign("c", f"UPDATE 1-{a}", T + timedelta(minutes=2), fake_unit(7)).story_id == first.story_id


def test_words_that_say_the_same_thing_are_one_and_opposite_ones_are_not():
    from agents.alerts.stories import normalize, shingles, jaccard
    from agents.alerts.story_events import event_words

    def words(h):
        return event_words(normalize(h))

    assert words("Boots to axe 4,000 jobs") == words("Boots to cut 4,000 jobs") == words("Boots trims 4,000 jobs")
    assert words("U.S. deficit hits $864 bln") == words("US deficit hits $864 billion")
    assert words("Eastfield Bank CEO steps down") == words("Eastfield Bank chief executive resigns")
    assert words("Kestrel Paper to cut 300 jobs") != words("Kestrel Paper to add 300 jobs")
    assert jaccard(shingles(normalize("Disney to shut Hong Kong Disneyland again")),
                   shingles(normalize("Disney to close Hong Kong Disneyland again"))) == 1.0


def test_verbs_that_create_delay_accept_withdraw_or_stay_move_their_axis():
    for a, b in [
        ("Tamsin Foods to cut 800 roles", "Tamsin Foods to create 800 roles"),
        ("Westmere Airlines delays Lisbon flights", "Westmere Airlines resumes Lisbon flights"),
        ("Harrow Logistics to reject state loan", "Harrow Logistics to accept state loan"),
        ("Watchdog files complaint against Orbis Capital", "Watchdog withdraws complaint against Orbis Capital"),
        ("Index adds Quarry Tech", "Index removes Quarry Tech"),
        ("Ashby Motors extends plant shutdown", "Ashby Motors ends plant shutdown"),
        ("Gorse Mining CEO quits after audit", "Gorse Mining CEO stays after audit"),
        ("Ministry eases export curbs", "Ministry tightens export curbs"),
    ]:
        assert "direction" in told_apart(a, b), (a, b)
        assert "direction" in told_apart(b, a), (b, a)


def test_wire_synonyms_and_falling_short_read_as_one_word():
    from agents.alerts.story_events import event_words

    def words(h):
        return event_words(normalize(h))

    assert words("UK watchdog opens probe into Orbis") == words("UK regulator opens investigation into Orbis")
    assert words("Ashby Motors profit falls short of estimates") == words("Ashby Motors profit misses estimates")
    assert words("Norvale Pharma turns down offer") == words("Norvale Pharma rejects offer")
    assert words("Corvell Energy profit tops estimates") == words("Corvell Energy profit beats estimates")


def test_the_first_move_on_an_axis_the_other_way_is_another_event():
    # the same moves in another order: the multiset of moves cannot tell them apart
    assert "direction" in conflicts("Dollar falls, euro hovers at four-month high",
                                    "Dollar rises, euro slips from four-month high")
    assert "direction" not in conflicts("Corvell Energy output up 4% in second quarter",
                                        "Corvell Energy Q2 output rises 4 percent")


def test_a_story_just_above_the_threshold_comes_back_from_the_index():
    """MinHash only estimates Jaccard: the index is tuned below the threshold so the exact value decides."""
    a, b = "Kestrel Paper wins contract from Brantwood Retail", "Kestrel Paper wins Brantwood Retail contract"
    from agents.alerts.stories import normalize, shingles, jaccard

    assert 0.6 <= jaccard(shingles(normalize(a)), shingles(normalize(b))) < 0.75
    index = StoryIndex(threshold=0.6, horizon_s=48 * 3600)
    first = index.assign("a", a, T)
    assert index.assign("b", b, T + timedelta(minutes=1)).story_id == first.story_id


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
@example("Kestrel Paper to cut 300 jobs, says the U.S. unit of its parent")
def test_event_words_of_any_text_are_words_and_leave_small_words_out(text):
    from agents.alerts.story_events import _STOP, event_words

    words = event_words(normalize(text))
    assert all(w and " " not in w for w in words)
    assert not [w for w in words if w in _STOP]
    assert event_words(normalize(text)) == words
