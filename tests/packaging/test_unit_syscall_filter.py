"""The appliance's heavy parts still work under the unit's system-call filter.

packaging/appliance.service allows @system-service plus Landlock's three calls and fails
any other with EPERM. Without systemd as PID 1 the unit cannot run here, so its filter
is installed with libseccomp (what systemd itself uses), from the groups as systemd
expands them (`systemd-analyze syscall-filter`), in a child that then does the parts of
the work that reach deepest into the kernel: the parser child confining itself
(Landlock, no_new_privs, rlimits) and parsing every format (OCR included), llama.cpp
loading the chat and embedding models, generating and embedding.
"""

from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "packaging" / "appliance.service"
pytestmark = pytest.mark.slow

# run in the filtered child: argv = [scratch dir, models dir, allowed call names...]
WORKLOAD = r"""
import ctypes, ctypes.util, errno, sys
from pathlib import Path

scratch, models, allowed = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
seccomp = ctypes.CDLL(ctypes.util.find_library("seccomp"), use_errno=True)
seccomp.seccomp_init.restype = ctypes.c_void_p
seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
context = seccomp.seccomp_init(0x00050000 | errno.EPERM)  # SCMP_ACT_ERRNO(EPERM)
for name in allowed:
    number = seccomp.seccomp_syscall_resolve_name(name.encode())
    if number >= 0:  # not a call of this architecture: nothing to allow
        assert seccomp.seccomp_rule_add(context, 0x7FFF0000, number, 0) == 0, name
assert seccomp.seccomp_load(context) == 0
assert open("/proc/self/status").read().count("Seccomp:\t2") == 1

from appliance.config.ingest import IngestSettings
from appliance.ingest.sandbox import ParseSandbox
from tests.format_files import FACTS, make_formats

box = ParseSandbox(IngestSettings())
try:
    confined = box.status()
    print("confined:", confined)
    assert confined["landlock_abi"] >= 1 and confined["no_new_privs"], confined
    for kind, path in make_formats(scratch).items():
        parsed = box.parse(path, path.name, html_main_content=True)
        assert FACTS[kind][1] in " ".join(s.text for s in parsed.sections), kind
        print("parsed", kind)
finally:
    box.close()

from appliance.engine.llama_loader import load_llama
from appliance.models.locate import CHAT_FILE, EMBED_FILE

chat = load_llama(str(models / CHAT_FILE), n_ctx=256)
print("generated:", chat("The sky is", max_tokens=4)["choices"][0]["text"])
embedder = load_llama(str(models / EMBED_FILE), embedding=True)
assert len(embedder.embed("backups run nightly")) > 0
print("WORKLOAD OK")
"""


def allowed_calls() -> list[str]:
    """The unit's SystemCallFilter= allow list, its groups expanded by systemd."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (make system-deps installs systemd)"
    listing = subprocess.run(
        [analyze, "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    for line in listing.splitlines():
        word = line.strip()
        if line.startswith("@"):
            groups[word] = members = []
        elif word and not word.startswith("#") and groups:
            members.append(word)

    def expand(name: str, seen: set[str]) -> set[str]:
        if not name.startswith("@"):
            return {name}
        if name in seen:
            return set()
        seen.add(name)
        return set().union(*(expand(m, seen) for m in groups[name]))

    lines = [line for line in UNIT.read_text().splitlines() if line.startswith("SystemCallFilter=")]
    assert lines and all("~" not in line for line in lines)  # an allow list
    names = " ".join(line.split("=", 1)[1] for line in lines).split()
    return sorted(set().union(*(expand(n, set()) for n in names)))


def test_the_work_runs_under_the_units_system_call_filter(models_dir: Path, tmp_path: Path) -> None:
    assert ctypes.util.find_library("seccomp"), "libseccomp (a dependency of systemd) is missing"
    assert "SystemCallErrorNumber=EPERM" in UNIT.read_text().splitlines()
    calls = allowed_calls()
    assert {"landlock_create_ruleset", "landlock_restrict_self", "read"} <= set(calls)
    run = subprocess.run(
        [sys.executable, "-c", WORKLOAD, str(tmp_path), str(models_dir), *calls],
        # hang guard: the workload loads the models, parses, embeds, answers (~30 s alone)
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    print(run.stdout)
    assert run.returncode == 0 and "WORKLOAD OK" in run.stdout, run.stdout + run.stderr[-3000:]
