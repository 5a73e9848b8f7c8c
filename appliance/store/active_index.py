"""Which collection holds the live index, and with which embedding model.

`<data_dir>/index.json` is written when the embedding model is switched: the new
vectors live in a new collection, and this file makes the next start open that one
(with the model `appliance models use` made active). Without the file the collection
is `storage.collection` from the config. Retired collections are listed so the next
start removes the embedded ones' files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

INDEX_FILE = "index.json"


@dataclass
class ActiveIndex:
    collection: str
    embedding: str  # registered model name, or "" for the configured/default model
    retired: list[str] = field(default_factory=list)


def read_active_index(data_dir: Path, default_collection: str) -> ActiveIndex:
    path = data_dir / INDEX_FILE
    if not path.is_file():
        return ActiveIndex(default_collection, "")
    return ActiveIndex(**json.loads(path.read_text()))


def write_active_index(data_dir: Path, index: ActiveIndex) -> None:
    tmp = data_dir / f".{INDEX_FILE}.part"
    tmp.write_text(json.dumps(asdict(index), indent=2) + "\n")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, data_dir / INDEX_FILE)


def remove_retired_edge(data_dir: Path, index: ActiveIndex) -> list[str]:
    """Delete the files of retired embedded (Qdrant Edge) collections; returns them."""
    removed = []
    for name in index.retired:
        directory = data_dir / "edge" / name
        if name != index.collection and directory.is_dir():
            shutil.rmtree(directory)
            removed.append(name)
    if removed:
        index.retired = [n for n in index.retired if n not in removed]
        write_active_index(data_dir, index)
    return removed
