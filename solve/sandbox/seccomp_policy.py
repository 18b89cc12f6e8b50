"""The seccomp filter that program processes run under: default ALLOW, dangerous syscalls fail with EPERM.

`build_policy()` compiles the policy once per worker with libseccomp (through `pyseccomp`) and exports
raw BPF; `BpfLoader.load()` installs those bytes in a freshly forked program process with one prctl
call, which costs microseconds where asking libseccomp to compile in every child costs about a millisecond.

Denied (EPERM unless noted):
- new processes and threads: fork, vfork, clone, clone3, execve, execveat;
- signals to any process (the program cannot kill its worker or the parent): kill, tkill, tgkill,
  rt_(tg)sigqueueinfo, pidfd_open, pidfd_send_signal, pidfd_getfd;
- networking: socket, socketpair, connect, bind, listen, accept, accept4;
- state that outlives the program: SysV IPC (shmget/shmat/shmdt/shmctl, msgget/msgsnd/msgrcv/msgctl,
  semget/semop/semtimedop/semctl) and POSIX message queues (mq_*): a segment or queue left behind would
  let one program hand data to a later one, or read another process's;
- writing files: open/openat with O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_APPEND (masked argument
  compares), openat2 (its flags live in a struct seccomp cannot read), creat, and every call that
  changes the file system (unlink, rename, mkdir, chmod, chown, link, truncate, mknod, xattrs, utimes...);
- raising limits or changing identity: setrlimit, prlimit64 with a new limit (reading limits is allowed),
  set*uid/set*gid/setgroups, capset;
- escaping or inspecting: ptrace, process_vm_readv/writev, kcmp, bpf, perf_event_open, userfaultfd,
  io_uring_* (io_uring performs I/O that seccomp never sees), unshare, setns, mount and the new mount API
  (fsopen, open_tree, move_mount...), chroot, keyctl, module loading, reboot, syslog, ..., and ioctl
  TIOCSTI/TIOCLINUX (typing into a terminal). The kernel reads ioctl's request as 32 bits, so the rule
  compares only the low 32 bits (a request with high bits set is the same request).

Names libseccomp does not know: a libseccomp older than the kernel cannot resolve new syscalls (here
2.5.4 lacks setxattrat, removexattrat, open_tree_attr, file_setattr). Those are denied by number from
`X86_64` (every name above) on x86_64, or by their number in the kernel's unified table (424 and up,
the same on every 64-bit architecture listed in `_UNIFIED_ARCHES`); `Policy.by_number` names them. A
name that can be resolved neither way fails closed: `build_policy` raises. Names libseccomp knows but
this architecture lacks (e.g. `open` on arm64) cannot be called and are listed in `Policy.absent`.

Reading files is not this filter's job: Landlock (`solve.sandbox.landlock`) confines reads to an allow-list.
Syscalls not named here are allowed.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

_DENY = (
    "fork vfork clone clone3 execve execveat "
    "kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_send_signal pidfd_getfd "
    "socket socketpair connect bind listen accept accept4 "
    "shmget shmat shmdt shmctl msgget msgsnd msgrcv msgctl semget semop semtimedop semctl "
    "mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr "
    "openat2 creat unlink unlinkat rename renameat renameat2 mkdir mkdirat rmdir mknod mknodat "
    "chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat link linkat symlink symlinkat "
    "truncate ftruncate fallocate utime utimes utimensat futimesat "
    "setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr setxattrat removexattrat file_setattr "
    "setrlimit setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid capset "
    "ptrace process_vm_readv process_vm_writev kcmp bpf perf_event_open userfaultfd "
    "io_uring_setup io_uring_enter io_uring_register unshare setns mount umount2 pivot_root chroot "
    "open_tree open_tree_attr move_mount fsopen fsconfig fsmount fspick mount_setattr "
    "swapon swapoff reboot sethostname setdomainname init_module finit_module delete_module "
    "kexec_load kexec_file_load acct quotactl quotactl_fd keyctl add_key request_key syslog "
    "open_by_handle_at name_to_handle_at fanotify_init memfd_create"
).split()
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
_LOW_32_BITS = 0xFFFF_FFFF

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) of every syscall the policy names.
X86_64 = {
    "open": 2, "ioctl": 16, "shmget": 29, "shmat": 30, "shmctl": 31, "socket": 41, "connect": 42, "accept": 43,
    "bind": 49, "listen": 50, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "kill": 62,
    "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "truncate": 76, "ftruncate": 77, "rename": 82, "mkdir": 83, "rmdir": 84, "creat": 85, "link": 86, "unlink": 87,
    "symlink": 88, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "ptrace": 101, "syslog": 103,
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116, "setresuid": 117,
    "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capset": 126, "rt_sigqueueinfo": 129, "utime": 132,
    "mknod": 133, "pivot_root": 155, "setrlimit": 160, "chroot": 161, "acct": 163, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
    "lremovexattr": 198, "fremovexattr": 199, "tkill": 200, "semtimedop": 220, "tgkill": 234, "utimes": 235,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
    "mq_getsetattr": 245, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "openat": 257,
    "mkdirat": 258, "mknodat": 259, "fchownat": 260, "futimesat": 261, "unlinkat": 263, "renameat": 264,
    "linkat": 265, "symlinkat": 266, "fchmodat": 268, "unshare": 272, "utimensat": 280, "fallocate": 285,
    "accept4": 288, "rt_tgsigqueueinfo": 297, "perf_event_open": 298, "fanotify_init": 300, "prlimit64": 302,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "renameat2": 316, "memfd_create": 319,
    "kexec_file_load": 320, "bpf": 321, "execveat": 322, "userfaultfd": 323,
    # 424 and up: one table for every architecture (asm-generic/unistd.h)
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_open": 434, "clone3": 435, "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
    "fchmodat2": 452, "setxattrat": 463, "removexattrat": 466, "open_tree_attr": 467, "file_setattr": 469,
}
_UNIFIED_FROM = 424
_NR_SCMP_ERROR = -1  # libseccomp's answer for a name it does not know (other negatives: known, not on this arch)

_PR_GET_NO_NEW_PRIVS = 39
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


@dataclass(frozen=True)
class Policy:
    """The compiled filter and how its names were resolved."""

    bpf: bytes
    by_number: tuple[str, ...]  # denied by our own number: this libseccomp does not know the name
    absent: tuple[str, ...]  # not a syscall of this architecture: nothing to deny

    def describe(self) -> str:
        """'on', or 'on (by number: ...)' when some rules bypassed libseccomp's name table."""
        return f"on (by number: {', '.join(self.by_number)})" if self.by_number else "on"


def build_policy(force_numbers: frozenset[str] = frozenset()) -> Policy:
    """The policy as raw BPF for this machine's architecture; raises OSError/ImportError/RuntimeError if unavailable.

    `force_numbers`: names to deny by our number even where libseccomp knows them (tests prove the
    number fallback with it)."""
    import pyseccomp as sc  # deferred: Linux only, and it loads libseccomp via ctypes

    resolver = _Resolver(sc, force_numbers)
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in _DENY:
        resolver.add(f, deny, name)
    for name, flags_arg in (("open", 1), ("openat", 2)):
        for bit in _WRITE_FLAGS:
            resolver.add(f, deny, name, sc.Arg(flags_arg, sc.MASKED_EQ, bit, bit))
    resolver.add(f, deny, "prlimit64", sc.Arg(2, sc.NE, 0))  # new_limit != NULL: setting, not reading
    for request in (_TIOCSTI, _TIOCLINUX):
        resolver.add(f, deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, _LOW_32_BITS, request))
    return Policy(_export(sc, f), tuple(sorted(resolver.by_number)), tuple(sorted(resolver.absent)))


class _Resolver:
    """Turns syscall names into what libseccomp's add_rule takes, failing closed on names nobody can resolve."""

    def __init__(self, sc, force_numbers: frozenset[str]):
        self.sc, self.force = sc, force_numbers
        self.arch = sc.system_arch()
        self.by_number: set[str] = set()
        self.absent: set[str] = set()

    def add(self, f, action: int, name: str, *args) -> None:
        nr = self.resolve(name)
        if nr is not None:
            f.add_rule(action, nr, *args)

    def resolve(self, name: str) -> int | None:
        """The number to deny, or None when this architecture has no such syscall."""
        nr = self.sc.resolve_syscall(self.sc.Arch.NATIVE, name)
        if name in self.force or nr == _NR_SCMP_ERROR:
            nr = self._fallback(name)
            self.by_number.add(name)
            return nr
        if nr < 0:  # a pseudo number: libseccomp knows the name, this architecture lacks the syscall
            self.absent.add(name)
            return None
        return nr

    def _fallback(self, name: str) -> int:
        nr = X86_64.get(name)
        if nr is not None and (self.arch == self.sc.Arch.X86_64 or (nr >= _UNIFIED_FROM and self.arch in _unified(self.sc))):
            return nr
        raise RuntimeError(f"libseccomp cannot resolve syscall {name!r} and its number on arch {self.arch:#x} is unknown")


def _unified(sc) -> tuple[int, ...]:
    """64-bit architectures whose syscalls from 424 on follow the generic table."""
    return (sc.Arch.X86_64, sc.Arch.AARCH64, sc.Arch.RISCV64, sc.Arch.PPC64LE, sc.Arch.PPC64, sc.Arch.S390X)


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
    """Holds a BPF program in C memory so a forked child can install it with one prctl call."""

    def __init__(self, bpf: bytes):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        self._prog_ref = ctypes.byref(self._prog)
        # A harmless first call sets up ctypes' call machinery here, once, instead of in every child.
        self._libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)

    def load(self) -> None:
        """Install the filter in this process (irreversible); raises OSError on failure.

        The process must have no_new_privs set (the worker sets it once, children inherit it; see
        `solve.sandbox.landlock.set_no_new_privs`) or CAP_SYS_ADMIN."""
        if self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, self._prog_ref, 0, 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"PR_SET_SECCOMP: {os.strerror(e)}")
