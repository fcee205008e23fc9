"""Sharding checks run in a subprocess with forced CPU devices (tests/test_parallel.py):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/parallel_checks.py OUT CHECK

Forced host devices are a correctness check of the sharded programs (same numbers as one
device), not a measure of speed. Each check writes ``OUT/CHECK.json``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def fields(ds: xr.Dataset) -> list[str]:
    """The model's fields (not the cell bounds and areas)."""
    return [v for v in ds.data_vars if "time" in ds[v].dims]


def esm_run(out: Path, name: str, *overrides: str) -> tuple[xr.Dataset, dict]:
    from esm.app.cli import run_main

    run_dir = out / name
    code = run_main(["experiment=held_suarez", "resolution=t21", "run.days=1",
                     "run.progress=false", f"hydra.run.dir={run_dir}", *overrides])
    assert code == 0, (name, code)
    summary = json.loads((run_dir / "summary.json").read_text())
    return xr.open_dataset(run_dir / "output.nc").load(), summary


def members(out: Path, precision: str, counts=(4, 3)) -> dict:
    """members=4 and members=3 over 4 devices vs 1 device; member k vs a 1-member run."""
    import jax

    result = {"visible_devices": len(jax.devices())}
    for n in counts:
        many, s_many = esm_run(out, f"{precision}_m{n}_d4", f"ensemble.members={n}",
                               f"precision={precision}")
        one, s_one = esm_run(out, f"{precision}_m{n}_d1", f"ensemble.members={n}",
                             f"precision={precision}", "parallel.devices=1")
        diffs = {v: rel(many[v], one[v]) for v in fields(many)}
        if precision == "float32":  # T - T(0): the anomaly, not 250 K of offset
            diffs["ta_anomaly"] = rel(many.ta - many.ta.isel(time=0), one.ta - one.ta.isel(time=0))
        result[f"m{n}"] = {
            "diffs": diffs, "member_size": int(many.sizes["member"]),
            "members": many.member.values.tolist(), "devices": s_many.get("devices"),
            "shard_shape": s_many.get("shard_shape"), "global_shape": s_many.get("global_shape"),
            "one_device_summary_devices": s_one.get("devices"),
            "spread_ta": float(many.ta.isel(time=-1).std("member").mean()),
        }
        if n == 4:
            single, _ = esm_run(out, f"{precision}_member2", "ensemble.members=1",
                                "ensemble.first_member=2", f"precision={precision}",
                                "parallel.devices=1")
            result["member2"] = {v: rel(many[v].sel(member=2), single[v].sel(member=2))
                                 for v in fields(many)}
            result["member2_size"] = int(single.sizes["member"])
    return result


def levels(out: Path) -> dict:
    """T42 L20 Held–Suarez sharded over levels on 4 devices vs unsharded (float64, 1 day);
    argument sizes of the compiled chunks and the collectives in the sharded HLO."""
    import jax

    from esm.app.build import build_layout, build_model
    from esm.app.cli import validated
    from esm.driver.simulation import Simulation

    jax.config.update("jax_enable_x64", True)
    argv = ["experiment=held_suarez", "resolution=t42", "levels=20", "precision=float64",
            "run.days=1"]
    finals, analysis = {}, {}
    for name, extra in (("sharded", ["parallel.levels=true"]), ("single", ["parallel.devices=1"])):
        cfg = validated(argv + extra)
        setup = build_model(cfg)
        layout = build_layout(cfg, setup)
        steps = round(86400 / setup.dt)
        sim = Simulation(setup, steps, layout=layout, snapshots_per_chunk=1)
        sim.run()
        (compiled,) = sim._compiled.values()
        text = compiled.as_text()
        memory = compiled.memory_analysis()
        analysis[name] = {
            "argument_bytes": int(memory.argument_size_in_bytes),
            "collectives": sorted({op for op in ("all-gather", "all-reduce", "reduce-scatter",
                                                 "collective-permute", "all-to-all")
                                   if op in text}),
            "layout": None if layout is None else type(layout).__name__,
        }
        state = setup.stepper.current(sim.final_carry)
        finals[name] = jax.device_get(state)
    diffs = {}
    for key in ("vorticity", "divergence", "temperature_variation", "log_surface_pressure"):
        diffs[key] = rel(getattr(finals["sharded"], key), getattr(finals["single"], key))
    return {"diffs": diffs, **analysis}


def calibration(out: Path) -> dict:
    """The twin Held–Suarez loss and gradient with 4 windows sharded over 4 devices vs 1."""
    import jax

    from calibration.assembly import build_problem
    from calibration.optimizers import make_method
    from esm.app.build import chosen_devices
    from esm.app.cli import compose, resolved

    jax.config.update("jax_enable_x64", True)
    values = {}
    for name, extra in (("sharded", []), ("single", ["parallel.devices=1"])):
        plain, _ = resolved(compose(["experiment=twin_held_suarez", "observations.windows.count=4",
                                     "observations.windows.hours=12", *extra],
                                    config_name="calibrate"))
        built = build_problem(plain)
        layout = built.problem.forward.layout
        z = built.z0 + 0.05
        loss, grad = jax.jit(jax.value_and_grad(built.problem.loss))(z)
        # one EKI iteration, its 6 + 1 runs spread over the devices (or not)
        eki = make_method("eki", built.problem, {"eki": {"members": 6}},
                          devices=chosen_devices(plain))
        state = eki.step(eki.init(z, jax.random.PRNGKey(0)))
        values[name] = (float(loss), np.asarray(grad),
                        None if layout is None else layout.n_devices,
                        np.asarray(state["ensemble"]),
                        None if eki.layout is None else eki.layout.n_devices)
    (l4, g4, d4, e4, k4), (l1, g1, d1, e1, k1) = values["sharded"], values["single"]
    return {"loss": [l4, l1], "loss_rel": abs(l4 - l1) / abs(l1), "grad_rel": rel(g4, g1),
            "devices": [d4, d1], "eki_rel": rel(e4, e1), "eki_devices": [k4, k1]}


COLLECTIVE = re.compile(r"(all-gather|all-reduce|reduce-scatter|collective-permute|all-to-all)"
                        r"(?:-start)?\(.*?op_name=\"([^\"]*)\"")


def member_collectives() -> dict:
    """The collectives (op, JAX op name) in the compiled programs of a 4-member T21 run over
    4 devices: the driver's chunk and the ensemble step alone. Each device must step its own
    member: no all-gather of the ensemble (XLA's partitioner, left to itself, gathered it
    before every FFT)."""
    import jax

    from esm.app.build import build_layout, build_model
    from esm.app.cli import validated
    from esm.driver.simulation import Simulation

    cfg = validated(["experiment=held_suarez", "resolution=t21", "run.days=1",
                     "ensemble.members=4", "precision=float64"])
    setup = build_model(cfg)
    layout = build_layout(cfg, setup)
    sim = Simulation(setup, 48, layout=layout, snapshots_per_chunk=1)
    sim.run()
    chunk = [m.groups() for c in sim._compiled.values() for m in COLLECTIVE.finditer(c.as_text())]
    carry = layout.place(layout.pad(setup.stepper.init(setup.initial_state, setup.params)))
    step = jax.jit(layout.map(setup.stepper.step)).lower(carry, setup.params).compile()
    return {"layout": type(layout).__name__, "chunk": chunk,
            "step": [m.groups() for m in COLLECTIVE.finditer(step.as_text())]}


def members_float64(out: Path) -> dict:
    return {**members(out, "float64"), "collectives": member_collectives()}


CHECKS = {"members_float64": members_float64,
          "members_float32": lambda out: members(out, "float32", counts=(4,)),
          "levels": levels, "calibration": calibration}

if __name__ == "__main__":
    out, check = Path(sys.argv[1]), sys.argv[2]
    if check == "members_float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    result = CHECKS[check](out)
    (out / f"{check}.json").write_text(json.dumps(result, indent=1))
