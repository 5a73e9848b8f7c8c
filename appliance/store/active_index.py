"""Which collection holds the live index, and with which embedding model.

`<data_dir>/index.json` is written when the embedding model is switched: the new
vectors live in a new collection, and this file makes the next start open that one
(with the model `appliance models use` made active). Without the file the collection
is `storage.collection` from the config. Retired collections are listed so the next
start removes the embedded ones' files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.runtime.files import write_atomic

INDEX_FILE = "index.json"


@dataclass
class ActiveIndex:
    collection: str
    embedding: str  # registered model name, or "" for the configured/default model
    retired: list[str] = field(default_factory=list)
    # SHA-256 of the embedding GGUF the vectors came from; every start compares it with
    # the model it loads (whatever the config or the registry says)
    embedding_sha256: str = ""


def read_active_index(data_dir: Path, default_collection: str) -> ActiveIndex:
    path = data_dir / INDEX_FILE
    if not path.is_file():
        return ActiveIndex(default_collection, "")
    return ActiveIndex(**json.loads(path.read_text()))


def write_active_index(data_dir: Path, index: ActiveIndex) -> None:
    write_atomic(data_dir / INDEX_FILE, json.dumps(asdict(index), indent=2) + "\n")


def remove_retired_edge(data_dir: Path, index: ActiveIndex, base: str) -> list[str]:
    """Delete the files of embedded (Qdrant Edge) collections that are not live: the
    retired ones, and those a failed or unfinished switch left (`<base>__<model>`)."""
    edge = data_dir / "edge"
    leftovers = [p.name for p in edge.glob(f"{base}__*")] if edge.is_dir() else []
    removed = []
    for name in dict.fromkeys([*index.retired, *leftovers]):
        directory = edge / name
        if name != index.collection and directory.is_dir():
            shutil.rmtree(directory)
            removed.append(name)
    if index.retired:
        index.retired = []
        write_active_index(data_dir, index)
    return removed
