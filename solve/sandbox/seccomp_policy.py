"""The seccomp filter that program processes run under: default ALLOW, dangerous syscalls fail with EPERM.

`build_bpf()` compiles the policy once per worker with libseccomp (through `pyseccomp`) and exports raw
BPF; `load_bpf()` installs those bytes in a freshly forked program process with two prctl calls, which
costs microseconds where asking libseccomp to compile in every child costs about a millisecond.

Denied (EPERM unless noted):
- new processes and threads: fork, vfork, clone, clone3, execve, execveat;
- signals to any process (the program cannot kill its worker or the parent): kill, tkill, tgkill,
  rt_(tg)sigqueueinfo, pidfd_open, pidfd_send_signal, pidfd_getfd;
- networking: socket, socketpair, connect, bind, listen, accept, accept4;
- writing files: open/openat with O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_APPEND (masked argument
  compares), openat2 (its flags live in a struct seccomp cannot read), creat, and every call that
  changes the file system (unlink, rename, mkdir, chmod, chown, link, truncate, mknod, xattrs, utimes...);
- raising limits or changing identity: setrlimit, prlimit64 with a new limit (reading limits is allowed),
  set*uid/set*gid/setgroups, capset;
- escaping or inspecting: ptrace, process_vm_readv/writev, kcmp, bpf, perf_event_open, userfaultfd,
  io_uring_* (io_uring performs I/O that seccomp never sees), unshare, setns, mount, chroot, keyctl,
  module loading, reboot, ..., and ioctl TIOCSTI/TIOCLINUX (typing into a terminal).
Reading files stays allowed: `import` of modules not preloaded must work, and nothing secret lives where
a program can read it (the sandbox never holds expected outputs). Syscalls not named here are allowed.
"""

from __future__ import annotations

import ctypes
import errno
import os

_DENY = (
    "fork vfork clone clone3 execve execveat "
    "kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_send_signal pidfd_getfd "
    "socket socketpair connect bind listen accept accept4 "
    "openat2 creat unlink unlinkat rename renameat renameat2 mkdir mkdirat rmdir mknod mknodat "
    "chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat link linkat symlink symlinkat "
    "truncate ftruncate fallocate utime utimes utimensat futimesat "
    "setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr "
    "setrlimit setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid capset "
    "ptrace process_vm_readv process_vm_writev kcmp bpf perf_event_open userfaultfd "
    "io_uring_setup io_uring_enter io_uring_register unshare setns mount umount2 pivot_root chroot "
    "swapon swapoff reboot sethostname setdomainname init_module finit_module delete_module "
    "kexec_load kexec_file_load acct quotactl keyctl add_key request_key "
    "open_by_handle_at name_to_handle_at fanotify_init memfd_create"
).split()
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C

_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def build_bpf() -> bytes:
    """The policy as raw BPF for this machine's architecture; raises OSError/ImportError/RuntimeError if unavailable."""
    import pyseccomp as sc  # deferred: Linux only, and it loads libseccomp via ctypes

    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in _DENY:
        if _known(sc, name):  # names this architecture lacks (e.g. `open` on arm64) cannot be called anyway
            f.add_rule(deny, name)
    for name, flags_arg in (("open", 1), ("openat", 2)):
        if _known(sc, name):
            for bit in _WRITE_FLAGS:
                f.add_rule(deny, name, sc.Arg(flags_arg, sc.MASKED_EQ, bit, bit))
    f.add_rule(deny, "prlimit64", sc.Arg(2, sc.NE, 0))  # new_limit != NULL: setting, not reading
    for request in (_TIOCSTI, _TIOCLINUX):
        f.add_rule(deny, "ioctl", sc.Arg(1, sc.EQ, request))
    return _export(sc, f)


def _known(sc, name: str) -> bool:
    try:
        return sc.resolve_syscall(sc.Arch.NATIVE, name) >= 0
    except (OSError, ValueError):
        return False


def _export(sc, f) -> bytes:
    lib = sc._libseccomp  # pyseccomp does not wrap seccomp_export_bpf; call libseccomp directly
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.seccomp_export_bpf.restype = ctypes.c_int
    r, w = os.pipe()
    try:
        rc = lib.seccomp_export_bpf(f._filter, w)
        os.close(w)
        w = -1
        if rc != 0:
            raise OSError(-rc, f"seccomp_export_bpf failed: {os.strerror(-rc)}")
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    bpf = b"".join(chunks)
    if not bpf or len(bpf) % 8:
        raise RuntimeError(f"seccomp_export_bpf produced {len(bpf)} bytes, not whole BPF instructions")
    return bpf


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class BpfLoader:
    """Holds a BPF program in C memory so a forked child can install it with two prctl calls."""

    def __init__(self, bpf: bytes):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        # A harmless first call sets up ctypes' call machinery here, once, instead of in every child.
        self._libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
        ctypes.byref(self._prog)

    def load(self) -> None:
        """Install the filter in this process (irreversible); raises OSError on failure."""
        if self._libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"PR_SET_NO_NEW_PRIVS: {os.strerror(e)}")
        if self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._prog), 0, 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"PR_SET_SECCOMP: {os.strerror(e)}")
