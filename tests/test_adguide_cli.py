"""adguide_cli.py: the `adguide` command as the README's first command runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_on_a_fresh_home_makes_a_world_then_answers_and_guides(tmp_path: Path) -> None:
    """`adguide demo` with nothing on the machine: it generates a world, shows the account, asks the default
    backend and the teacher, and prints proactive guidance, without a traceback."""
    env = {**os.environ, "ADGUIDE_HOME": str(tmp_path / "home"), "HOME": str(tmp_path), "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "adguide_cli", "demo", "--advertisers", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert (tmp_path / "home" / "world.sqlite").is_file()
    for section in (
        "1. No world yet",
        "2. The account of adv_0001",
        "3. adv_0001 asks",
        "3b. The same question, answered by the expert policy",
        "4. Proactive guidance",
    ):
        assert section in out, section
    assert "adguide chat -a adv_0001" in out
    assert "invoke_agent" not in out  # no span tree: the demo calls `ask` without --trace
