"""Speed, compile time, gradient cost and memory of the moist aquaplanet, against JCM.

In ONE process, float32, for the moist aquaplanet (``experiment=aquaplanet``: Frierson-class
moist physics over prescribed QOBS SST) at T31 L8 (dt 30 min) and T42 L20 (dt ``--t42-dt``,
default 12 min, JCM's own stable step for SPEEDY at L20), both models measured by the same
helpers (``jcm_anchor.py``):

  forward     compile seconds (``jit(...).lower(...).compile()``, tracing included) and
              simulated days per wall second (and simulated years per wall day) of ``--days``
              days: best of ``--repeats`` timed calls after one warm-up call;
  dynamics    ms per step without physics. diffesm: the same aquaplanet model with
              ``physics.schemes=[]`` (an empty ColumnPhysics; the humidity tracer is still
              advected and the column-physics grid transforms still run) or, with
              ``--esm-dynamics held_suarez``, the held_suarez experiment with a humidity
              tracer; JCM: ``model.dycore.step(state, None)`` of the SPEEDY model (dinosaur's
              Eulerian IMEX-RK SIL3 core, 3 implicit stages per step, vs diffesm's
              semi-implicit leapfrog);
  spin-up     ``--spinup-days`` (default 10) of integration before the forward and gradient
              runs of both moist models (diffesm: ``experiment.spinup_days``; JCM:
              ``model.run``), not timed: from JCM's dry resting start SPEEDY convection does
              not fire for about a week, and dJ/dtrcnv would be exactly zero;
  gradient    wall ratio and compile seconds of ``jax.grad`` of J = Gauss-weighted global
              mean temperature of the lowest level of the final state after
              ``--gradient-days`` days (default 5) with respect to one convection parameter:
              diffesm ``params["convection"]["tau"]`` through ``esm.core.rollout.integrate``
              under ``--checkpoint`` (default ``step``, the default of calibration/ and
              configs/calibrate.yaml); JCM ``Parameters.convection.trcnv`` under its own
              checkpointing (see jcm_anchor.py);
  memory      ``compiled.memory_analysis()`` (peak = temp + argument + output - alias, and
              XLA's ``peak_memory_in_bytes`` where given) and the RSS rise during the first
              call; the process's RSS high-water mark at the end.

SPEEDY physics (JCM) does more per column than diffesm's gray-radiation Frierson physics
(clouds, shortwave bands, longwave, land/sea surface fluxes): the comparison is of the cost
of a moist aquaplanet each model ships, not of the same physics. SpeedyWeather.jl's
PrimitiveWet T31 L8 figure (``--speedyweather-sypd``, default 856 SYPD on one x86 core, as
the issue quotes its benchmark README; the README's value changes between releases) is
printed beside them.

    python benchmarks/moist_speed.py                  # full run (T31 L8 and T42 L20)
    python benchmarks/moist_speed.py --quick          # smoke: T31 L8, 1 day, 1 repeat
    python benchmarks/moist_speed.py --quick --schemes none   # before the moist schemes exist
    python benchmarks/moist_speed.py --out benchmarks/results/moist_YYYY-MM-DD.txt \\
        --doc docs/benchmarks.md

Acceptance (issue): T31 L8 moist >= 2.5x JCM's simulated days per wall second at the same
dt; gradient/forward <= 4 under the default checkpoint policy; gradient compile time < half
of JCM's; peak memory reported. The checks are printed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import sys
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jcm_anchor import (SECONDS_PER_DAY, compile_timed, max_rss_bytes, memory_of,  # noqa: E402
                        run_timed, speed_fields, weighted_mean)

SPEEDYWEATHER_SYPD = 856.0
RES = {31: "t31", 42: "t42"}


class Tee(io.TextIOBase):
    """stdout that is also kept (for ``--out``)."""

    def __init__(self, stream):
        self.stream, self.buffer_ = stream, io.StringIO()

    def write(self, s):
        self.stream.write(s)
        self.buffer_.write(s)
        return len(s)

    def flush(self):
        self.stream.flush()


from primitive_equations_speed import machine  # noqa: E402  (same directory)


# =============================================================================
# diffesm
# =============================================================================

def esm_setup(truncation: int, levels: int, dt_minutes: float, schemes=None,
              experiment: str = "aquaplanet", extra=()):
    """The model ``build_model`` makes of the hydra-composed config, like ``esm-run``:
    ``experiment=aquaplanet resolution=tNN levels=L run.dt_minutes=DT`` (+ ``schemes``:
    ``None`` keeps the config's list, ``[]`` gives an empty ColumnPhysics)."""
    from esm.app.build import build_model
    from esm.app.cli import compose, resolved

    overrides = [f"experiment={experiment}", f"resolution={RES[truncation]}",
                 f"levels={levels}", f"run.dt_minutes={dt_minutes:g}", "precision=float32",
                 *extra]
    if schemes is not None:
        overrides.append(f"physics.schemes=[{','.join(schemes)}]")
    plain, _ = resolved(compose(overrides))
    jax.config.update("jax_enable_x64", False)
    return build_model(plain), overrides


def _esm_lowest_mean_t(st):
    eq = st.equation
    t_ref = float(np.asarray(eq.reference_temperature, np.float64)[-1])

    def f(state):
        t = eq.grid.to_nodal(state.temperature_variation[-1]) + t_ref  # (nlat, nlon)
        return weighted_mean(t, lat_axis=0)
    return f


def _spinup(days):
    return (f"experiment.spinup_days={days:g}",) if days else ()


def esm_forward_speed(truncation, levels, dt_minutes, days, repeats, schemes=None,
                      experiment="aquaplanet", extra=(), label="diffesm", spinup_days=0.0):
    from esm.core import rollout

    s, overrides = esm_setup(truncation, levels, dt_minutes, schemes, experiment,
                             (*extra, *_spinup(spinup_days)))
    st = s.stepper
    n = round(days * SECONDS_PER_DAY / s.dt)

    def run(carry, p):
        return rollout.integrate(st.step, carry, p, n)[0]

    carry = jax.jit(lambda x, p: st.init(x, p))(s.initial_state, s.params)
    compiled, compile_s = compile_timed(run, carry, s.params)
    wall, out, rss = run_timed(compiled, carry, s.params, repeats=repeats)
    t_low = float(jax.jit(_esm_lowest_mean_t(st))(st.current(out)))
    names = [getattr(x, "name", type(x).__name__)
             for x in getattr(getattr(st.equation, "column_physics", None), "schemes", ())]
    return {"model": label, "config": f"T{truncation} L{levels} dt {dt_minutes:g} min",
            "overrides": " ".join(overrides), "schemes": names, "days": n * s.dt / SECONDS_PER_DAY,
            "compile_s": compile_s, "run_s": wall,
            **speed_fields(n * s.dt / SECONDS_PER_DAY, wall, s.dt),
            "final_T_lowest_K": t_low, "finite": bool(np.isfinite(t_low)),
            "memory": memory_of(compiled), "rss_rise_bytes": rss}


def _replace_param(params, scheme, name, value):
    return {k: ({**v, name: value} if k == scheme else v) for k, v in params.items()}


def esm_gradient_ratio(truncation, levels, dt_minutes, days, repeats, checkpoint="step",
                       param="convection.tau", schemes=None, spinup_days=0.0):
    from esm.core import rollout

    s, overrides = esm_setup(truncation, levels, dt_minutes, schemes,
                             extra=_spinup(spinup_days))
    st = s.stepper
    n = round(days * SECONDS_PER_DAY / s.dt)
    scheme, name = param.split(".", 1)
    note = None
    if scheme not in s.params or name not in s.params[scheme]:
        note = f"{param} not in the model's parameters; used hyperdiffusion.timescale"
        scheme, name = "hyperdiffusion", "timescale"
    theta0 = jnp.asarray(s.params[scheme][name])
    mean_t = _esm_lowest_mean_t(st)

    def loss(theta, x):
        p = _replace_param(s.params, scheme, name, theta)
        carry, _ = rollout.integrate(st.step, st.init(x, p), p, n, checkpoint=checkpoint)
        return mean_t(st.current(carry))

    results = {}
    for label, fn in (("forward", loss), ("gradient", jax.grad(loss))):
        compiled, compile_s = compile_timed(fn, theta0, s.initial_state)
        wall, out, rss = run_timed(compiled, theta0, s.initial_state, repeats=repeats)
        results[label] = {"compile_s": compile_s, "run_s": wall, "value": float(out),
                          "memory": memory_of(compiled), "rss_rise_bytes": rss}
    line = {"model": "diffesm", "config": f"T{truncation} L{levels} dt {dt_minutes:g} min",
            "overrides": " ".join(overrides), "days": n * s.dt / SECONDS_PER_DAY,
            "parameter": f"{scheme}.{name}", "theta": float(theta0), "policy": checkpoint,
            "ratio": results["gradient"]["run_s"] / results["forward"]["run_s"],
            "forward": results["forward"], "gradient": results["gradient"],
            "grad_finite": bool(np.isfinite(results["gradient"]["value"]))}
    if note:
        line["note"] = note
    return line


# =============================================================================
# the run
# =============================================================================

def _emit(rows, line):
    rows.append(line)
    print("RAW " + json.dumps(line, default=str), flush=True)


def _attempt(rows, part, fn, **kw):
    try:
        line = fn(**kw)
    except Exception as e:  # one failing part must not lose the others' numbers
        traceback.print_exc()
        line = {"model": kw.get("label", fn.__name__), "error": f"{type(e).__name__}: {e}"}
    line["part"] = part
    _emit(rows, line)
    return line


def _mib(x):
    return f"{x / 2**20:.1f}" if isinstance(x, (int, float)) else "-"


def _peak(line, key=None):
    m = (line.get(key) or {}).get("memory", {}) if key else line.get("memory", {})
    return m.get("peak_bytes")


def run_config(rows, truncation, levels, dt, a):
    days, gdays = a.days, a.gradient_days
    schemes = None if a.schemes == "default" else [x for x in a.schemes.split(",")
                                                    if x and x != "none"]
    cfg = {}
    if not a.skip_diffesm:
        cfg["esm"] = _attempt(rows, "forward", esm_forward_speed, truncation=truncation,
                              levels=levels, dt_minutes=dt, days=days, repeats=a.repeats,
                              schemes=schemes, spinup_days=a.spinup_days)
        if a.esm_dynamics == "held_suarez":
            dyn = dict(experiment="held_suarez", extra=("experiment.tracers=[specific_humidity]",),
                       label="diffesm dynamics only (held_suarez + q tracer)")
        else:
            dyn = dict(schemes=[], label="diffesm dynamics only (aquaplanet, physics.schemes=[])")
        cfg["esm_dyn"] = _attempt(rows, "dynamics", esm_forward_speed, truncation=truncation,
                                  levels=levels, dt_minutes=dt, days=days, repeats=a.repeats,
                                  **dyn)
        if not a.skip_gradient:
            cfg["esm_grad"] = _attempt(rows, "gradient", esm_gradient_ratio,
                                       truncation=truncation, levels=levels, dt_minutes=dt,
                                       days=gdays, repeats=a.repeats, checkpoint=a.checkpoint,
                                       param=a.param, schemes=schemes,
                                       spinup_days=a.spinup_days)
    if not a.skip_jcm:
        try:
            import jcm_anchor as ja

            ja.jcm_version()
        except ImportError as e:
            _emit(rows, {"part": "jcm", "model": "jcm", "error": f"jcm not installed ({e}); "
                         "pip install -e '.[bench]'"})
            return cfg
        n = round(days * SECONDS_PER_DAY / (dt * 60.0))
        cfg["jcm"] = _attempt(rows, "forward", ja.jcm_forward_speed, truncation=truncation,
                              layers=levels, dt_minutes=dt, days=days, repeats=a.repeats,
                              spinup_days=a.spinup_days)
        cfg["jcm_dyn"] = _attempt(rows, "dynamics", ja.jcm_dynamics_speed,
                                  truncation=truncation, layers=levels, dt_minutes=dt,
                                  n_steps=n, repeats=a.repeats)
        if not a.skip_gradient:
            cfg["jcm_grad"] = _attempt(rows, "gradient", ja.jcm_gradient_ratio,
                                       truncation=truncation, layers=levels, dt_minutes=dt,
                                       days=gdays, repeats=a.repeats,
                                       spinup_days=a.spinup_days)
    return cfg


def table(results) -> str:
    out = ["| config | model | sim days/s | SYPD | ms/step | dyn-only ms/step | compile s "
           "| grad/fwd | grad compile s | fwd peak MiB | grad peak MiB | RSS rise MiB |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    f = lambda x, spec=".3g": format(x, spec) if isinstance(x, (int, float)) else "-"  # noqa: E731
    for config, cfg in results.items():
        for key, name in (("esm", "diffesm"), ("jcm", "JCM (SPEEDY)")):
            fw, dyn, gr = cfg.get(key, {}), cfg.get(key + "_dyn", {}), cfg.get(key + "_grad", {})
            if not (fw or dyn or gr):
                continue
            label = name
            if key == "esm" and fw.get("schemes") is not None:
                label += f" [{','.join(fw['schemes']) or 'no schemes'}]"
            out.append(
                f"| {config} | {label} | {f(fw.get('sim_days_per_second'))} "
                f"| {f(fw.get('sim_years_per_day'), '.0f')} | {f(fw.get('ms_per_step'))} "
                f"| {f(dyn.get('ms_per_step'))} | {f(fw.get('compile_s'), '.1f')} "
                f"| {f(gr.get('ratio'))} | {f((gr.get('gradient') or {}).get('compile_s'), '.1f')} "
                f"| {_mib(_peak(fw))} | {_mib(_peak(gr, 'gradient'))} "
                f"| {_mib(fw.get('rss_rise_bytes'))} |")
    return "\n".join(out)


def checks(results, a) -> list[str]:
    lines = []
    cfg = results.get("T31 L8 dt 30 min", {})
    e, j = cfg.get("esm", {}), cfg.get("jcm", {})
    moist = bool(e.get("schemes"))
    if "sim_days_per_second" in e and "sim_days_per_second" in j:
        r = e["sim_days_per_second"] / j["sim_days_per_second"]
        lines.append(f"T31 L8 speed diffesm/JCM = {r:.2f} (target >= 2.5): "
                     f"{'PASS' if r >= 2.5 else 'FAIL'}"
                     + ("" if moist else "  [diffesm ran WITHOUT moist schemes: not the test]"))
    for config, c in results.items():
        g, jg = c.get("esm_grad", {}), c.get("jcm_grad", {})
        if "ratio" in g:
            lines.append(f"{config} diffesm gradient/forward = {g['ratio']:.2f} under "
                         f"checkpoint={g['policy']} (target <= 4): "
                         f"{'PASS' if g['ratio'] <= 4 else 'FAIL'}"
                         + (f"  [{g['note']}]" if g.get("note") else ""))
        if "gradient" in g and "gradient" in jg:
            r = g["gradient"]["compile_s"] / jg["gradient"]["compile_s"]
            lines.append(f"{config} gradient compile diffesm/JCM = {r:.2f} "
                         f"(target < 0.5): {'PASS' if r < 0.5 else 'FAIL'}")
        if "sim_years_per_day" in c.get("esm", {}) and config.startswith("T31 L8"):
            lines.append(f"{config} diffesm {c['esm']['sim_years_per_day']:.0f} SYPD vs "
                         f"SpeedyWeather.jl PrimitiveWet {a.speedyweather_sypd:g} SYPD "
                         "(published, one x86 core, SPEEDY physics; not run here)")
    lines.append(f"process RSS high-water mark: {max_rss_bytes() / 2**20:.0f} MiB")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: T31 L8 only, 1 simulated day (gradient too), 1 repeat")
    ap.add_argument("--only", choices=["t31", "t42"], action="append")
    ap.add_argument("--days", type=float, default=None, help="forward days (default 5)")
    ap.add_argument("--gradient-days", type=float, default=None, help="default 5")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls (default 3)")
    ap.add_argument("--spinup-days", type=float, default=None,
                    help="days each moist model is integrated before its forward and gradient "
                         "runs (default 10; 0 with --quick). JCM starts dry and at rest, and "
                         "its convection first fires after about a week: from rest dJ/dtrcnv "
                         "is exactly 0")
    ap.add_argument("--t42-dt", type=float, default=12.0, help="T42 L20 time step, minutes")
    ap.add_argument("--schemes", default="default",
                    help="diffesm physics.schemes: 'default' (the config's), 'none', or a "
                         "comma list")
    ap.add_argument("--esm-dynamics", choices=["aquaplanet_empty", "held_suarez"],
                    default="aquaplanet_empty")
    ap.add_argument("--checkpoint", default="step", choices=["none", "step", "nested"])
    ap.add_argument("--param", default="convection.tau", help="diffesm <scheme>.<name>")
    ap.add_argument("--speedyweather-sypd", type=float, default=SPEEDYWEATHER_SYPD)
    ap.add_argument("--skip-jcm", action="store_true")
    ap.add_argument("--skip-diffesm", action="store_true")
    ap.add_argument("--skip-gradient", action="store_true")
    ap.add_argument("--out", help="also write the whole output (table + RAW lines) here")
    ap.add_argument("--doc", help="append the table and checks to this markdown file")
    a = ap.parse_args()
    a.days = a.days or (1.0 if a.quick else 5.0)
    a.gradient_days = a.gradient_days or (1.0 if a.quick else 5.0)
    a.repeats = a.repeats or (1 if a.quick else 3)
    if a.spinup_days is None:
        a.spinup_days = 0.0 if a.quick else 10.0
    tee = Tee(sys.stdout)
    sys.stdout = tee
    jax.config.update("jax_enable_x64", False)
    print(f"# {datetime.date.today()} — {machine()}")
    print(f"# command: python benchmarks/moist_speed.py {' '.join(sys.argv[1:])}")
    try:
        import jcm_anchor as ja

        print(f"# jcm {ja.jcm_version()}")
    except ImportError:
        print("# jcm not installed")
    jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.ones(3)))  # backend start-up
    configs = [(31, 8, 30.0)]
    if not a.quick:
        configs.append((42, 20, a.t42_dt))
    if a.only:
        configs = [c for c in [(31, 8, 30.0), (42, 20, a.t42_dt)] if RES[c[0]] in a.only]
    results = {}
    for trunc, lev, dt in configs:
        name = f"T{trunc} L{lev} dt {dt:g} min"
        print(f"\n## {name}", flush=True)
        results[name] = run_config([], trunc, lev, dt, a)
    text = table(results)
    summary = checks(results, a)
    print("\n" + text + "\n")
    for line in summary:
        print("# " + line)
    sys.stdout = tee.stream
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(tee.buffer_.getvalue())
    if a.doc:
        with open(a.doc, "a") as f:
            f.write(f"\n## Moist aquaplanet against JCM ({datetime.date.today()})\n\n"
                    f"`python benchmarks/moist_speed.py {' '.join(sys.argv[1:])}` on "
                    f"{machine()}.\n\n{text}\n\n" + "".join(f"- {x}\n" for x in summary))


if __name__ == "__main__":
    main()
