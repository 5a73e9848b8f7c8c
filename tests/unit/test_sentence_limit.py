"""An answer stops once it has said its sentences (issue 22, shorter answers): pure."""

from __future__ import annotations

import pytest

from appliance.query.sentence_limit import SentenceLimit


def run(limit: int, pieces: list[str]) -> tuple[str, bool]:
    stop = SentenceLimit(limit)
    kept: list[str] = []
    for piece in pieces:
        kept.append(stop.feed(piece))
        if stop.reached:
            break
    return "".join(kept), stop.reached


def test_stops_when_the_sentence_after_the_last_allowed_begins() -> None:
    pieces = ["Backups", " are kept", " 35 days", " [1].", " They", " run", " nightly."]
    assert run(1, pieces) == ("Backups are kept 35 days [1].", True)
    assert run(2, pieces) == ("Backups are kept 35 days [1]. They run nightly.", False)


def test_a_piece_holding_both_sentences_is_cut_between_them() -> None:
    assert run(1, ["It is 35 days. Then", " more."]) == ("It is 35 days.", True)


@pytest.mark.parametrize(
    "text",
    [
        "Use e.g. the pg_dump tool with 3.5 GB free",  # lowercase and digits after a dot
        "Run it:\n- first step\n- second step",  # line breaks alone end nothing
        "Version 15. is not a sentence end",  # lowercase after the space
    ],
)
def test_no_false_ends(text: str) -> None:
    assert run(1, [text, " More."]) == (text + " More.", False)


def test_no_limit_keeps_everything() -> None:
    assert run(0, ["One. Two. Three."]) == ("One. Two. Three.", False)


def test_nothing_is_kept_after_the_limit() -> None:
    stop = SentenceLimit(1)
    assert stop.feed("Done. Next") == "Done."
    assert stop.reached and stop.feed(" words.") == ""
