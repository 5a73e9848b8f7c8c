"""Confine this process before it reads hostile input (the parser child, a model probe).

`confine(policy)` first checks that the process has one thread (no_new_privs, capset and
Landlock act on the calling thread only), then applies, in this order: when started as
root, no supplementary groups and uid/gid `nobody` (never the service user, who owns the
data directory), keeping only CAP_DAC_READ_SEARCH when the Python runtime is not readable
by other users, so it can still load its modules, and only under Landlock (without it
the capability would read every file: `confine` refuses); PR_SET_NO_NEW_PRIVS;
RLIMIT_NPROC, RLIMIT_FSIZE and RLIMIT_NOFILE; then a Landlock domain (Linux 5.13+,
`ingest/landlock.py`): read-only beneath the runtime's directories
(`ingest/runtime_paths.py`), read-write beneath the policy's `write` directories, nothing
anywhere else;
on ABI 4+ no TCP bind or connect; on ABI 6+ no signal or abstract unix socket out of the
domain. A kernel without Landlock leaves the file system open to the uid (the report
says so).
`run_confined(argv, read=..., write=...)` runs any command so, via `python -m` this module.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.ingest.landlock import check, landlock_abi, open_libc, restrict
from appliance.ingest.runtime_paths import readable_by_others, runtime_dirs

PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 8, 38, 47, 2
CAP_DAC_READ_SEARCH = 2
NOBODY = 65534  # the uid and gid a root parent drops to: owns nothing of the appliance
NPROC_HEADROOM = 256  # tasks the child may add to its uid's: stops a fork bomb, not OCR
NPROC_PER_CPU = 16  # room for the tasks the uid's other processes start later
NOFILE = 128


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@dataclass
class Policy:
    """What the confined process may reach beyond the runtime (given by its parent)."""

    write: list[str] = field(default_factory=list)  # read-write beneath these
    read: list[str] = field(default_factory=list)  # read-only beneath these (and the runtime's)
    fsize_mb: int = 1024
    drop_uid: bool = True  # when root: become the unprivileged user

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> Policy:
        return cls(**json.loads(text))


@dataclass
class Confined:
    """What `confine` achieved (the child reports it to its parent)."""

    uid: int
    no_new_privs: bool
    landlock_abi: int
    dac_read_kept: bool = False
    landlock_error: str = ""


class ConfinementError(OSError):
    """The process cannot be confined as required: it must not read hostile input."""


def unprivileged_ids() -> tuple[int, int]:
    """The uid and gid a root parent's child drops to: `nobody`, not the service user
    (who owns the data directory: without Landlock its keys and journal would be open)."""
    return NOBODY, NOBODY


def keep_dac_read(is_root: bool, runtime_readable_by_others: bool, abi: int) -> bool:
    """Whether the dropped uid must keep CAP_DAC_READ_SEARCH (to load a runtime that only
    its owner can read). The capability bypasses every read check: only Landlock then
    keeps the data directory out, so without Landlock this raises ConfinementError."""
    if not is_root or runtime_readable_by_others:
        return False
    if not abi:
        raise ConfinementError(
            "cannot confine the parser: the Python runtime is not readable by other users, "
            "so the unprivileged child would need CAP_DAC_READ_SEARCH, which reads every "
            "file, and this kernel has no Landlock to fence it in; run the server as its "
            "service user, install the runtime readable by other users, or use a kernel "
            "with Landlock"
        )
    return True


def nproc_limit(tasks_of_uid: int, cpus: int) -> int:
    """RLIMIT_NPROC for the child. The kernel counts every task (thread) of the real uid,
    the server's too when the child keeps its uid (the systemd unit): llama.cpp's threads
    per model, Qdrant's, the executors'. So: the tasks the uid has now, plus the child's
    own room (a fork bomb stops there, OCR's threads fit), plus room for the threads the
    server may start later (a model loaded after the child started), which grow with the
    CPUs."""
    return tasks_of_uid + NPROC_HEADROOM + NPROC_PER_CPU * max(1, cpus)


def tasks_of(uid: int) -> int:
    """How many tasks (threads) the processes owned by `uid` have now (from /proc)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue  # gone meanwhile
    return count


def thread_count() -> int:
    """This process's threads (`Threads:` of /proc/self/status); 0 if unknown."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _drop_to(uid: int, gid: int, keep_dac: bool) -> None:
    libc = open_libc()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    if keep_dac:
        check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.setresuid(uid, uid, uid)
    if keep_dac:  # kept over execve too (ambient), for run_confined's command
        bit = 1 << CAP_DAC_READ_SEARCH
        header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)(_CapData(bit, bit, bit), _CapData(0, 0, 0))
        check(libc.capset(ctypes.byref(header), data), "capset")
        check(
            libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0),
            "prctl(PR_CAP_AMBIENT)",
        )


def confine(policy: Policy) -> Confined:
    """Confine this process for good (see the module's docstring). Raises OSError if a
    step the kernel offers fails, ConfinementError if the process has more than one
    thread or would need CAP_DAC_READ_SEARCH without Landlock; a kernel without Landlock
    is otherwise reported, not an error."""
    threads = thread_count()
    if threads != 1:
        raise ConfinementError(
            f"cannot confine a process of {threads} threads: no_new_privs, the uid and "
            "Landlock would bind only the calling one"
        )
    read = sorted({*runtime_dirs(), *policy.read})
    abi, error = landlock_abi(), ""
    if not abi:
        why = ctypes.get_errno()  # ENOSYS/EOPNOTSUPP: not in the kernel; EPERM: a filter
        cause = "refused by a system-call filter" if why == errno.EPERM else "not in this kernel"
        error = f"no Landlock: {cause} ({os.uname().release})"
    keep_dac = False
    if os.geteuid() == 0 and policy.drop_uid:
        uid, gid = unprivileged_ids()
        readable = readable_by_others([d for d in read if not d.startswith("/proc")])
        keep_dac = keep_dac_read(True, readable, abi)
        _drop_to(uid, gid, keep_dac)
    check(open_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    nproc = nproc_limit(tasks_of(os.getuid()), os.cpu_count() or 1)
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = nproc if hard == resource.RLIM_INFINITY else min(nproc, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    fsize = policy.fsize_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if abi:
        restrict(abi, read, policy.write)
    return Confined(os.getuid(), no_new_privs(), abi, keep_dac, error)


def no_new_privs() -> bool:
    try:
        with open("/proc/self/status") as status:
            return any(line.split() == ["NoNewPrivs:", "1"] for line in status)
    except OSError:
        return False


def run_confined(
    argv: list[str],
    *,
    read: Sequence[str | Path] = (),
    write: Sequence[str | Path] = (),
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    **popen: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` confined: read-only access to the runtime and `read`, read-write to
    `write`, nothing else; an environment of `env` only (default: PATH and LANG); as an
    unprivileged user when root. Blocking; output captured."""
    policy = Policy(write=[str(p) for p in write], read=[str(p) for p in read])
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    launcher = [*python_command("appliance.ingest.confine", "confine"), policy.dumps(), "--"]
    return subprocess.run(
        [*launcher, *argv], env=env if env is not None else base, capture_output=True,
        timeout=timeout, check=False, close_fds=True, cwd="/", **popen,
    )  # fmt: skip


def python_command(module: str, bundle_verb: str) -> list[str]:
    """How to start `module` as a program: `python -P -m module`, or the bundle's verb."""
    if getattr(sys, "frozen", False):  # the PyInstaller bundle: its own entry point
        return [sys.executable, bundle_verb]
    return [sys.executable, "-P", "-m", module]


def main(argv: list[str]) -> None:
    """`confine POLICY_JSON -- COMMAND...`: confine, then exec the command."""
    policy, command = Policy.loads(argv[0]), argv[2:]
    confine(policy)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
