"""Speed, gradient cost, memory and floating-point rate of the shallow-water model.

Williamson case 6 with each resolution's default dt and del^4 hyperdiffusion
(configs/resolution/*.yaml). Four parts (``--parts``; default all):

* ``speed``: simulated days per wall second for each stepper and both Fourier methods
  (``fft``, ``matmul``) at T42 and T85, and dinosaur's ``imex_rk_sil3`` at the same dt as
  our ``imex_sil3`` (same precision, same hyperdiffusion as a step filter).
* ``grad``: wall time of gradient / forward for a 5-day T42 leapfrog rollout with loss =
  mean square of the final height, for checkpoint policies none, step, nested; and XLA's
  memory_analysis() of the compiled functions.
* ``flops``: XLA cost_analysis() flops of one jitted step, an analytic count of the
  Legendre matmuls, and the fraction of this machine's measured float32 (or float64)
  matmul rate that a step achieves.

Timing method: the jitted function is called once to compile and warm up, then called
repeatedly (``block_until_ready`` each time) until at least ``--min-seconds`` of wall time
have elapsed; the reported rate is total simulated time / total wall time of those calls
(compilation excluded). Run from the repository root:

    /work/venv/bin/python benchmarks/shallow_water_speed.py              # float32, all parts
    /work/venv/bin/python benchmarks/shallow_water_speed.py --quick      # smoke run (~1 min)
    /work/venv/bin/python benchmarks/shallow_water_speed.py --precision float64
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", choices=("float32", "float64"), default="float32")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: T42 only, short timings, 1-day gradient rollout")
    p.add_argument("--resolutions", nargs="+", default=None,
                   help="resolutions for the speed part (default t42 t85; --quick: t42)")
    p.add_argument("--parts", nargs="+", choices=("speed", "grad", "flops"),
                   default=["speed", "grad", "flops"])
    p.add_argument("--min-seconds", type=float, default=None,
                   help="minimum timed wall seconds per measurement (default 3; --quick 0.3)")
    p.add_argument("--grad-days", type=float, default=None,
                   help="rollout length for the gradient part (default 5; --quick 1)")
    p.add_argument("--no-dinosaur", action="store_true")
    p.add_argument("--doc", type=Path, default=None,
                   help="also write the tables into this markdown file's marked section "
                        "(e.g. docs/benchmarks.md)")
    return p.parse_args(argv)


ARGS = _parse() if __name__ == "__main__" else None

import jax  # noqa: E402

if ARGS is not None and ARGS.precision == "float64":
    jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from esm.core import constants, rollout, time_integration
from esm.atmosphere import cases  # noqa: E402
from esm.core.spherical_harmonics import SphericalHarmonicGrid  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# configs/resolution/*.yaml: default dt (minutes) and del^4 e-folding time at n = T (hours).
DEFAULTS = {"t21": (30.0, 24.0), "t31": (20.0, 18.0), "t42": (15.0, 14.0),
            "t63": (10.0, 11.0), "t85": (7.5, 8.6), "t106": (6.0, 6.0), "t170": (3.75, 3.6)}
STEPPERS = ("leapfrog", "imex_sil3", "ars443")


def _load_defaults():
    """Read dt and tau from configs/resolution/*.yaml (falls back to DEFAULTS)."""
    out = dict(DEFAULTS)
    for path in (REPO / "configs" / "resolution").glob("*.yaml"):
        text = path.read_text()
        dt = re.search(r"^dt_minutes:\s*([0-9.]+)", text, re.M)
        tau = re.search(r"^hyperdiffusion_timescale_hours:\s*([0-9.]+)", text, re.M)
        if dt and tau:
            out[path.stem] = (float(dt.group(1)), float(tau.group(1)))
    return out


# ----------------------------------------------------------------------------- helpers
def machine_info() -> dict:
    model, sockets = "unknown", ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip()}


def other_load() -> tuple[float, list[str]]:
    """1-minute load average and other processes using > 10% CPU right now."""
    load = os.getloadavg()[0]
    busy = []
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"],
                             capture_output=True, text=True, check=False).stdout
        for line in out.splitlines()[1:]:
            pid, pcpu, cmd = line.split(None, 2)
            if int(pid) != os.getpid() and float(pcpu) > 10.0 and "ps -eo" not in cmd:
                busy.append(f"{pcpu}% {cmd[:60]}")
    except (OSError, ValueError):
        pass
    return load, busy


def hyper(hours: float, dtype) -> dict:
    return {"hyperdiffusion": {"timescale": jnp.asarray(hours * 3600.0, dtype)}}


def time_calls(fn, arg, min_seconds: float):
    """Time ``fn`` after one warm-up call (compile + first run).

    Calls ``x = fn(x)`` (``block_until_ready`` each) until ``min_seconds`` of wall time and at
    least 3 calls have accumulated; returns (best seconds per call, calls, first result). The
    best of several calls is robust to other processes on a shared machine.
    """
    out = jax.block_until_ready(fn(arg))  # compile + warm-up
    calls, total, best, x = 0, 0.0, float("inf"), arg
    while total < min_seconds or calls < 3:
        t0 = time.perf_counter()
        x = jax.block_until_ready(fn(x))
        dt = time.perf_counter() - t0
        total, best, calls = total + dt, min(best, dt), calls + 1
    return best, calls, out


def md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(n) -> str:
    return f"{n / 2**20:.1f}"


def peak(mem) -> str:
    value = getattr(mem, "peak_memory_in_bytes", None)
    return "n/a" if value is None else mib(value)


# ------------------------------------------------------------------------------- speed
def make_step(stepper_name, equation, dt):
    """(stepper, step function, init function) for a stepper name."""
    stepper = time_integration.make_stepper(stepper_name, equation, dt)
    # Plain functions, not bound methods: jax.jit would try to hash the module.
    return stepper, lambda c, p: stepper.step(c, p), lambda x, p: stepper.init(x, p)


def ours_rate(name, stepper_name, fourier, precision, defaults, min_seconds, chunk_days):
    """Simulated days per wall second of our model (and the compiled chunk's step count)."""
    dt_min, tau_h = defaults[name]
    dt = 60.0 * dt_min
    grid = SphericalHarmonicGrid.from_name(name, dtype=precision, fourier=fourier)
    case = cases.williamson6(grid)
    _, step, init = make_step(stepper_name, case.equation, dt)
    params = hyper(tau_h, precision)
    n = max(1, int(round(chunk_days * constants.SECONDS_PER_DAY / dt)))
    carry0 = jax.jit(init)(case.initial_state, params)

    @jax.jit
    def chunk(carry):
        return rollout.advance(step, carry, params, n)

    t0 = time.perf_counter()
    out = jax.block_until_ready(chunk(carry0))
    first = time.perf_counter() - t0
    seconds, calls, _ = time_calls(chunk, out, min_seconds)
    finite = bool(all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(out)))
    return {"days_per_s": n * dt / constants.SECONDS_PER_DAY / seconds,
            "ms_per_step": 1e3 * seconds / n, "steps": n, "calls": calls,
            "first_call_s": first, "finite": finite, "dt": dt}


def dinosaur_rate(name, precision, defaults, min_seconds, chunk_days, impl="real"):
    """Same measurement for dinosaur's imex_rk_sil3 with the same hyperdiffusion filter."""
    from dinosaur import shallow_water as dsw
    from dinosaur import spherical_harmonic, time_integration as dti
    import dinosaur_anchor as anchor

    dt_min, tau_h = defaults[name]
    dt = 60.0 * dt_min
    grid_ours = SphericalHarmonicGrid.from_name(name, dtype="float64")
    u, v, h = cases.rossby_haurwitz_fields(grid_ours)
    t, nlat = grid_ours.truncation, grid_ours.nlat
    grid, coords, specs = anchor.make_dinosaur_setup(
        t, nlat, constants.EARTH_RADIUS, constants.ANGULAR_VELOCITY, constants.GRAVITY)
    if impl == "fast":
        grid = spherical_harmonic.Grid.construct(
            max_wavenumber=t, gaussian_nodes=nlat // 2, radius=specs.radius,
            spherical_harmonics_impl=spherical_harmonic.FastSphericalHarmonics)
        from dinosaur import coordinate_systems, layer_coordinates
        coords = coordinate_systems.CoordinateSystem(
            horizontal=grid, vertical=layer_coordinates.LayerCoordinates(1))
    su = anchor.scales.units
    length_s = specs.scale.dimensionalize(1.0, su.m).magnitude
    time_s = specs.scale.dimensionalize(1.0, su.s).magnitude
    vel, geo = length_s / time_s, (length_s / time_s) ** 2
    dt_nd = dt / time_s
    dtype = jnp.dtype(precision)
    to_dino = lambda x: jnp.asarray(np.asarray(x).T, dtype)  # noqa: E731
    vor, div = spherical_harmonic.uv_nodal_to_vor_div_modal(grid, to_dino(u / vel),
                                                            to_dino(v / vel))
    phi_ref = constants.GRAVITY * 8000.0 / geo
    pot = grid.clip_wavenumbers(grid.to_modal(to_dino(constants.GRAVITY * h / geo - phi_ref)))
    state = dsw.State(vorticity=vor[None].astype(dtype), divergence=div[None].astype(dtype),
                      potential=pot[None].astype(dtype))
    eq = dsw.ShallowWaterEquations(coords, specs, None, np.array([phi_ref]))
    fil = anchor._hyperdiffusion_filter(grid, t, dt_nd, {"order": 2,
                                                         "tau_seconds": tau_h * 3600.0}, time_s)
    step = dti.step_with_filters(dti.imex_rk_sil3(eq, dt_nd), [dti.runge_kutta_step_filter(fil)])
    n = max(1, int(round(chunk_days * constants.SECONDS_PER_DAY / dt)))

    @jax.jit
    def chunk(c):
        return jax.lax.fori_loop(0, n, lambda i, x: step(x), c)

    t0 = time.perf_counter()
    out = jax.block_until_ready(chunk(state))
    first = time.perf_counter() - t0
    seconds, calls, _ = time_calls(chunk, out, min_seconds)
    dtypes = {str(x.dtype) for x in jax.tree.leaves(out)}
    finite = bool(all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(out)))
    return {"days_per_s": n * dt / constants.SECONDS_PER_DAY / seconds,
            "ms_per_step": 1e3 * seconds / n, "steps": n, "calls": calls,
            "first_call_s": first, "finite": finite, "dt": dt,
            "dtypes": ",".join(sorted(dtypes))}


def part_speed(args, defaults, resolutions):
    rows, results = [], {}
    chunk_days = 0.25 if args.quick else 1.0
    for name in resolutions:
        for fourier in ("fft", "matmul"):
            for stepper_name in STEPPERS:
                r = ours_rate(name, stepper_name, fourier, args.precision, defaults,
                              args.min_seconds, chunk_days)
                results[(name, stepper_name, fourier)] = r
                rows.append([name.upper(), f"diffesm {stepper_name}", fourier, f"{r['dt']:g}",
                             f"{r['days_per_s']:.2f}", f"{r['ms_per_step']:.2f}",
                             f"{r['first_call_s']:.1f}", "" if r["finite"] else "NON-FINITE"])
                print(f"  {rows[-1]}", flush=True)
        if not args.no_dinosaur:
            for impl, label in (("real", "RealSphericalHarmonics"),
                                ("fast", "FastSphericalHarmonics")):
                try:
                    r = dinosaur_rate(name, args.precision, defaults, args.min_seconds,
                                      chunk_days, impl)
                except Exception as e:  # noqa: BLE001
                    print(f"  dinosaur {impl} failed: {type(e).__name__}: {e}")
                    continue
                results[(name, "dinosaur", impl)] = r
                rows.append([name.upper(), "dinosaur imex_rk_sil3", label, f"{r['dt']:g}",
                             f"{r['days_per_s']:.2f}", f"{r['ms_per_step']:.2f}",
                             f"{r['first_call_s']:.1f}",
                             ("" if r["finite"] else "NON-FINITE ") + r["dtypes"]])
                print(f"  {rows[-1]}", flush=True)
    table = md_table(["res", "model / stepper", "Fourier / transforms", "dt (s)",
                      "sim days / wall s", "ms / step", "compile+first call (s)", "note"], rows)
    summary = []
    for name in resolutions:
        for stepper_name in STEPPERS:
            a, b = results[(name, stepper_name, "fft")], results[(name, stepper_name, "matmul")]
            summary.append(f"{name.upper()} {stepper_name}: matmul/fft speed "
                           f"{b['days_per_s'] / a['days_per_s']:.2f}")
        if (name, "dinosaur", "real") in results:
            d = results[(name, "dinosaur", "real")]
            best = max(results[(name, "imex_sil3", f)]["days_per_s"] for f in ("fft", "matmul"))
            summary.append(f"{name.upper()} imex_sil3 (faster Fourier) / dinosaur imex_rk_sil3 "
                           f"(RealSphericalHarmonics) speed: {best / d['days_per_s']:.2f}")
    return table, summary, results


# -------------------------------------------------------------------------------- grad
def part_grad(args, defaults):
    name, stepper_name = "t42", "leapfrog"
    dt_min, tau_h = defaults[name]
    dt = 60.0 * dt_min
    days = args.grad_days
    grid = SphericalHarmonicGrid.from_name(name, dtype=args.precision)
    case = cases.williamson6(grid)
    eq = case.equation
    params = hyper(tau_h, args.precision)
    n = int(round(days * constants.SECONDS_PER_DAY / dt))

    def make_loss(policy):
        stepper, step, init = make_step(stepper_name, eq, dt)

        def loss(state, p):
            carry = rollout.advance(step, init(state, p), p, n, checkpoint=policy)
            h = eq.nodal_diagnostics(stepper.current(carry)).height
            return jnp.mean(h * h)
        return loss

    rows, out = [], {}
    x0 = case.initial_state
    forward = jax.jit(make_loss("none"))
    fwd_s, _, value = time_calls(lambda _: forward(x0, params), 0, args.min_seconds)
    fwd_mem = forward.lower(x0, params).compile().memory_analysis()
    rows.append(["forward only", f"{fwd_s:.3f}", "1.00", mib(fwd_mem.temp_size_in_bytes),
                 peak(fwd_mem), mib(fwd_mem.argument_size_in_bytes),
                 mib(fwd_mem.output_size_in_bytes)])
    print(f"  {rows[-1]}", flush=True)
    grads = {}
    for policy in rollout.CHECKPOINT_POLICIES:
        loss_fn = make_loss(policy)
        label = f"value_and_grad, checkpoint={policy}"
        g = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
        compiled = g.lower(x0, params).compile()
        mem = compiled.memory_analysis()
        try:
            secs, _, res = time_calls(lambda _: g(x0, params), 0, args.min_seconds)
        except Exception as e:  # noqa: BLE001  (e.g. out of memory)
            rows.append([label, "failed", type(e).__name__,
                         mib(mem.temp_size_in_bytes), peak(mem), "", ""])
            continue
        grads[policy] = res
        out[policy] = {"seconds": secs, "ratio": secs / fwd_s,
                                  "temp": mem.temp_size_in_bytes}
        rows.append([label, f"{secs:.3f}",
                     f"{secs / fwd_s:.2f}", mib(mem.temp_size_in_bytes), peak(mem),
                     mib(mem.argument_size_in_bytes), mib(mem.output_size_in_bytes)])
        print(f"  {rows[-1]}", flush=True)
    # The policies change only what is stored, not the result: check the gradients agree.
    agree = ""
    if "none" in grads:
        ref = jax.tree.leaves(grads["none"][1])
        worst = 0.0
        for policy, (_, gr) in grads.items():
            for a, b in zip(jax.tree.leaves(gr), ref):
                a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                worst = max(worst, float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-300)))
        agree = (f"Max relative difference of the gradients between policies: "
                 f"{worst:.1e}.")
    table = md_table(["function", "wall s / call (best)", "ratio to forward",
                      "temp_size MiB", "peak_memory MiB", "arguments MiB", "outputs MiB"], rows)
    note = (f"T42, leapfrog, dt {dt:g} s, {days:g} days ({n} steps), loss = mean(h^2) of "
            f"the final height; gradient w.r.t. the initial state and the hyperdiffusion "
            f"timescale (jax.value_and_grad, argnums=(0, 1)); ratio = best value_and_grad "
            f"call / best forward call; memory from jax.jit(f).lower(...).compile()"
            f".memory_analysis() (temp_size = XLA temporaries, i.e. the stored residuals; "
            f"peak_memory_in_bytes as reported by XLA:CPU). {agree}")
    return table, note, out


# ------------------------------------------------------------------------------- flops
def legendre_flops(grid, explicit_evaluations: int) -> dict:
    """Dense Legendre matmul flops per step (2 flops per multiply-add).

    One transform of one field (forward or inverse) is two einsums (even and odd l) over
    (cos, sin) x M x (nlat/2) x (L/2): 2 * 2 * M * (nlat/2) * (L/2) * 2 = 2 M nlat L flops.
    One explicit_terms call does 6 inverse (u, v from psi and chi: 2 P + 2 H; vorticity and
    geopotential: 2 P) and 9 forward transforms (divergence and curl of two fluxes: 8;
    kinetic energy: 1). The triangular truncation leaves about half of these
    multiply-adds on structural zeros.
    """
    per = 2 * grid.n_m * grid.nlat * grid.n_l
    return {"per_transform": per, "per_explicit": 15 * per,
            "per_step": 15 * per * explicit_evaluations}


def fourier_flops(grid, explicit_evaluations: int) -> dict:
    """Fourier flops per step: 11 transforms (6 inverse, 5 forward) per explicit call.

    fft: a real FFT of length N counted as 2.5 N log2 N flops per latitude row;
    matmul: nlat x nlon x 2M multiply-adds per transform.
    """
    n = grid.nlon
    fft = 2.5 * n * np.log2(n) * grid.nlat
    mat = 2 * grid.nlat * grid.nlon * 2 * grid.n_m
    return {"fft": 11 * fft * explicit_evaluations, "matmul": 11 * mat * explicit_evaluations}


EXPLICIT_EVALUATIONS = {"leapfrog": 1, "imex_sil3": 3, "ars443": 4}


def matmul_rate(precision, min_seconds, size=2048) -> float:
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), precision)
    f = jax.jit(lambda x: x @ a)
    secs, _, _ = time_calls(lambda x: f(x) * (1.0 / size), a, min_seconds)
    return 2.0 * size**3 / secs


def part_flops(args, defaults, resolutions, speed_results):
    rate = matmul_rate(args.precision, args.min_seconds)
    rows = []
    for name in resolutions:
        dt_min, tau_h = defaults[name]
        for stepper_name in STEPPERS:
            for fourier in ("fft", "matmul"):
                grid = SphericalHarmonicGrid.from_name(name, dtype=args.precision,
                                                       fourier=fourier)
                case = cases.williamson6(grid)
                _, step, init = make_step(stepper_name, case.equation, 60.0 * dt_min)
                params = hyper(tau_h, args.precision)
                carry = jax.jit(init)(case.initial_state, params)
                compiled = jax.jit(step).lower(carry, params).compile()
                cost = compiled.cost_analysis()
                if isinstance(cost, (list, tuple)):
                    cost = cost[0]
                xla = float(cost.get("flops", float("nan")))
                k = EXPLICIT_EVALUATIONS[stepper_name]
                leg = legendre_flops(grid, k)["per_step"]
                four = fourier_flops(grid, k)[fourier]
                key = (name, stepper_name, fourier)
                if key in speed_results:
                    ms = speed_results[key]["ms_per_step"]
                else:
                    ms = ours_rate(name, stepper_name, fourier, args.precision, defaults,
                                   args.min_seconds, 0.25)["ms_per_step"]
                achieved = xla / (ms * 1e-3)
                rows.append([name.upper(), stepper_name, fourier, f"{xla / 1e6:.1f}",
                             f"{leg / 1e6:.1f}", f"{four / 1e6:.1f}", f"{ms:.2f}",
                             f"{achieved / 1e9:.2f}", f"{100 * achieved / rate:.1f} %"])
                print(f"  {rows[-1]}", flush=True)
    rate = max(rate, matmul_rate(args.precision, args.min_seconds))
    table = md_table(["res", "stepper", "Fourier", "XLA flops of the jitted step (M)",
                      "analytic Legendre (M, dense)",
                      "analytic Fourier (M)", "ms / step", "achieved GFLOP/s",
                      "of measured matmul rate"], rows)
    note = (f"Measured {args.precision} matmul rate (jnp 2048 x 2048 @ 2048 x 2048, jitted, "
            f"warm, best of the measurements before and after this table): "
            f"{rate / 1e9:.1f} GFLOP/s; the percentages in the table are relative to it. "
            f"Achieved GFLOP/s = XLA flops / time per step; XLA flops are "
            f"compiled.cost_analysis()['flops'] of the jitted step; ms / step from the speed "
            f"part (or a short timing). Analytic counts: dense Legendre einsums 2 M nlat L flops per "
            f"field transform, 15 transforms per explicit evaluation (1 per leapfrog step, 3 "
            f"per IMEX-SIL3, 4 per ARS443); Fourier: 11 transforms per evaluation, FFT as "
            f"2.5 N log2 N per row, matmul as 2 nlat nlon 2M.")
    return table, note, rate


# -------------------------------------------------------------------------------- main
def update_doc(path: Path, part: str, body: str):
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    begin, end = f"<!-- BEGIN {part} -->", f"<!-- END {part} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (pattern.sub(lambda _: block, text) if pattern.search(text)
            else text.rstrip() + "\n\n" + block + "\n")
    path.write_text(text)


def main(args) -> int:
    if args.min_seconds is None:
        args.min_seconds = 0.3 if args.quick else 3.0
    if args.grad_days is None:
        args.grad_days = 1.0 if args.quick else 5.0
    resolutions = args.resolutions or (["t42"] if args.quick else ["t42", "t85"])
    defaults = _load_defaults()
    command = "python " + " ".join(shlex.quote(a) for a in
                                   [os.path.relpath(__file__, REPO)] + sys.argv[1:])
    info = machine_info()
    load0, busy0 = other_load()
    header = (f"command: `{command}`  \n"
              f"machine: {info['cpu']}, {info['cores']} cores, backend {info['backend']}; "
              f"jax {info['jax']}; {info['date']}; precision {args.precision}  \n"
              f"load average at start {load0:.2f}; other busy processes at start: "
              f"{'; '.join(busy0) if busy0 else 'none'}")
    print(header.replace("  \n", "\n"), flush=True)
    t_start = time.perf_counter()
    sections, speed_results, busy_seen = [], {}, list(busy0)
    if "speed" in args.parts:
        print("\n== speed ==")
        table, summary, speed_results = part_speed(args, defaults, resolutions)
        sections.append(("Speed (Williamson case 6, default dt and hyperdiffusion)", table,
                         "\n".join(f"- {s}" for s in summary)))
        busy_seen += other_load()[1]
    if "grad" in args.parts:
        print("\n== gradient / forward ==")
        table, note, _ = part_grad(args, defaults)
        sections.append(("Gradient cost and memory by checkpoint policy", table, note))
        busy_seen += other_load()[1]
    if "flops" in args.parts:
        print("\n== flops ==")
        table, note, _ = part_flops(args, defaults, resolutions, speed_results)
        sections.append(("Floating-point work per step", table, note))
        busy_seen += other_load()[1]
    wall = time.perf_counter() - t_start
    load1 = os.getloadavg()[0]
    others = sorted({b.split(" ", 1)[1] for b in busy_seen})
    provisional = bool(others) or load0 > 0.7
    status = ("PROVISIONAL: other processes were running during the measurement "
              f"({'; '.join(others) if others else f'load {load0:.2f} at start'})"
              if provisional else "quiet machine (no other busy processes seen)")
    md = [header, f"total wall time {wall:.0f} s; load average at end {load1:.2f}; {status}"]
    for title, table, note in sections:
        md += [f"#### {title}", table, note]
    text = "\n\n".join(md)
    print("\n" + text)
    if args.doc is not None:
        part = f"speed-{args.precision}" + ("-quick" if args.quick else "")
        update_doc(args.doc, part, text)
        print(f"\nwrote section {part!r} of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
