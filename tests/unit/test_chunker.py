from __future__ import annotations

import itertools

from appliance.domain.types import Section
from appliance.ingest.chunker import chunk_sections


def words(text: str) -> int:
    return len(text.split())


def test_chunks_respect_size_and_overlap() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(60))
    chunks = chunk_sections([Section(text, page=4, heading="H")], words, 20, 5)
    assert len(chunks) > 5
    assert all(c.tokens <= 20 for c in chunks)
    assert all(c.page == 4 and c.heading == "H" for c in chunks)
    # consecutive chunks share their boundary sentence
    for a, b in itertools.pairwise(chunks):
        assert a.text.split(". ")[-1].rstrip(".") in b.text
    # every sentence is somewhere
    joined = " ".join(c.text for c in chunks)
    assert all(f"Sentence number {i} is here." in joined for i in range(60))


def test_chunks_never_cross_sections() -> None:
    chunks = chunk_sections(
        [Section("Page one text.", page=1), Section("Page two text.", page=2)], words, 50, 10
    )
    assert [(c.text, c.page) for c in chunks] == [("Page one text.", 1), ("Page two text.", 2)]


def test_long_sentences_and_words_are_split() -> None:
    text = "word " * 100 + " " + "x" * 500
    chunks = chunk_sections([Section(text)], lambda t: max(1, len(t) // 5), 16, 4)
    assert all(c.tokens <= 16 for c in chunks)
    assert "".join(c.text for c in chunks).count("x") == 500


def test_original_casing_is_kept() -> None:
    [chunk] = chunk_sections([Section("Hello World. IP 10.0.3.77!")], words, 50, 5)
    assert chunk.text == "Hello World. IP 10.0.3.77!"


def test_empty_sections_give_no_chunks() -> None:
    assert chunk_sections([Section("   \n ")], words, 10, 2) == []
