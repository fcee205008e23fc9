"""The driver: writers with their own schedules and files, callbacks, pytree-keyed files,
atomic writes."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from esm.atmosphere import cases
from esm.core import time_integration
from esm.core.spherical_harmonics import SphericalHarmonicGrid
from esm.driver import files, restart
from esm.driver.output import CELL_VARIABLES, GridCoordinates, NetCDFWriter
from esm.driver.simulation import BlowUp, Callback, HealthCheck, RestartWriter, Simulation


class Model:
    def __init__(self):
        grid = SphericalHarmonicGrid.from_name("t21")
        case = cases.williamson6(grid, hyperdiffusion_order=0)
        self.grid, self.equation = grid, case.equation
        self.stepper = time_integration.make_stepper("leapfrog", case.equation, 1200.0)
        self.params, self.initial_state, self.dt = {}, case.initial_state, 1200.0


class Record(Callback):
    def __init__(self):
        self.steps = []

    def __call__(self, sim, result):
        self.steps.append(result.step)


def test_writers_keep_their_own_schedules_and_files(tmp_path):
    """Two writers every 2 and 3 steps, 7 steps: each file holds step 0, its own multiples
    and the last step; callbacks run after every chunk, in order."""
    m = Model()
    coords = GridCoordinates(lat=np.rad2deg(m.grid.latitude), lon=np.rad2deg(m.grid.longitude))
    first = NetCDFWriter(tmp_path, lambda s, k: m.equation.output_fields(s), 2, coords, m.dt, name="output")
    second = NetCDFWriter(tmp_path, lambda s, k: {"vorticity": m.equation.nodal_diagnostics(s).vorticity},
                          3, coords, m.dt, name="second")
    record = Record()
    sim = Simulation(m, 7, writers=[first, second], callbacks=[HealthCheck(), record],
                     snapshots_per_chunk=2)
    summary = sim.run()
    assert summary["steps"] == 7 and summary["final_step"] == 7
    assert record.steps == [2, 4, 6, 7]  # chunks of 2 snapshots at the common interval 1
    for name, steps, variables in (("output", [0, 2, 4, 6, 7], {"ua", "va", "zg", "vor"}),
                                   ("second", [0, 3, 6, 7], {"vor"})):
        with xr.open_dataset(tmp_path / f"{name}.nc", decode_times=False) as ds:
            np.testing.assert_allclose(ds.time.values, np.array(steps) * m.dt / 3600.0)
            assert set(ds.data_vars) - set(CELL_VARIABLES) == variables
    with xr.open_dataset(tmp_path / "output.nc", decode_times=False) as a, \
            xr.open_dataset(tmp_path / "second.nc", decode_times=False) as b:
        np.testing.assert_array_equal(a.vor.values[[0, 3, 4]], b.vor.values[[0, 2, 3]])


def test_restart_files_are_keyed_by_pytree_path(tmp_path):
    m = Model()
    carry = m.stepper.init(m.initial_state, m.params)
    path = tmp_path / "restart.npz"
    restart.write_restart(path, carry, 5, m.dt, {"experiment": "williamson6"})
    back, step = restart.read_restart(tmp_path, carry, m.dt, {"experiment": "williamson6"})
    assert step == 5
    for a, b in zip(np.asarray(back.current.vorticity), np.asarray(carry.current.vorticity)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(restart.RestartMismatch, match="experiment='williamson6'.*'galewsky'"):
        restart.read_restart(path, carry, m.dt, {"experiment": "galewsky"})
    with pytest.raises(restart.RestartMismatch, match="time step"):
        restart.read_restart(path, carry, 2 * m.dt, {"experiment": "williamson6"})
    other = {"ocean": {"h": jnp.zeros(3)}, "atmosphere": carry}
    with pytest.raises(restart.RestartMismatch, match=r"no field \"\['atmosphere'\]"):
        restart.load_tree(path, other)


def test_restart_callback_skips_non_finite_chunks(tmp_path):
    """A chunk that blew up stops the run (HealthCheck first) before a restart is written."""
    bad = Model()
    bad.stepper = time_integration.make_stepper("leapfrog", bad.equation, 1.0e6)
    sim = Simulation(bad, 40, callbacks=[HealthCheck(), RestartWriter(tmp_path / "r.npz")],
                     snapshots_per_chunk=40)
    with pytest.raises(BlowUp) as err:
        sim.run()
    assert err.value.step >= 1 and err.value.fields
    assert not (tmp_path / "r.npz").exists()


def test_atomic_write_leaves_old_file_or_new_file(tmp_path):
    target = tmp_path / "x.txt"
    files.atomic_write_text(target, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        files.atomic_write(target, broken)
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow  # moved out of the default suite (its time budget)
def test_chunks_sized_by_wall_time_give_the_same_output(tmp_path):
    """run.progress_seconds=0.3 on a 100-day Held–Suarez run (> 3 s of stepping): >= 10 progress
    updates with increasing steps, none more than twice the target apart (compiling
    excluded), at most 2 compiled programs, and the output equal to the bit to that of
    snapshot-sized chunks (run.progress_seconds=null)."""
    import xarray as xr

    from esm.app.cli import run_main

    common = ["experiment=held_suarez", "resolution=t21", "run.days=100", "run.progress=false"]
    assert run_main(common + ["run.progress_seconds=0.3", f"hydra.run.dir={tmp_path / 'timed'}"]) == 0
    assert run_main(common + ["run.progress_seconds=null", f"hydra.run.dir={tmp_path / 'fixed'}"]) == 0
    summary = json.loads((tmp_path / "timed" / "summary.json").read_text())
    log = np.asarray(summary["progress"])
    assert log[-1, 0] >= 3.0 and len(log) >= 10
    assert np.all(np.diff(log[:, 1]) > 0) and log[-1, 1] == summary["steps"]
    assert np.diff(np.concatenate([[0.0], log[:, 0]])).max() <= 2 * 0.3
    assert summary["compile_count"] <= 2
    timed = xr.open_dataset(tmp_path / "timed" / "output.nc")
    fixed = xr.open_dataset(tmp_path / "fixed" / "output.nc")
    assert timed.sizes["time"] == 101
    for v in fixed.data_vars:
        np.testing.assert_array_equal(timed[v].values, fixed[v].values)


def test_progress_without_a_terminal_prints_plain_lines(tmp_path):
    """stderr to a pipe: no bar (no carriage returns), one plain progress line at the end for
    a short run (at most one every 30 s)."""
    code = "import sys; from esm.app.cli import run_main; sys.exit(run_main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "experiment=williamson6", "resolution=t21",
                           "run.days=1", f"hydra.run.dir={tmp_path / 'r'}"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "simulated days/s" in line]
    assert any(line.startswith("williamson6: step 48/48 (1.00 days") for line in lines), proc.stderr
