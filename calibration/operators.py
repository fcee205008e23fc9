"""Observation operators: model state -> observation space, and the weights of the misfit.

``ObservationOperator`` maps a primitive-equation state to the observed quantities:

1. CMIP-named grid fields from the model's diagnostics (``ta``, ``ua``, ``va``, ``zg``, ``ps``),
   interpolated from sigma to pressure levels linearly in ln p **without extrapolation**
   (``esm.atmosphere.sigma_coordinates.interpolate_to_pressure``: levels above the top layer midpoint or below the
   lowest one are NaN, i.e. masked);
2. horizontally onto the observation grid: the identity when the observation grid is the
   model's Gaussian grid (exact), otherwise separable bilinear interpolation (linear in
   latitude, clamped at the outermost model rows; periodic linear in longitude), applied as
   two fixed matrices; or
3. a zonal mean on the model grid, linearly interpolated to the observation latitudes.

Time sampling and time means are done by the forward map (``calibration.problem``), which
calls the operator on the states it samples.

Weights (``misfit_weights``) follow WeatherBench 2 (Rasp et al. 2024, JAMES 16, e2023MS004019,
eq. 1): latitude-cell areas ``sin(lat_{j+1/2}) - sin(lat_{j-1/2})`` normalised to mean 1, times
pressure thickness of each level (half-way to the neighbours, clipped to the column), normalised
to mean 1. The whitened residual of one datum is ``sqrt(w) (H(x) - y) / error``, so the implied
observation covariance is ``error**2 / w``.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from esm.core.precision import einsum
from esm.driver.output import to_cmip
from esm.core.spherical_harmonics import SphericalHarmonicGrid

REDUCTIONS = ("none", "zonal_mean")


def _linear_weights(target: np.ndarray, source: np.ndarray, period: float | None = None):
    """Matrix W (len(target), len(source)) of linear interpolation from ascending ``source``.

    Without a period, targets outside the source range take the nearest end value (clamping);
    with one, interpolation wraps around.
    """
    n = source.size
    w = np.zeros((target.size, n))
    for i, x in enumerate(target):
        if period is not None:
            ext = np.concatenate([source, source[:1] + period])
            x = source[0] + (x - source[0]) % period
            j = int(np.clip(np.searchsorted(ext, x, side="right") - 1, 0, n - 1))
            f = (x - ext[j]) / (ext[j + 1] - ext[j])
            w[i, j] += 1.0 - f
            w[i, (j + 1) % n] += f
        elif x <= source[0]:
            w[i, 0] = 1.0
        elif x >= source[-1]:
            w[i, -1] = 1.0
        else:
            j = int(np.searchsorted(source, x, side="right") - 1)
            f = (x - source[j]) / (source[j + 1] - source[j])
            w[i, j], w[i, j + 1] = 1.0 - f, f
    w[np.abs(w) < 1e-14] = 0.0
    return w


def latitude_cell_weights(lat_deg: np.ndarray) -> np.ndarray:
    """WeatherBench 2 cell-area weights of (ascending) latitudes, normalised to mean 1."""
    lat = np.deg2rad(np.asarray(lat_deg, dtype=np.float64))
    edges = np.concatenate([[-np.pi / 2], 0.5 * (lat[1:] + lat[:-1]), [np.pi / 2]])
    w = np.sin(edges[1:]) - np.sin(edges[:-1])
    return w / w.mean()


def pressure_thickness_weights(plev: np.ndarray) -> np.ndarray:
    """Thickness of each pressure level (half-way to its neighbours), normalised to mean 1."""
    p = np.asarray(plev, dtype=np.float64)
    if p.size == 1:
        return np.ones(1)
    order = np.argsort(p)
    s = p[order]
    mid = 0.5 * (s[1:] + s[:-1])
    lower = np.concatenate([[s[0] - (mid[0] - s[0])], mid])
    upper = np.concatenate([mid, [s[-1] + (s[-1] - mid[-1])]])
    thick = np.empty_like(p)
    thick[order] = upper - lower
    return thick / thick.mean()


@dataclasses.dataclass(frozen=True)
class ObservationOperator:
    """Model state -> {variable: array on the observation grid}.

    Attributes:
      variables: CMIP names of the equation's ``output_fields`` (ta, ua, va, zg, wap, ps).
      plev: pressure levels (Pa) for 3-d variables; None keeps model sigma layers.
      lat, lon: observation grid (degrees; lat ascending, lon in [0, 360)); None = model grid.
      reduction: ``none`` (fields on (lat, lon)) or ``zonal_mean`` (fields on lat only).
    Output shapes: 3-d variables (P, nlat_obs[, nlon_obs]), ``ps`` (nlat_obs[, nlon_obs]).
    """

    grid: SphericalHarmonicGrid
    variables: tuple[str, ...]
    plev: tuple[float, ...] | None = None
    lat: tuple[float, ...] | None = None
    lon: tuple[float, ...] | None = None
    reduction: str = "none"

    def __post_init__(self):
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"observation reduction {self.reduction!r}; choose one of "
                             f"{', '.join(REDUCTIONS)}")

    @property
    def obs_lat(self) -> np.ndarray:
        return np.rad2deg(self.grid.latitude) if self.lat is None else np.asarray(self.lat)

    @property
    def obs_lon(self) -> np.ndarray:
        return np.rad2deg(self.grid.longitude) if self.lon is None else np.asarray(self.lon)

    def _lat_matrix(self):
        model = np.rad2deg(self.grid.latitude)
        if self.lat is None or (len(self.lat) == model.size
                                and np.allclose(self.lat, model, atol=1e-6)):
            return None
        return _linear_weights(np.asarray(self.lat), model)

    def _lon_matrix(self):
        model = np.rad2deg(self.grid.longitude)
        if self.lon is None or (len(self.lon) == model.size
                                and np.allclose(self.lon, model, atol=1e-6)):
            return None
        return _linear_weights(np.asarray(self.lon) % 360.0, model, period=360.0)

    def apply_to_fields(self, fields: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        """Horizontal part on grid fields (..., nlat, nlon) already on the observed levels."""
        wlat, wlon = self._lat_matrix(), self._lon_matrix()
        out = {}
        for name in self.variables:
            x = fields[name]
            if self.reduction == "zonal_mean":
                x = jnp.mean(x, axis=-1)
                if wlat is not None:
                    x = einsum("ij,...j->...i", jnp.asarray(wlat, x.dtype), x)
            else:
                if wlat is not None:
                    x = einsum("ij,...jk->...ik", jnp.asarray(wlat, x.dtype), x)
                if wlon is not None:
                    x = einsum("ik,...k->...i", jnp.asarray(wlon, x.dtype), x)
            out[name] = x
        return out

    def __call__(self, equation, state) -> dict[str, jnp.ndarray]:
        # observed where the model has layers: no values extrapolated below the lowest one
        fields = to_cmip(equation.output_fields(state, pressure_levels=self.plev,
                                                below_lowest_layer=False))
        missing = [v for v in self.variables if v not in fields]
        if missing:
            raise ValueError(f"observed variable(s) {missing} are not model outputs; choose "
                             f"among {', '.join(sorted(fields))}")
        return self.apply_to_fields(fields)

    def weights(self, name: str, sigma_layers: int | None = None) -> np.ndarray:
        """Misfit weights (mean 1 per factor) broadcast to the output shape of ``name``."""
        wl = latitude_cell_weights(self.obs_lat)
        horizontal = wl if self.reduction == "zonal_mean" else np.repeat(
            wl[:, None], len(self.obs_lon), axis=1)
        if name == "ps":
            return horizontal
        if self.plev is None:
            k = sigma_layers or 1
            return np.broadcast_to(horizontal, (k,) + horizontal.shape).copy()
        wp = pressure_thickness_weights(np.asarray(self.plev))
        return wp.reshape((-1,) + (1,) * horizontal.ndim) * horizontal[None]


def operator_from_observations(grid: SphericalHarmonicGrid, variables: Sequence[str], ds,
                               reduction: str = "none") -> ObservationOperator:
    """An operator onto the grid of a normalised observation Dataset (``load_observations``)."""
    plev = tuple(float(p) for p in ds["plev"].values) if "plev" in ds.dims else None
    lat = tuple(float(x) for x in ds["lat"].values)
    lon = tuple(float(x) for x in ds["lon"].values) if reduction == "none" else None
    return ObservationOperator(grid=grid, variables=tuple(variables), plev=plev, lat=lat,
                               lon=lon, reduction=reduction)
