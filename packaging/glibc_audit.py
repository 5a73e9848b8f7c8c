"""The glibc a set of ELF files needs: the highest GLIBC_x.y symbol version any of them
references (`objdump -T`). Usage: python packaging/glibc_audit.py DIR"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from isa_audit import elf_files


def needed(path: Path, library: str = "GLIBC") -> tuple[int, ...]:
    """The highest `library`_x.y symbol version `path` references (GLIBC or GLIBCXX)."""
    run = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True, check=False)
    if run.returncode != 0 and "not a dynamic object" not in run.stderr:
        raise RuntimeError(f"objdump -T {path} failed: {run.stderr.strip()[-300:]}")
    out = run.stdout
    pattern = re.compile(rf"\b{library}_(\d+(?:\.\d+)+)\b")
    versions = [tuple(int(p) for p in v.split(".")) for v in pattern.findall(out)]
    return max(versions, default=(0,))


def glibc_floor(directory: Path, library: str = "GLIBC") -> tuple[str, str]:
    """('2.35', 'file that needs it') over every ELF file under `directory`."""
    best: tuple[int, ...] = (0,)
    worst = ""
    for path in elf_files([directory]):
        version = needed(path, library)
        if version > best:
            best, worst = version, str(path.relative_to(directory))
    return ".".join(str(p) for p in best), worst


if __name__ == "__main__":
    for lib in ("GLIBC", "GLIBCXX"):
        floor, by = glibc_floor(Path(sys.argv[1]), lib)
        print(f"{lib}_{floor} (needed by {by})")
