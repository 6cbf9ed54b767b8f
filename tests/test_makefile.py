"""`make help` lists every target of the Makefile, one line each with what it does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_target_once_with_a_description():
    targets = re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M)
    command = ["make", "--no-print-directory", "help"]
    shown = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [line.split(None, 1) for line in shown.stdout.splitlines() if line.strip()]
    assert [name for name, _ in lines] == targets
    assert all(len(description) > 10 for _, description in lines)
