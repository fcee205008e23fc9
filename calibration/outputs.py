"""Calibration outputs: ``parameters.yaml`` (fitted values, units, posterior), ``fit.nc``
(model and observations side by side) and the quick-look plots ``loss.png`` and ``fit.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from esm.driver.files import atomic_write, atomic_write_text
from esm.driver.output import ATTRIBUTES


def parameters_document(method: str, free, z, rows, truth, posterior) -> dict[str, Any]:
    """The content of ``parameters.yaml``: per fitted parameter its value, units, start
    value, transform, bounds, the twin truth where known and the Laplace posterior
    (``posterior`` from ``calibration.optimizers.laplace_posterior``, or None)."""
    values = np.asarray(free.physical(z), np.float64)
    doc: dict[str, Any] = {"method": method, "parameters": {}}
    for i, d in enumerate(free.declarations):
        entry = {"value": float(values[i]), "units": d.units,
                 "initial": float(rows[0][d.name]), "transform": d.transform,
                 "bounds": [float(d.bounds[0]), float(d.bounds[1])]}
        if truth and d.name in truth:
            entry["truth"] = truth[d.name]
        elif truth is not None:
            entry["truth"] = float(free.base[d.scheme][d.short_name])
        if posterior is not None:
            std_z = float(posterior["std"][i])
            scale = float(free.scale[i])
            u = float(z[i]) * scale
            entry["std_unconstrained"] = std_z * scale
            entry["interval_16_84"] = [float(d.from_unconstrained(u - std_z * scale)),
                                       float(d.from_unconstrained(u + std_z * scale))]
            if d.transform == "identity":
                entry["std"] = std_z * scale
        doc["parameters"][d.name] = entry
    if posterior is not None:
        doc["correlation"] = {"names": free.names,
                              "matrix": [[float(x) for x in row]
                                         for row in posterior["correlation"]]}
        doc["jacobian_singular_values"] = [float(x) for x in posterior["singular_values"]]
    return doc


def write_parameters(run_dir: Path, doc: dict) -> None:
    from omegaconf import OmegaConf

    atomic_write_text(Path(run_dir) / "parameters.yaml", OmegaConf.to_yaml(OmegaConf.create(doc)))


def write_fit(run_dir: Path, built, pred, experiment: str) -> None:
    """``fit.nc``: model predictions and observations side by side, CF coordinates."""
    import xarray as xr

    op = built.operator
    data = {}
    for k in built.problem.names:
        model, obs = pred[k], np.asarray(built.problem.observed[k])
        dims = []
        if built.kind == "windows":
            dims += ["window", "lead_time"]
        if model.ndim - len(dims) == (2 if op.reduction == "zonal_mean" else 3):
            dims.append("plev")
        dims += ["lat"] if op.reduction == "zonal_mean" else ["lat", "lon"]
        base = k[:-len("_variance")] if k.endswith("_variance") else k
        attrs = dict(ATTRIBUTES.get(base, {}))
        if k.endswith("_variance"):  # a variance has the square of the units, no standard name
            attrs = {"units": f"({attrs.get('units', '1')})2",
                     "long_name": f"variance of {attrs.get('long_name', base)}"}
        if op.reduction == "zonal_mean":
            attrs["cell_methods"] = "lon: mean"
        long_name = attrs.get("long_name", k)
        data[f"{k}_model"] = (dims, model, {**attrs, "long_name": f"{long_name}, model"})
        data[f"{k}_observed"] = (dims, obs, {**attrs, "long_name": f"{long_name}, observed"})
    coords = {"lat": ("lat", op.obs_lat, {"units": "degrees_north",
                                           "standard_name": "latitude", "axis": "Y"})}
    if op.reduction != "zonal_mean":
        coords["lon"] = ("lon", op.obs_lon, {"units": "degrees_east",
                                              "standard_name": "longitude", "axis": "X"})
    if op.plev is not None:
        coords["plev"] = ("plev", np.asarray(op.plev), {"units": "Pa",
                                                        "standard_name": "air_pressure",
                                                        "positive": "down", "axis": "Z"})
    if built.kind == "windows":
        hours = built.meta["observe_every_hours"] * (1 + np.arange(
            next(iter(pred.values())).shape[1]))
        coords["lead_time"] = ("lead_time", hours, {"units": "hours",
                                                    "standard_name": "forecast_period",
                                                    "long_name": "time since window start"})
    import datetime

    from esm import __version__

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ds = xr.Dataset(data, coords=coords, attrs={
        "Conventions": "CF-1.8", "title": "diffesm calibration fit: model vs observations",
        "experiment": experiment, "diffesm_version": __version__,
        "history": f"{now}: esm-calibrate experiment={experiment} (diffesm {__version__})",
        **{k: str(v) for k, v in built.meta.items()}})
    encoding = {name: {"_FillValue": None} for name in ds.coords}
    atomic_write(Path(run_dir) / "fit.nc", lambda tmp: ds.to_netcdf(tmp, encoding=encoding))


def write_plots(run_dir: Path, built, rows, pred, title: str) -> None:
    """``loss.png`` (loss history) and ``fit.png`` (zonal means, model vs observed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    it = [int(r["iteration"]) for r in rows]
    ax.semilogy(it, [max(float(r["loss"]), 1e-300) for r in rows], "o-")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    fig.tight_layout()
    atomic_write(Path(run_dir) / "loss.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    op = built.operator
    names = built.problem.names
    fig, axes = plt.subplots(len(names), 2, figsize=(9, 3 * len(names)), squeeze=False)
    for row, k in zip(axes, names):
        for ax, (label, field) in zip(row, (("model", pred[k]),
                                            ("observed", built.problem.observed[k]))):
            x = np.asarray(field, np.float64)
            if built.kind == "windows":
                x = x[0, -1]
            if op.reduction != "zonal_mean":
                x = np.nanmean(x, axis=-1)
            if x.ndim == 2 and op.plev is not None:
                cs = ax.contourf(op.obs_lat, np.asarray(op.plev) / 100.0, x, 16)
                ax.invert_yaxis()
                ax.set_ylabel("hPa")
                fig.colorbar(cs, ax=ax)
            else:
                ax.plot(op.obs_lat, x.reshape(-1, len(op.obs_lat)).T)
            ax.set_title(f"{k} zonal mean, {label}")
            ax.set_xlabel("latitude")
    fig.tight_layout()
    atomic_write(Path(run_dir) / "fit.png", lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
