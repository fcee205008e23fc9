"""The moist aquaplanet end to end: esm-run and esm-params contract, scheme registry errors,
gradients through a moist rollout against finite differences under every checkpoint policy.
"""

import contextlib
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from test_cli import esm_run

MOIST_OUTPUTS = {"pr": "precipitation_flux", "hus": "specific_humidity",
                 "ts": "surface_temperature", "rlut": "toa_outgoing_longwave_flux",
                 "evspsbl": "water_evapotranspiration_flux",
                 "hfls": "surface_upward_latent_heat_flux",
                 "hfss": "surface_upward_sensible_heat_flux",
                 "rsdt": "toa_incoming_shortwave_flux", "rsut": "toa_outgoing_shortwave_flux"}


def test_esm_run_aquaplanet_writes_the_moist_outputs(tmp_path):
    d = tmp_path / "run"
    r = esm_run(["experiment=aquaplanet", "resolution=t21", "run.days=3",
                 f"hydra.run.dir={d}", "run.progress=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(d / "output.nc") as ds:
        for name, standard in MOIST_OUTPUTS.items():
            assert ds[name].attrs["standard_name"] == standard, name
            assert np.all(np.isfinite(ds[name].values)), name
        assert ds["hus"].dims == ("time", "sigma", "lat", "lon")
        assert ds["pr"].dims == ("time", "lat", "lon")
        assert float(ds["pr"].min()) >= 0.0
        # the fixer clips on the grid; the re-truncation leaves ringing of ~1e-10 (1e-8 of
        # the maximum), without it the truncated humidity goes negative by ~1e-4
        assert float(ds["hus"].isel(time=-1).min()) >= -1e-8 * float(ds["hus"].max())
        # it rains and evaporates after 3 days from a dry-ish start (kg m-2 s-1)
        assert float(ds["pr"].isel(time=-1).mean()) > 1e-6
        assert float(ds["evspsbl"].isel(time=-1).mean()) > 1e-6
        # the annual-mean insolation's global mean is S0 / 4 (Gaussian weights)
        w = np.polynomial.legendre.leggauss(ds.sizes["lat"])[1]
        rsdt = float((ds["rsdt"].isel(time=-1).mean("lon") * w).sum() / w.sum())
        assert rsdt == pytest.approx(1360.0 / 4, rel=1e-5)
        # prescribed SST: ts is the QOBS profile at every snapshot
        from esm.atmosphere.physics import qobs_sst

        expected = qobs_sst(np.deg2rad(ds["lat"].values))
        np.testing.assert_allclose(ds["ts"].isel(time=-1).mean("lon").values, expected, rtol=1e-6)
        assert np.array_equal(ds["ts"].isel(time=0).values, ds["ts"].isel(time=-1).values)


def test_esm_params_lists_every_schemes_parameters():
    import parametrizations
    from esm.app.cli import params_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert params_main(["experiment=aquaplanet", "resolution=t21", "levels=8",
                            "physics.convection.tau=3600"]) == 0
    text = out.getvalue()
    for name in parametrizations.DEFAULT_ORDER:
        for p in parametrizations.scheme_class(name)().parameters:
            assert p.name in text, p.name
    assert "convection.tau = 3600" in text
    assert "surface.albedo" in text


def test_unknown_scheme_exits_2_naming_it_and_the_known_ones(tmp_path, capsys):
    from esm.app.cli import params_main

    r = esm_run(["experiment=aquaplanet", "resolution=t21", "physics.schemes=[convection,nosuch]",
                 f"hydra.run.dir={tmp_path}/x"], cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nosuch" in lines[0]
    for known in ("convection", "large_scale_condensation", "gray_radiation", "boundary_layer"):
        assert known in lines[0]
    assert params_main(["experiment=aquaplanet", "physics.options.nosuch.x=1"]) == 2


def test_runge_kutta_stepper_is_refused_for_the_moist_model(tmp_path):
    r = esm_run(["experiment=aquaplanet", "resolution=t21", "run.stepper=imex_sil3",
                 f"hydra.run.dir={tmp_path}/x"], cwd=tmp_path)
    assert r.returncode == 2 and "leapfrog" in r.stderr


# ---------------------------------------------------------------- gradients through a rollout
# The acceptance case, 2 days (96 steps at dt = 30 min, T21 L8) under the three checkpoint
# policies, is slow (three reverse-mode compilations of the moist model: minutes on 2 cores)
# and runs with `pytest -m slow`; the default suite checks 1 day under the default policy
# (the policies' equality is also tested on the shallow-water model, test_gradients.py).
PARAMETERS = (("convection", "tau"), ("boundary_layer", "roughness_length"))


def _moist_setup(overrides=()):
    """The T21 L8 float64 aquaplanet, dt 30 min (also used by
    benchmarks/moist_rollout_gradients.py)."""
    from esm.app.build import build_model
    from esm.app.cli import compose, resolved

    plain, _ = resolved(compose(["experiment=aquaplanet", "resolution=t21", "levels=8",
                                 "precision=float64", "run.dt_minutes=30", *overrides]))
    return build_model(plain)


def _loss_factory(setup, n_steps):
    from esm.core import rollout

    stepper, grid = setup.stepper, setup.grid

    def loss(params, checkpoint):
        carry = stepper.init(setup.initial_state, params)
        carry, _ = rollout.integrate(stepper.step, carry, params, n_steps, n_steps,
                                     checkpoint=checkpoint, levels=2,
                                     observe=lambda c: jnp.zeros(()))
        x = stepper.current(carry)
        eq = stepper.equation
        _, _, temperature, tracers, _ = eq.grid_columns(x)
        # moist enthalpy of the lowest layer, global mean (K)
        h = temperature[-1] + 2.5e6 / 1004.64 * tracers["specific_humidity"][-1]
        return grid.mean(h)

    return loss


def _gradients(n_steps, policies):
    """Reverse-mode d loss / d log p under each policy and the centred difference in log p."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        setup = _moist_setup()
        loss = _loss_factory(setup, n_steps)
        base = setup.params
        grads = {}
        for policy in policies:
            g = jax.jit(jax.grad(loss), static_argnums=1)(base, policy)
            grads[policy] = {n: float(g[n[0]][n[1]]) * float(base[n[0]][n[1]])
                             for n in PARAMETERS}
        f = jax.jit(loss, static_argnums=1)
        fd = {}
        for scheme, short in PARAMETERS:
            value = float(base[scheme][short])
            # relative step in log space: the smoothed switches make the loss sharply curved,
            # so h must be small (2 days: FD - AD = 6e-3 at h = 1e-4, 6e-5 at 1e-5, 6e-7 at
            # 1e-6 for convection.tau; float64 rounding is ~1e-8 at h = 1e-6)
            h = 1e-6

            def at(v):
                p = dict(base)
                p[scheme] = dict(base[scheme], **{short: jnp.asarray(v)})
                return float(f(p, "none"))

            fd[(scheme, short)] = (at(value * np.exp(h)) - at(value * np.exp(-h))) / (2 * h)
        return grads, fd
    finally:
        jax.config.update("jax_enable_x64", previous)


def _check(grads, fd, policy, name):
    assert abs(fd[name]) > 1e-6, fd  # the parameter matters over the window
    assert grads[policy][name] == pytest.approx(fd[name], rel=1e-4), (policy, name, grads, fd)


@pytest.fixture(scope="module")
def one_day_gradients():
    return _gradients(48, ("step",))


@pytest.mark.parametrize("name", PARAMETERS)
def test_moist_rollout_gradient_matches_finite_differences(one_day_gradients, name):
    """1 day of the T21 L8 aquaplanet (float64, every threshold smoothed), default policy:
    d loss / d log p by reverse mode equals the centred difference (h = 1e-6) to 1e-4, for
    the convection time scale and the roughness length (the drag). Loss: global mean moist
    enthalpy T + L q / c_p of the lowest layer of the final state."""
    _check(*one_day_gradients, "step", name)


@pytest.fixture(scope="module")
def two_day_gradients():
    return _gradients(96, ("none", "step", "nested"))


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["none", "step", "nested"])
@pytest.mark.parametrize("name", PARAMETERS)
def test_two_day_moist_rollout_gradient_under_every_policy(two_day_gradients, policy, name):
    """The acceptance case: 2 days (96 steps), policies none, step and nested, 1e-4."""
    _check(*two_day_gradients, policy, name)


AQUA_SLAB = ["experiment=aquaplanet", "resolution=t21", "levels=8", "surface=slab",
             "physics.options.gray_radiation.insolation=seasonal", "output.every_hours=12",
             "run.progress=false"]


def test_slab_aquaplanet_restart_is_bitwise(tmp_path):
    """Issue 15 for the moist model: 2 days == 1 day + restart + 1 day, bit for bit, with the
    slab mixed layer (a prognostic surface temperature in the carry) and the seasonal
    insolation (its phase comes from the integer step counter in the restart file)."""
    a, b, c = tmp_path / "two", tmp_path / "one", tmp_path / "next"
    for args in (["run.days=2", f"hydra.run.dir={a}"], ["run.days=1", f"hydra.run.dir={b}"],
                 ["run.days=2", f"run.restart={b}", f"hydra.run.dir={c}"]):
        r = esm_run(AQUA_SLAB + args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    with np.load(a / "restart.npz") as fa, np.load(c / "restart.npz") as fc:
        assert fa.files == fc.files
        assert any("surface" in json.dumps(k) for k in json.loads(
            bytes(fa["__meta__"]).decode())["paths"]), "no surface state in the restart"
        for key in fa.files:
            if key != "__meta__":
                assert np.array_equal(fa[key], fc[key]), key
    with xr.open_dataset(a / "output.nc") as ds_a, xr.open_dataset(c / "output.nc") as ds_c:
        n = ds_c.sizes["time"]
        assert n >= 2 and np.array_equal(ds_a.time.values[-n:], ds_c.time.values)
        for name in ("ts", "pr", "hus", "ta", "rsdt"):
            assert np.array_equal(ds_a[name].values[-n:], ds_c[name].values), name
