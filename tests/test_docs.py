"""The documentation site: ``mkdocs build --strict`` passes offline, and the tutorial's
commands (the ```bash tutorial blocks of docs/index.md) run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()
    assert "esm.api.run" in (tmp_path / "site" / "api" / "index.html").read_text()


def tutorial_commands() -> list[str]:
    text = (REPO / "docs" / "index.md").read_text()
    blocks = re.findall(r"```bash tutorial\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.strip().splitlines()]


@pytest.mark.slow  # about 50 s: the tutorial runs four models and a calibration
def test_tutorial_commands_run(tmp_path):
    commands = tutorial_commands()
    assert len(commands) >= 5
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               JAX_PLATFORMS="cpu")
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
    assert (tmp_path / "runs" / "tutorial" / "plots" / "plots.json").exists()
    assert (tmp_path / "runs" / "tutorial_k_a" / "plots" / "map_ta.png").exists()
    assert (tmp_path / "runs" / "tutorial_calibration" / "parameters.yaml").exists()
