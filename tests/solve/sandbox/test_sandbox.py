"""The sandbox against hostile programs: each case says what it attacks and what must happen.

After every case a probe program runs on the same (single-worker) pool and must see a clean process:
no patched numpy/builtins, fresh seeded random state, and a correct result.
"""

from __future__ import annotations

import os
import random
import shutil
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
    bad += type(1) is not int
    return [[min(int(bad), 9)]]
"""

SEC = "seccomp"  # marks cases whose guarantee comes from the seccomp filter
OK = None


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
    case("read_passwd", R("[[int(len(open('/etc/passwd').read()) > 0)]]", imports=""),
         {OK}, "reading is allowed by design", output=((1,),)),
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
]


@pytest.fixture(scope="module")
def sandbox():
    os.environ[SECRET_ENV] = "hunter2"
    try:
        with Sandbox(SandboxConfig(workers=1, timeout_s=TIMEOUT_S, memory_mb=512, max_output_chars=100)) as sb:
            yield sb
    finally:
        os.environ.pop(SECRET_ENV, None)
        shutil.rmtree(SCRATCH, ignore_errors=True)


@pytest.mark.parametrize("source, errors, output, absent, needs, max_s", CASES)
def test_hostile(sandbox, source, errors, output, absent, needs, max_s):
    if needs == SEC and not sandbox.seccomp_active:
        pytest.skip("seccomp is not available here")
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
    with Sandbox(SandboxConfig(workers=1, seccomp=False, timeout_s=0.5, memory_mb=512)) as sb:
        assert sb.seccomp_state == "off"
        honest, mem = sb.run([("h", HONEST), ("m", R("np.zeros((10**5, 10**5))"))], [GRID])
    assert honest.results[0].output == TRANSPOSED and mem.results[0].error == "memory"
