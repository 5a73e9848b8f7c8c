"""Landlock through its three system calls (Linux 5.13+, no library or host tool), and
the libc handle those and `confine`'s prctl/capset calls go through.

`restrict(abi, read, write)` confines the calling thread for good: read-only beneath
`read`, read-write beneath `write` and /dev/null, nothing anywhere else; on ABI 4+ no TCP
bind or connect; on ABI 6+ no signal or abstract unix socket out of the domain.
"""

from __future__ import annotations

import ctypes
import os
import stat

# asm-generic syscall numbers: the same on x86_64 and aarch64
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

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


def open_libc() -> ctypes.CDLL:
    """The C library, errno kept for `check`."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def check(result: int, what: str) -> int:
    """`result`, or OSError with errno's message when the call failed (below 0)."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 without Landlock (Linux < 5.13, or not in `lsm=`)."""
    libc = open_libc()
    version = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return max(0, int(version))


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # gone since listed: nothing to allow
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS_V5
        rule = _PathBeneath(rights, fd)
        check(
            libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                         ctypes.byref(rule), 0),
            f"landlock_add_rule({path})",
        )  # fmt: skip
    finally:
        os.close(fd)


def restrict(abi: int, read: list[str], write: list[str]) -> None:
    """Confine the calling thread in a Landlock domain (see the module's docstring)."""
    libc = open_libc()
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = check(
        libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    try:
        for path in read:
            _add_rule(libc, ruleset, path, READ_RIGHTS & handled)
        for path in ("/dev/null", *write):
            _add_rule(libc, ruleset, path, handled)
        check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
