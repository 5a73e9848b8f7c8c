"""The extractive answer quotes each evidence sentence with the neighbour it needs to be
read (as the prompt reads it), verbatim from its passage, and never quotes one twice."""

from __future__ import annotations

from appliance.domain.types import Evidence, Hit
from appliance.query.context import sentences_of
from appliance.query.extract import extractive_answer

TEXT = (
    "Connection options are read at start. The default is 3 seconds. "
    "Setting it to 0 waits forever, which is rarely what anyone wants in production. "
    "This applies to every client tool shipped with the server package today. "
    "Among the options that the tool accepts on its command line there is one more:\n"
    "--timeout=SECONDS sets how long it waits."
)
HIT = Hit("p1", 0.9, "d1", "tool.html", 0, TEXT)


def sentences() -> list[str]:
    return [s.text for s in sentences_of([HIT])[0]]


def evidence_of(index: int) -> Evidence:
    s = sentences_of([HIT])[0][index]
    return Evidence("d1", "tool.html", 0, s.start, s.end, s.text, 0.5, 1)


def test_the_passage_splits_as_the_tests_expect() -> None:
    assert len(sentences()) == 6 and sentences()[5].startswith("--timeout")


def test_a_short_or_colon_sentence_brings_the_next_and_a_this_one_the_previous() -> None:
    s = sentences()
    # "The default is 3 seconds." is short: the next one too; "This applies ..." needs
    # the one before, said already: itself only; the colon one: with the option after it
    answer = extractive_answer([evidence_of(1), evidence_of(3), evidence_of(4)], [HIT])
    assert answer == f"{s[1]} {s[2]} [1] {s[3]} [1] {s[4]} {s[5]} [1]"


def test_an_evidence_quoted_already_with_a_neighbour_is_not_quoted_again() -> None:
    s = sentences()
    assert extractive_answer([evidence_of(1), evidence_of(2)], [HIT]) == f"{s[1]} {s[2]} [1]"


def test_a_long_sentence_is_quoted_alone_and_no_evidence_says_so() -> None:
    assert extractive_answer([evidence_of(2)], [HIT]) == f"{sentences()[2]} [1]"
    assert "no passage" in extractive_answer([], [])
