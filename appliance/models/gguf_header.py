"""The scalar key/values of a GGUF header, read in milliseconds.

`gguf.GGUFReader` builds numpy fields for every key, tensor info included, so the
tokenizer arrays make it slow: measured here, 2.3 s for SmolLM2-135M (49k tokens) and
~1 s for MiniLM, paid on every start before the API could answer. Sizing needs a dozen
scalars, so this walks the key/value section (GGUF v2/v3), skipping arrays by length.
tests/unit/test_gguf_header.py checks it against `gguf.GGUFReader` on real files.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
# GGUF value types -> struct format of a fixed-size scalar
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
STRING, ARRAY = 8, 9
MAX_STRING = 1 << 24  # a longer key or string value is a damaged or hostile file
MAX_LISTED = 4096  # numeric arrays up to this long are returned (per-layer values)
MAX_ITEMS = 1 << 24  # a longer array (a vocabulary is ~10^5) is a damaged or hostile file
MAX_KEYS = 1 << 16  # key/values; real headers hold a few dozen
MAX_TENSORS = 1 << 20  # tensor infos
MAX_NAME = 256  # a tensor's name (llama.cpp's GGML_MAX_NAME is 64)
MAX_DIMS = 4  # a tensor's dimensions (GGML_MAX_DIMS)
MAX_PARAMETERS = 10**15  # a count above this is clamped (no float overflows downstream)


class GgufHeaderError(ValueError):
    """Not a GGUF file, or a damaged header."""


def _read(fh: BinaryIO, size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise GgufHeaderError("truncated header")
    return data


def _string(fh: BinaryIO) -> bytes:
    (length,) = struct.unpack("<Q", _read(fh, 8))
    if length > MAX_STRING:
        raise GgufHeaderError(f"a string of {length} bytes in the header")
    return _read(fh, length)


def _array(fh: BinaryIO) -> list[object] | None:
    """A short numeric array (per-layer values) as a list; others are skipped: None."""
    item_type, count = struct.unpack("<IQ", _read(fh, 12))
    if count > MAX_ITEMS:
        raise GgufHeaderError(f"an array of {count} items in the header")
    if item_type == STRING:
        for _ in range(count):
            (length,) = struct.unpack("<Q", _read(fh, 8))
            if length > MAX_STRING:
                raise GgufHeaderError(f"a string of {length} bytes in the header")
            fh.seek(length, 1)
        return None
    if item_type not in SCALARS:
        raise GgufHeaderError(f"array of value type {item_type}")
    fmt = SCALARS[item_type]
    size = struct.calcsize(fmt)
    if count > MAX_LISTED:
        fh.seek(size * count, 1)
        return None
    return [v for (v,) in struct.iter_unpack(fmt, _read(fh, size * count))]


def _key_values(fh: BinaryIO) -> tuple[dict[str, object], int]:
    """The header's key/values and its tensor count, `fh` left at the tensor infos."""
    if fh.read(4) != MAGIC:
        raise GgufHeaderError("GGUF magic invalid")
    version, tensors, kv_count = struct.unpack("<IQQ", _read(fh, 20))
    if version not in (2, 3):
        raise GgufHeaderError(f"GGUF version {version} is not supported")
    if kv_count > MAX_KEYS:
        raise GgufHeaderError(f"{kv_count} key/values in the header")
    values: dict[str, object] = {}
    for _ in range(kv_count):
        key = _string(fh).decode("utf-8", "replace")
        (value_type,) = struct.unpack("<I", _read(fh, 4))
        if value_type in SCALARS:
            fmt = SCALARS[value_type]
            (values[key],) = struct.unpack(fmt, _read(fh, struct.calcsize(fmt)))
        elif value_type == STRING:
            values[key] = _string(fh).decode("utf-8", "replace")
        elif value_type == ARRAY:
            values[key] = _array(fh)
        else:
            raise GgufHeaderError(f"value type {value_type} of {key}")
    return values, tensors


def read_header(path: Path) -> dict[str, object]:
    """Every scalar and string key of the header; short numeric arrays as lists, other
    arrays (the tokenizer's) as None."""
    with path.open("rb") as fh:
        return _key_values(fh)[0]


def read_header_and_parameters(path: Path) -> tuple[dict[str, object], int | None]:
    """`read_header`'s key/values, and the model's weights counted from the tensor infos
    that follow them (the product of each tensor's dimensions; nothing of the data is
    read). The count is None for one file of a split model (`split.count` > 1): the
    other files' tensors are not in it."""
    with path.open("rb") as fh:
        values, tensors = _key_values(fh)
        if tensors > MAX_TENSORS:
            raise GgufHeaderError(f"{tensors} tensors in the header")
        total = 0
        for _ in range(tensors):
            (length,) = struct.unpack("<Q", _read(fh, 8))
            if length > MAX_NAME:
                raise GgufHeaderError(f"a tensor name of {length} bytes")
            _read(fh, length)
            (n_dims,) = struct.unpack("<I", _read(fh, 4))
            if n_dims > MAX_DIMS:
                raise GgufHeaderError(f"a tensor of {n_dims} dimensions")
            count = 1
            for (dim,) in struct.iter_unpack("<Q", _read(fh, 8 * n_dims)):
                count *= dim
            total = min(total + count, MAX_PARAMETERS)
            _read(fh, 12)  # type (u32) and offset (u64)
    split = values.get("split.count")
    if isinstance(split, int) and split > 1:
        return values, None
    return values, total
