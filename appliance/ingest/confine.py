"""Confine this process before it reads hostile input (the parser child, a model probe).

`confine(policy)` first checks that the process has one thread (no_new_privs, capset and
Landlock act on the calling thread only), then applies, in this order: when started as
root, no supplementary groups and uid/gid `nobody` (never the service user, who owns the
data directory), keeping only CAP_DAC_READ_SEARCH when the Python runtime is not readable
by other users, so it can still load its modules, and only under Landlock (without it
the capability would read every file: `confine` refuses); PR_SET_NO_NEW_PRIVS;
RLIMIT_NPROC, RLIMIT_FSIZE and RLIMIT_NOFILE; then a Landlock domain (Linux 5.13+,
through its three system calls, no library or host tool): read-only beneath the runtime's
directories, read-write beneath the policy's `write` directories, nothing anywhere else;
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
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# asm-generic syscall numbers: the same on x86_64 and aarch64
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 8, 38, 47, 2
CAP_DAC_READ_SEARCH = 2
NOBODY = 65534  # the uid and gid a root parent drops to: owns nothing of the appliance
NPROC_HEADROOM = 256  # tasks the child may add to its uid's: stops a fork bomb, not OCR
NPROC_PER_CPU = 16  # room for the tasks the uid's other processes start later
NOFILE = 128

# file-system access rights by Landlock ABI: 13 in ABI 1, REFER (2), TRUNCATE (3), IOCTL_DEV (5)
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FILE_RIGHTS_V5 = EXECUTE | WRITE_FILE | READ_FILE | 1 << 14 | 1 << 15
READ_RIGHTS = EXECUTE | READ_FILE | READ_DIR


def _fs_rights(abi: int) -> int:
    bits = 13 + (abi >= 2) + (abi >= 3)
    return (1 << bits) - 1 | ((1 << 15) if abi >= 5 else 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 without Landlock (Linux < 5.13, or not in `lsm=`)."""
    libc = _libc()
    version = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return max(0, int(version))


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


LIB_DIR_NAMES = ("lib", "lib32", "lib64", "lib-dynload", "site-packages", "dist-packages")


def _is_lib_dir(folder: Path, roots: Sequence[str]) -> bool:
    if any(folder.is_relative_to(root) for root in roots if root and root != "/"):
        return True
    name = folder.name
    return name in LIB_DIR_NAMES or name.endswith(".libs") or name.endswith("-linux-gnu")


def mapped_rules(maps_text: str, lib_roots: Sequence[str]) -> tuple[set[str], set[str]]:
    """From /proc/self/maps text: (folders, files) to keep readable. A mapped file in a
    library folder (beneath one of `lib_roots`: the prefixes, the bundle's _MEIPASS; or a
    folder named like `lib64`, `x86_64-linux-gnu`, `*.libs`) gives its folder, so a later
    dlopen of a sibling works; any other (the bundle's executable beside its data) only
    itself. Deleted files, pseudo entries ([heap], memfd:) and relative names give none."""
    folders: set[str] = set()
    files: set[str] = set()
    for line in maps_text.splitlines():
        fields = line.split(maxsplit=5)[5:]
        name = fields[0].strip() if fields else ""
        if not name.startswith("/") or name.endswith(" (deleted)"):
            continue
        path = Path(name)
        if _is_lib_dir(path.parent, lib_roots):
            folders.add(str(path.parent))
        else:
            files.add(name)
    return folders, files


def runtime_dirs() -> list[str]:
    """What the Python runtime reads: prefixes, the bundle, this package, the shared
    libraries loaded so far, system libraries, fonts, time zones, MIME tables, CPU facts."""
    import mimetypes

    import appliance

    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    paths |= {sys.executable, str(Path(sys.executable).resolve())}  # not its directory:
    # the bundle's holds more than the program (a data dir there would be readable)
    paths.add(str(Path(appliance.__file__).resolve().parent))
    if hasattr(sys, "_MEIPASS"):
        paths.add(str(sys._MEIPASS))
    roots = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    roots += [str(sys._MEIPASS)] if hasattr(sys, "_MEIPASS") else []
    try:
        with open("/proc/self/maps") as maps:
            folders, files = mapped_rules(maps.read(), roots)
        paths |= folders | files
    except OSError:
        pass
    paths |= {
        "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share",
        "/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/dev/urandom", "/dev/random",
        "/dev/zero", "/proc/self", "/proc/cpuinfo", "/proc/meminfo",
        "/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/fs/cgroup",
    }  # fmt: skip
    paths.update(map(str, mimetypes.knownfiles))  # read when a mail's attachments are named
    return sorted(p for p in paths if p and p != "/" and os.path.exists(p))


def readable_by_others(paths: list[str]) -> bool:
    """Whether a user other than the owner can reach and read each of `paths` (mode bits)."""
    for path in paths:
        parts = Path(path).resolve()
        for ancestor in [*reversed(parts.parents), parts]:
            try:
                mode = os.stat(ancestor).st_mode
            except OSError:
                return False
            needed = stat.S_IXOTH if stat.S_ISDIR(mode) else 0
            needed |= stat.S_IROTH if ancestor == parts else 0
            if mode & needed != needed:
                return False
    return True


def _drop_to(uid: int, gid: int, keep_dac: bool) -> None:
    libc = _libc()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    if keep_dac:
        _check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.setresuid(uid, uid, uid)
    if keep_dac:  # kept over execve too (ambient), for run_confined's command
        bit = 1 << CAP_DAC_READ_SEARCH
        header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)(_CapData(bit, bit, bit), _CapData(0, 0, 0))
        _check(libc.capset(ctypes.byref(header), data), "capset")
        _check(
            libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0),
            "prctl(PR_CAP_AMBIENT)",
        )


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # gone since listed: nothing to allow
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS_V5
        rule = _PathBeneath(rights, fd)
        _check(
            libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                         ctypes.byref(rule), 0),
            f"landlock_add_rule({path})",
        )  # fmt: skip
    finally:
        os.close(fd)


def _landlock(abi: int, read: list[str], write: list[str]) -> None:
    libc = _libc()
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _check(
        libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    try:
        for path in read:
            _add_rule(libc, ruleset, path, READ_RIGHTS & handled)
        for path in ("/dev/null", *write):
            _add_rule(libc, ruleset, path, handled)
        _check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


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
    _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    nproc = nproc_limit(tasks_of(os.getuid()), os.cpu_count() or 1)
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = nproc if hard == resource.RLIM_INFINITY else min(nproc, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    fsize = policy.fsize_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if abi:
        _landlock(abi, read, policy.write)
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
