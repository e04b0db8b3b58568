"""Under ``pytest -q`` the suite prints nothing but pytest's own lines: no test writes past the output capture
(a table a test prints is shown with ``-s`` or when that test fails)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
BYPASS = re.compile(r"capsys\.disabled\(|capfd\.disabled\(|sys\.__stdout__|sys\.__stderr__|os\.write\(\s*[12]\s*,")


def test_no_test_writes_past_the_output_capture():
    offenders = [f"{path.name}:{number}: {line.strip()}"
                 for path in sorted(TESTS.glob("*.py")) if path.name != Path(__file__).name
                 for number, line in enumerate(path.read_text().splitlines(), 1) if BYPASS.search(line)]
    assert not offenders, offenders
