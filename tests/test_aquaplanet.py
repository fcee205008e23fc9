"""The moist aquaplanet end to end: esm-run and esm-params contract, scheme registry errors,
gradients through a moist rollout against finite differences under every checkpoint policy.
"""

import contextlib
import io

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
N_STEPS = 96  # 2 days at dt = 30 min, T21 L8


def _moist_setup():
    from esm.app.build import build_model
    from esm.app.cli import compose, resolved

    plain, _ = resolved(compose(["experiment=aquaplanet", "resolution=t21", "levels=8",
                                 "precision=float64", "run.dt_minutes=30"]))
    return build_model(plain)


def _loss_factory(setup):
    from esm.core import rollout

    stepper, grid = setup.stepper, setup.grid

    def loss(params, checkpoint):
        carry = stepper.init(setup.initial_state, params)
        carry, _ = rollout.integrate(stepper.step, carry, params, N_STEPS, N_STEPS,
                                     checkpoint=checkpoint, levels=2,
                                     observe=lambda c: jnp.zeros(()))
        x = stepper.current(carry)
        eq = stepper.equation
        _, _, temperature, tracers, _ = eq.grid_columns(x)
        # moist enthalpy of the lowest layer, global mean (K)
        h = temperature[-1] + 2.5e6 / 1004.64 * tracers["specific_humidity"][-1]
        return grid.mean(h)

    return loss


@pytest.fixture(scope="module")
def moist_gradients():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        setup = _moist_setup()
        loss = _loss_factory(setup)
        names = (("convection", "tau"), ("boundary_layer", "roughness_length"))
        base = setup.params
        grads = {}
        for policy in ("none", "step", "nested"):
            g = jax.jit(jax.grad(loss), static_argnums=1)(base, policy)
            grads[policy] = {n: float(g[n[0]][n[1]]) for n in names}
        f = jax.jit(loss, static_argnums=1)
        fd = {}
        for scheme, short in names:
            value = float(base[scheme][short])
            # relative step in log space: the smoothed switches make the loss sharply curved,
            # so h must be small (measured FD - AD: 6e-3 at h = 1e-4, 6e-5 at 1e-5, 6e-7 at 1e-6)
            h = 1e-6
            plus = jax.tree.map(lambda x: x, base)
            minus = jax.tree.map(lambda x: x, base)
            plus[scheme] = dict(plus[scheme], **{short: jnp.asarray(value * np.exp(h))})
            minus[scheme] = dict(minus[scheme], **{short: jnp.asarray(value * np.exp(-h))})
            # d loss / d log(value), compared with value * d loss / d value
            fd[(scheme, short)] = (float(f(plus, "none")) - float(f(minus, "none"))) / (2 * h)
        yield grads, fd, base
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("policy", ["none", "step", "nested"])
@pytest.mark.parametrize("name", [("convection", "tau"), ("boundary_layer", "roughness_length")])
def test_moist_rollout_gradient_matches_finite_differences(moist_gradients, policy, name):
    """2 days of the T21 L8 aquaplanet (float64, every threshold smoothed): d loss / d log p
    by reverse mode equals the centred difference in log p (h = 1e-6) to 1e-4 relative, for
    the convection time scale and the roughness length (the drag), under each policy."""
    grads, fd, base = moist_gradients
    ad = grads[policy][name] * float(base[name[0]][name[1]])
    assert abs(fd[name]) > 1e-6, fd  # the parameter matters over 2 days
    assert ad == pytest.approx(fd[name], rel=1e-4), (policy, name, ad, fd[name])
