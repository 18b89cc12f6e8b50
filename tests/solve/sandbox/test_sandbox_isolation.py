"""What isolation the sandbox has, whether it insists on it, and that it does not depend on who started it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from solve.pipeline.report import report_markdown
from solve.pipeline.rundir import RunDir
from solve.sandbox import landlock
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox, missing_isolation

ROOT = Path(__file__).resolve().parents[3]


def _seccomp_importable() -> bool:
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def test_isolation_in_force_here():
    """Where the kernel has Landlock and libseccomp is installed, the default (required) isolation starts."""
    try:
        abi = landlock.abi_version()
    except OSError as e:
        pytest.skip(f"no Landlock on this machine: {e}")
    if not _seccomp_importable():
        pytest.skip("pyseccomp/libseccomp is not installed")
    with Sandbox(SandboxConfig(workers=1)) as sb:  # require_isolation defaults to True
        isolation = sb.isolation
    print("isolation:", isolation)
    assert isolation["seccomp"].startswith("on") and isolation["landlock"] == f"abi {abi}"
    assert isolation["uid"].startswith("nobody") if os.geteuid() == 0 else isolation["uid"] == "unchanged (not root)"
    assert missing_isolation(isolation) == []


def test_required_isolation_names_what_is_missing():
    with pytest.raises(RuntimeError, match=r"not in force: seccomp \(sandbox.seccomp is false\)"):
        Sandbox(SandboxConfig(workers=1, seccomp=False))


def test_missing_isolation_words():
    full = {"seccomp": "on (by number: openat2)", "landlock": "abi 7", "uid": "nobody+dac_read_search"}
    assert missing_isolation(full) == []
    assert missing_isolation({**full, "uid": "unchanged (not root)"}) == []
    bare = {"seccomp": "unavailable: ImportError: x", "landlock": "unavailable: Landlock not available: ENOSYS",
            "uid": "unchanged (root: uid nobody cannot read the interpreter's files)"}
    assert [m.split(" ")[0] for m in missing_isolation(bare)] == ["seccomp", "landlock", "uid"]


def test_seccomp_number_fallback_denies():
    """Rules added by our own syscall numbers (as for names an old libseccomp lacks) deny like named ones."""
    if not _seccomp_importable():
        pytest.skip("pyseccomp/libseccomp is not installed")
    script = textwrap.dedent("""
        import ctypes, json, os
        from solve.sandbox.landlock import set_no_new_privs
        from solve.sandbox.seccomp_policy import BpfLoader, build_policy
        names = {"clone3": (435, 0, 0), "openat2": (437, -100, 0, 0, 0), "shmget": (29, 0, 4096, 0o1600),
                 "msgget": (68, 0, 0o1600), "kill": (62, os.getpid(), 0), "ioctl": (16, 0, 0x5412 | (1 << 32), 0)}
        policy = build_policy(frozenset(names))
        set_no_new_privs()  # as the worker does once (seccomp needs it without CAP_SYS_ADMIN)
        BpfLoader(policy.bpf).load()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        errors = {}
        for name, (nr, *args) in names.items():
            ctypes.set_errno(0)
            libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
            errors[name] = ctypes.get_errno()
        print(json.dumps({"by_number": policy.by_number, "errors": errors}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert {"clone3", "openat2", "shmget", "msgget", "kill", "ioctl"} <= set(out["by_number"])
    assert out["errors"] == dict.fromkeys(out["errors"], 1), out  # EPERM, every one


HOSTILE_PARENT = """
import json, signal, sys
import numpy as np
signal.signal(signal.SIGINT, signal.SIG_IGN)    # what `cmd &` in a shell without job control does
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
signal.signal(signal.SIGRTMIN + 3, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGHUP, signal.SIGALRM})
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
PROGRAM = '''
import signal
def transform(g):
    default = {signal.SIGINT: signal.default_int_handler, signal.SIGPIPE: signal.SIG_IGN, signal.SIGXFSZ: signal.SIG_IGN}
    wrong = [int(s) for s in signal.valid_signals()
             if s not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(s) != default.get(s, signal.SIG_DFL)]
    blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    print(wrong, blocked)
    return [[min(len(wrong), 9), min(len(blocked), 9)]]
'''
with Sandbox(SandboxConfig(workers=1, require_isolation=False)) as sb:
    (rec,) = sb.run([("probe", PROGRAM)], [np.zeros((1, 1), np.uint8)])
print(json.dumps({"output": rec.results[0].output, "error": rec.results[0].error, "stdout": rec.stdout}))
"""


def test_programs_see_clean_signal_state_whatever_the_parent_inherited():
    proc = subprocess.run([sys.executable, "-c", HOSTILE_PARENT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["output"] == [[0, 0]], out  # no odd disposition, nothing blocked


def test_run_directory_records_isolation(tmp_path):
    isolation = {"seccomp": "on", "landlock": "abi 7", "uid": "nobody"}
    run = RunDir.open(tmp_path / "run", [], {"sandbox": {"workers": 1}})
    try:
        run.note_isolation(isolation)
        saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
        assert saved["isolation"] == isolation and saved["config"] == {"sandbox": {"workers": 1}}
        assert run.isolation == isolation
    finally:
        run.close()
    assert "- program sandbox isolation: seccomp on, landlock abi 7, uid nobody" in report_markdown([], isolation=isolation)
    assert "- program sandbox isolation: not recorded" in report_markdown([])
