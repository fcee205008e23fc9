"""The layer contracts of design §1, checked by import-linter, and the public API."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path):
    return subprocess.run([str(LINT)], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(LINT.parent), "PYTHONPATH": str(cwd)})


def test_contracts_hold():
    r = lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("esm/core/rollout.py", "import hydra", "esm.core is not allowed to import hydra"),
    ("esm/atmosphere/primitive_equations.py", "from esm.driver import simulation",
     "esm.atmosphere is not allowed to import esm.driver"),
    ("esm/atmosphere/cases.py", "import xarray", "esm.atmosphere is not allowed to import xarray"),
    ("esm/driver/simulation.py", "from esm.app import build",
     "esm.driver is not allowed to import esm.app"),
    ("parametrizations/held_suarez.py", "from esm.core import rollout",
     "parametrizations is not allowed to import esm.core.rollout"),
])
def test_contracts_catch_a_forbidden_import(tmp_path, module, line, broken):
    """A copy of the packages with one forbidden import added fails lint-imports."""
    for name in ("esm", "parametrizations", "calibration"):
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / module, "a") as f:
        f.write(f"\n{line}  # injected by the test\n")
    r = lint(tmp_path)
    assert r.returncode != 0 and broken in r.stdout, r.stdout + r.stderr


def test_public_api_without_application_libraries():
    """``import esm`` gives the public API and loads no hydra, omegaconf, xarray or netCDF4."""
    code = ("import sys, esm; "
            "names = ['SphericalHarmonicGrid', 'PrimitiveEquations', 'ShallowWaterEquations', "
            "'make_stepper', 'integrate', 'advance', 'Parameter', 'cases']; "
            "missing = [n for n in names if not hasattr(esm, n)]; "
            "loaded = [m for m in ('hydra', 'omegaconf', 'xarray', 'netCDF4') if m in sys.modules]; "
            "print(missing, loaded)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] []", r.stdout
