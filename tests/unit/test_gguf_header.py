"""The fast GGUF header reader agrees with the gguf library on real model files."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import gguf
import pytest

from appliance.models.gguf_header import (
    MAX_ITEMS,
    MAX_LISTED,
    MAX_PARAMETERS,
    MAX_TENSORS,
    GgufHeaderError,
    read_header,
    read_header_and_parameters,
)
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


@pytest.mark.parametrize("role", ["chat", "embedding"])
def test_the_parameter_count_matches_gguf_reader(
    role: str, chat_model: Path, embedding_model: Path
) -> None:
    path = chat_model if role == "chat" else embedding_model
    expected = sum(int(t.n_elements) for t in gguf.GGUFReader(str(path)).tensors)
    assert parameter_count(path) == expected
    assert expected > 0
    assert read_gguf_info(path).n_params == expected


def parameter_count(path: Path) -> int | None:
    return read_header_and_parameters(path)[1]


def header_with_tensors(path: Path, tensors: int, infos: bytes) -> Path:
    """A GGUF v3 header with no key/values, declaring `tensors` tensor infos."""
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, tensors, 0) + infos)
    return path


def tensor_info(name: bytes, dims: list[int], n_dims: int | None = None) -> bytes:
    count = len(dims) if n_dims is None else n_dims
    return (struct.pack("<Q", len(name)) + name + struct.pack("<I", count)
            + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, 0))  # fmt: skip


def test_hostile_tensor_infos_are_refused(tmp_path: Path) -> None:
    ok = header_with_tensors(
        tmp_path / "ok.gguf", 2, tensor_info(b"a", [3, 4]) + tensor_info(b"b", [5])
    )
    assert parameter_count(ok) == 17
    many = header_with_tensors(tmp_path / "many.gguf", MAX_TENSORS + 1, b"")
    with pytest.raises(GgufHeaderError, match="tensors"):
        parameter_count(many)  # refused before reading (or allocating) anything for them
    deep = header_with_tensors(tmp_path / "deep.gguf", 1, tensor_info(b"a", [1] * 5))
    with pytest.raises(GgufHeaderError, match="dimensions"):
        parameter_count(deep)
    named = header_with_tensors(tmp_path / "named.gguf", 1, tensor_info(b"n" * 300, [3]))
    with pytest.raises(GgufHeaderError, match="name of 300 bytes"):
        parameter_count(named)  # refused before the name is read
    huge = header_with_tensors(tmp_path / "huge.gguf", 2, tensor_info(b"a", [2**64 - 1] * 4) * 2)
    assert parameter_count(huge) == MAX_PARAMETERS  # clamped: no overflow downstream
    short = header_with_tensors(tmp_path / "short.gguf", 3, tensor_info(b"a", [3, 4]))
    with pytest.raises(GgufHeaderError, match="truncated"):
        parameter_count(short)  # declares three tensors, holds one


def test_a_split_models_count_is_unknown_and_long_arrays_are_refused(tmp_path: Path) -> None:
    split_key = struct.pack("<Q", 11) + b"split.count" + struct.pack("<IH", 2, 3)
    split = tmp_path / "model-00001-of-00003.gguf"
    split.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + split_key + tensor_info(b"a", [7]))
    assert parameter_count(split) is None  # the other files' tensors are not in this one
    items = struct.pack("<Q", 5) + b"words" + struct.pack("<IIQ", 9, 8, MAX_ITEMS + 1)
    long = tmp_path / "long.gguf"
    long.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + items)
    with pytest.raises(GgufHeaderError, match="items"):
        read_header(long)  # refused before looping over them
