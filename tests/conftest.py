from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def run_cli():
    """Run ``python -m costmodel ARGS`` as a user would; returns (status, stdout, stderr)."""

    def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "costmodel", *args],
            capture_output=True,
            text=True,
            cwd=cwd or ROOT,
            env=env,
            timeout=120,
        )
        return proc.returncode, proc.stdout, proc.stderr

    return run
