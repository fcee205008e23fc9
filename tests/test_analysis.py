"""Analysis tools (esm/analysis.py): Gaussian weights, the kinetic-energy spectrum through
the model's transforms, verification scores and eddy statistics."""

from __future__ import annotations

import numpy as np
import xarray as xr

from esm import analysis
from esm.app.cli import run_main


def run(tmp_path, name, *overrides):
    code = run_main(["run.progress=false", f"hydra.run.dir={tmp_path / name}", *overrides])
    assert code == 0
    return xr.open_dataset(tmp_path / name / "output.nc").load()


def test_gaussian_weights_are_the_quadrature_weights():
    nodes, weights = np.polynomial.legendre.leggauss(32)
    lat = np.rad2deg(np.arcsin(nodes))
    np.testing.assert_allclose(analysis.gaussian_weights(lat), weights, rtol=1e-12)
    regular = analysis.gaussian_weights(np.linspace(-87.5, 87.5, 36))
    assert abs(regular.sum() - 2.0) < 1e-12


def test_kinetic_energy_spectrum_of_williamson6(x64, tmp_path):
    """The Rossby–Haurwitz wave's streamfunction is -a^2 w sin(phi) + a^2 K cos^4(phi)
    sin(phi) cos(4 lambda): all its energy is in n = 1 and 5, with
    E(1) / E(5) = w^2 / (22.5 K^2 I), I = int_0^1 (1 - mu^2)^4 mu^2 dmu = 1/3 - 4/5 + 6/7 - 4/9
    + 1/11 (w = K for case 6). The spectrum sums to the area-mean (u^2 + v^2) / 2."""
    ds = run(tmp_path, "w6", "experiment=williamson6", "resolution=t42", "run.days=0.25",
             "precision=float64")
    e = analysis.kinetic_energy_spectrum(ds.ua.isel(time=0), ds.va.isel(time=0))
    total = float(e.sum())
    assert float(e.sel(wavenumber=[1, 5]).sum()) >= (1 - 1e-6) * total
    integral = 1 / 3 - 4 / 5 + 6 / 7 - 4 / 9 + 1 / 11
    expected = 1.0 / (22.5 * integral)
    ratio = float(e.sel(wavenumber=1) / e.sel(wavenumber=5))
    assert abs(ratio / expected - 1) <= 1e-4, (ratio, expected)
    ke = float(analysis.global_mean(0.5 * (ds.ua.isel(time=0) ** 2 + ds.va.isel(time=0) ** 2)))
    assert abs(total / ke - 1) <= 1e-6
    later = analysis.kinetic_energy_spectrum(ds.ua, ds.va)
    assert later.dims == ("time", "wavenumber")


def test_verification_scores_and_eddy_statistics():
    """RMSE of a constant offset is the offset, ACC of the truth is 1 and of its negative -1;
    u = A cos(3 lambda), v = B cos(3 lambda) gives [u'v'] = AB/2 and EKE (A^2 + B^2)/4."""
    nodes, _ = np.polynomial.legendre.leggauss(16)
    lat = np.rad2deg(np.arcsin(nodes))
    lon = np.arange(32) * 360 / 32
    coords = {"lat": lat, "lon": lon}
    rng = np.random.default_rng(0)
    truth = xr.DataArray(rng.standard_normal((16, 32)), dims=("lat", "lon"), coords=coords)
    clim = xr.zeros_like(truth)
    assert abs(float(analysis.rmse(truth + 2.0, truth)) - 2.0) < 1e-12
    assert abs(float(analysis.acc(truth, truth, clim)) - 1.0) < 1e-12
    assert abs(float(analysis.acc(-truth, truth, clim)) + 1.0) < 1e-12
    wave = np.cos(3 * np.deg2rad(lon))[None, :] * np.ones((16, 1))
    ds = xr.Dataset({"ua": (("lat", "lon"), 2.0 * wave), "va": (("lat", "lon"), 3.0 * wave),
                     "ta": (("lat", "lon"), 250 + 0 * wave)}, coords=coords)
    eddies = analysis.eddy_statistics(ds)
    np.testing.assert_allclose(eddies.upvp.values, 3.0, rtol=1e-12)
    np.testing.assert_allclose(eddies.eke.values, (4 + 9) / 4, rtol=1e-12)
    np.testing.assert_allclose(eddies.vpta.values, 0.0, atol=1e-12)
