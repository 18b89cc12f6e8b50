"""`--json`: stdout holds one JSON value and nothing else, whoever else writes to stdout meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

NOISY = """
import logging, os, sys
from solve.cli.common import console, json_stdout
early = logging.StreamHandler(sys.stdout)  # a library's handler, bound to stdout before the block
logging.getLogger("lib").addHandler(early)
with json_stdout(True) as emit:
    print("a log line")
    console.print("[dim]bench: sampling ...[/]")
    logging.getLogger("lib").warning("Setting accelerator to CPU")
    os.write(1, b"from C\\n")
    emit({"sampling": {"speedup": 3.8}})
print("after the block: stdout again")
"""


def test_json_stdout_sends_everything_else_to_stderr():
    proc = subprocess.run([sys.executable, "-c", NOISY], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, rest = proc.stdout.split("\n", 1)
    assert json.loads(first) == {"sampling": {"speedup": 3.8}}
    assert rest == "after the block: stdout again\n"
    for noise in ("a log line", "bench: sampling", "Setting accelerator to CPU", "from C"):
        assert noise in proc.stderr
