"""The fast GGUF header reader agrees with the gguf library on real model files."""

from __future__ import annotations

import time
from pathlib import Path

import gguf
import pytest

from appliance.models.gguf_header import MAX_LISTED, GgufHeaderError, read_header
from appliance.models.sizing import read_gguf_info

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("role", ["chat", "embedding"])
def test_every_scalar_matches_gguf_reader(
    role: str, chat_model: Path, embedding_model: Path
) -> None:
    path = chat_model if role == "chat" else embedding_model
    started = time.perf_counter()
    header = read_header(path)
    fast = time.perf_counter() - started
    reader = gguf.GGUFReader(str(path))
    compared = 0
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own pseudo-fields (version, counts)
        expected = field.contents()
        if isinstance(expected, list) and (
            len(expected) > MAX_LISTED or (expected and isinstance(expected[0], str))
        ):
            assert header[key] is None, key  # tokenizer arrays are skipped
            continue
        got = header[key]
        if isinstance(expected, float):
            assert got == pytest.approx(expected), key
        else:
            assert got == expected, key
        compared += 1
    assert compared >= 10
    assert read_gguf_info(path).architecture == ("llama" if role == "chat" else "bert")
    print(f"{path.name}: header in {fast * 1000:.1f} ms")


def test_damaged_files_are_refused(tmp_path: Path, chat_model: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(GgufHeaderError, match="magic"):
        read_header(junk)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(chat_model.read_bytes()[:5000])
    with pytest.raises(GgufHeaderError, match="truncated"):
        read_header(cut)
    with pytest.raises(ValueError, match=r"cut\.gguf: not a readable GGUF"):
        read_gguf_info(cut)
