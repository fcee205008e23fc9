"""20-year validation of ``ocean_gyres`` at 2 degrees, 2 layers (issue 12): run, then analyse.

    python benchmarks/ocean_gyres_validation.py run DIR [OVERRIDES]   # esm-run, 20 years
    python benchmarks/ocean_gyres_validation.py analyse DIR [--no-restoring-dir DIR2] [--end-year N]
    python benchmarks/ocean_gyres_validation.py drake DIR   # a run made with ocean.south=-70

``run`` calls ``esm-run experiment=ocean_gyres ocean.resolution=2deg run.days=7300`` with
10-day snapshots into DIR (about 15 min on 2 cores). ``analyse`` reads DIR/ocean.nc and
prints, as JSON (committed under benchmarks/results/), means over years 16-20 (with
``--end-year N``, of a longer run: years N-4..N, compared with N-9..N-5; the key names keep
"16_20" and "11_15", the JSON's ``years_analysed`` says which; figures are then not written):

* transports (Sv, sum over the active layers of v h dx, northward positive) across 30N from
  the western coast to 10 degrees offshore in the North Atlantic and North Pacific, against
  the same over years 11-15 and against the Sverdrup transport -int curl tau / (rho0 beta) dx
  from there to the eastern coast (annual-mean stress of the model's forcing, curl on the
  sphere at the v faces);
* the poleward transport within 5 degrees of the western coast at 32N, 28N (North Atlantic,
  North Pacific), 32S, 28S, 25S (South Atlantic, Indian, South Pacific);
* the correlation of the zonal anomalies (per latitude row and basin) of the total active
  thickness sum_k h_k with those of the Levitus depth of the 14 degC isotherm, per northern
  basin over 10-40N and over all basins 40S-40N;
* with the rows south of 58S open (``ocean.south=-70``): the eastward transport through
  Drake Passage (68W, south of 54S), reported only;
* the drift of the active volume (Sv, per layer and in all, from the change over each of
  years 1, 5, 10, 15, 20, 30, ..., 60 that the run covers: the sponge at the closed rows is the active layers' only net
  volume source or sink) and the net northward active-layer transport across the Atlantic
  at 32S, 0 and 30N;
* with ``--no-restoring-dir``: the area-weighted RMSE of that run's SST (restoring off,
  ocean.restoring=0) against the Shea-Trenberth-Reynolds annual-mean SST over 60S-60N.

Figures go to docs/figures/ocean_gyres_*.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

RHO0 = 1025.0
OMEGA, RADIUS = 7.292e-5, 6.37122e6
# basins: longitude windows (degrees east, may wrap) that contain each basin at the latitudes
# used; the western and eastern coasts are the ends of the longest ocean run in the window
BASINS = {"north_atlantic": (262.0, 360.0), "north_pacific": (115.0, 262.0),
          "south_atlantic": (300.0, 380.0), "indian": (25.0, 120.0),
          "south_pacific": (148.0, 295.0)}
WBC_LATS = {32.0: ("north_atlantic", "north_pacific"), 28.0: ("north_atlantic", "north_pacific"),
            -32.0: ("south_atlantic", "indian", "south_pacific"),
            -28.0: ("south_atlantic", "indian", "south_pacific"),
            -25.0: ("south_atlantic", "indian", "south_pacific")}


def run(folder: str, overrides: list[str]) -> int:
    from esm.app.cli import run_main

    return run_main(["experiment=ocean_gyres", "ocean.resolution=2deg", "ocean.layers=2",
                     "run.days=7300", "output.every_hours=240", "output.snapshots_per_file=36",
                     "run.progress=false", f"hydra.run.dir={folder}", *overrides])


def _years(ds, first: int, last: int):
    days = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "D")
    sel = (days > 365.0 * (first - 1)) & (days <= 365.0 * last + 1e-6)
    return ds.isel(time=np.flatnonzero(sel))


def drake_transport(ds) -> np.ndarray:
    """Eastward transport (Sv) through Drake Passage (68W, south of 54S) at each snapshot:
    the sum over the active layers of u h (h averaged to the u faces) times dy."""
    i = int(np.argmin(np.abs(ds.lon_u.values - 292.0)))  # 68W
    lat = ds.lat.values
    h = ds.thkcello.fillna(0.0).values
    h_u = 0.5 * (h + np.roll(h, 1, axis=-1))
    uh = (ds.uo.fillna(0.0).values * h_u).sum(1)  # (time, lat, lon_u)
    dy = RADIUS * np.deg2rad(float(lat[1] - lat[0]))
    return uh[:, lat < -54.0, i].sum(1) * dy / 1e6


def drake(folder: str) -> dict:
    """The Drake Passage transport of a run with ``ocean.south=-70`` (whatever its length:
    such a run may stop early), yearly means, and the run's status."""
    folder = Path(folder)
    ds = xr.open_dataset(folder / "ocean.nc")
    if ds.lat.values[0] > -58.0:
        raise SystemExit(f"{folder}: Drake Passage is closed (run with ocean.south=-70)")
    days = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "D")
    t = drake_transport(ds)
    rows = ds.lat.values < -54.0
    h1 = ds.thkcello.isel(lev=0).values[:, rows]
    yearly = {}
    for year in range(1, int(days[-1] // 365) + 2):
        sel = (days > 365.0 * (year - 1)) & (days <= 365.0 * year)
        if sel.any():
            yearly[str(year)] = {"drake_eastward_Sv": round(float(t[sel].mean()), 3),
                                 "min_layer1_thickness_south_of_54S_m":
                                     round(float(np.nanmin(h1[sel])), 2)}
    summary = json.loads((folder / "summary.json").read_text())
    return {"run": str(folder), "last_day": float(days[-1]), "status": summary.get("status"),
            "error": summary.get("error"), "yearly_means": yearly}


def active_volume_drift(ds) -> dict:
    """Rate of change (Sv) of each active layer's volume and of their sum over each of
    years 1, 5, 10, 15, 20, 30, ..., 60 that the run covers (from the snapshots nearest the
    year's ends)."""
    lon, lat_v = ds.lon.values, ds.lat_v.values
    band = np.sin(np.deg2rad(lat_v[1:])) - np.sin(np.deg2rad(lat_v[:-1]))
    area = RADIUS ** 2 * np.deg2rad(float(lon[1] - lon[0])) * band[:, None] * np.ones(lon.size)
    volume = (ds.thkcello.fillna(0.0).values * area).sum((-2, -1))  # (time, layer)
    seconds = (ds.time.values - ds.time.values[0]) / np.timedelta64(1, "s")
    year = 365.0 * 86400.0
    out = {}
    for y in (1, 5, 10, 15, 20, 30, 40, 50, 60):
        if y * year > seconds[-1] + 86400.0:
            break
        i, j = (int(np.argmin(np.abs(seconds - t))) for t in ((y - 1) * year, y * year))
        if j > i:
            rate = (volume[j] - volume[i]) / (seconds[j] - seconds[i]) / 1e6
            out[f"year_{y}"] = {"layers": [round(float(r), 2) for r in rate],
                                "total": round(float(rate.sum()), 2)}
    return out


def _segment(ocean_row: np.ndarray, lon: np.ndarray, window: tuple[float, float]):
    """Indices (in order, west to east) of the longest ocean run inside the window."""
    lo, hi = window
    rel = np.mod(lon - lo, 360.0)
    inside = rel <= (hi - lo)
    order = np.argsort(rel)
    idx = [i for i in order if inside[i]]
    best, cur = [], []
    for i in idx:
        if ocean_row[i]:
            cur.append(i)
            if len(cur) > len(best):
                best = list(cur)
        else:
            cur = []
    return np.asarray(best, dtype=int)


def _v_transport(ds) -> np.ndarray:
    """Time mean of sum_k v_k h_k at the v faces (m^2/s), (ny + 1, nx)."""
    h = ds.thkcello.fillna(0.0).values  # (t, k, ny, nx)
    hp = np.concatenate([h[:, :, :1], h, h[:, :, -1:]], axis=2)
    h_v = 0.5 * (hp[:, :, 1:] + hp[:, :, :-1])
    v = ds.vo.fillna(0.0).values
    return (v * h_v).sum(1).mean(0)


def _curl_at_v(tau_x: np.ndarray, tau_y: np.ndarray, lat: np.ndarray, lat_v: np.ndarray,
               dlon: float) -> np.ndarray:
    """Curl of the stress on the sphere at the v faces (ny + 1, nx), N/m^3: at the corners
    (lat_v, west faces), (1 / a cos phi) [d tau_y / d lambda - d(tau_x cos phi) / d phi],
    then averaged east-west onto the v faces; rows 0 and ny are zero."""
    a, dl = RADIUS, np.deg2rad(dlon)
    ny, nx = tau_x.shape
    cos_c, cos_v = np.cos(np.deg2rad(lat))[:, None], np.cos(np.deg2rad(lat_v))[:, None]
    curl_q = np.zeros((ny + 1, nx))
    dphi = np.deg2rad(lat[1] - lat[0])
    dty = (tau_y - np.roll(tau_y, 1, axis=1)) / (a * cos_v * dl)
    txc = tau_x * cos_c
    dtx = np.zeros((ny + 1, nx))
    dtx[1:-1] = (txc[1:] - txc[:-1]) / (a * cos_v[1:-1] * dphi)
    curl_q = dty - dtx
    curl_q[0] = curl_q[-1] = 0.0
    return 0.5 * (curl_q + np.roll(curl_q, -1, axis=1))


def _annual_stress(folder: Path):
    """The model's annual-mean stress on the u and v faces (scaled by its wind drag), built
    from the run's own config.yaml exactly as the run built it."""
    import yaml

    from esm.app.build import build_model
    from esm.ocean.dynamics import REFERENCE_WIND_DRAG

    setup = build_model(yaml.safe_load((folder / "config.yaml").read_text()))
    eq = setup.stepper.equation
    scale = float(setup.params["ocean"]["wind_drag"]) / REFERENCE_WIND_DRAG
    fields = eq.forcing.fields
    return (np.asarray(fields.wind_stress_x).mean(0) * scale,
            np.asarray(fields.wind_stress_y).mean(0) * scale)


def analyse(folder: str, no_restoring: str | None = None, end_year: int = 20) -> dict:
    from esm.app import ocean_data

    folder = Path(folder)
    ds = xr.open_dataset(folder / "ocean.nc")
    out: dict = {"run": str(folder), "snapshots": int(ds.time.size),
                 "years": float((ds.time.values[-1] - ds.time.values[0]) / np.timedelta64(365, "D"))}
    finite = all(bool(np.isfinite(ds[n].values[:, ..., ds.sftof.values > 0]).all())
                 for n in ("tos", "zos"))
    out["no_nan"] = finite and all(bool(np.isfinite(np.nan_to_num(ds[n].values, nan=0.0)).all())
                                   for n in ("uo", "vo", "thkcello"))
    late, mid = _years(ds, end_year - 4, end_year), _years(ds, end_year - 9, end_year - 5)
    out["years_analysed"] = [end_year - 4, end_year]
    lat, lat_v, lon = ds.lat.values, ds.lat_v.values, ds.lon.values
    dlon = float(lon[1] - lon[0])
    ocean = ds.sftof.values > 0
    ocean_pad = np.pad(ocean, ((1, 1), (0, 0)))
    wet_v = ocean_pad[1:] & ocean_pad[:-1]  # v faces between two ocean cells
    dx_v = RADIUS * np.cos(np.deg2rad(lat_v)) * np.deg2rad(dlon)
    vh_late, vh_mid = _v_transport(late), _v_transport(mid)
    taux, tauy = _annual_stress(folder)
    curl = _curl_at_v(taux, tauy, lat, lat_v, dlon)

    def row_of(latitude):
        return int(np.argmin(np.abs(lat_v - latitude)))

    def transport(vh, j, cells):  # Sv northward across row j of the v faces, over cells
        return float(np.sum(vh[j, cells]) * dx_v[j] / 1e6)

    # 30N: western boundary current vs Sverdrup
    sverdrup = {}
    for basin in ("north_atlantic", "north_pacific"):
        j = row_of(30.0)
        seg = _segment(wet_v[j], lon, BASINS[basin])
        span = max(1, int(round(10.0 / dlon)))
        wbc = seg[:span]
        beta = 2 * OMEGA * np.cos(np.deg2rad(lat_v[j])) / RADIUS
        interior = seg[span:]
        sv = -np.sum(curl[j, interior] / (RHO0 * beta)) * dx_v[j] / 1e6
        t_late, t_mid = transport(vh_late, j, wbc), transport(vh_mid, j, wbc)
        sverdrup[basin] = {"latitude": float(lat_v[j]), "west_coast_lon": float(lon[seg[0]]),
                           "east_coast_lon": float(lon[seg[-1]]),
                           "wbc_transport_years_16_20_Sv": t_late,
                           "wbc_transport_years_11_15_Sv": t_mid,
                           "change_vs_years_11_15": t_late / t_mid - 1.0 if t_mid else None,
                           "sverdrup_return_Sv": float(sv),
                           "wbc_over_sverdrup": t_late / float(sv) if sv else None,
                           "interior_model_Sv": transport(vh_late, j, interior)}
    out["transport_30N"] = sverdrup
    wbc = {}
    for latitude, basins in WBC_LATS.items():
        j = row_of(latitude)
        for basin in basins:
            seg = _segment(wet_v[j], lon, BASINS[basin])
            near = seg[:max(1, int(round(5.0 / dlon)))]
            t = transport(vh_late, j, near) * (1 if latitude > 0 else -1)
            wbc[f"{basin}@{latitude:g}"] = {"poleward_Sv": t, "west_coast_lon": float(lon[seg[0]])}
    out["western_boundary_poleward_transport"] = wbc
    if lat_v[0] < -58.0:  # Drake Passage open (ocean.south=-70): circumpolar transport, reported
        out["drake_passage_eastward_Sv"] = float(np.mean(drake_transport(late)))

    out["active_volume_drift_Sv"] = active_volume_drift(ds)
    atlantic = {}
    for latitude in (-32.0, 0.0, 30.0):
        j = row_of(latitude)
        basin = "south_atlantic" if latitude < 0 else "north_atlantic"
        seg = _segment(wet_v[j], lon, BASINS[basin])
        atlantic[f"{latitude:g}"] = transport(vh_late, j, seg)
    out["atlantic_net_northward_Sv"] = atlantic

    # thickness against the Levitus 14 degC isotherm depth
    lev = ocean_data.levitus_temperature()
    d14 = ocean_data.isotherm_depth(lev["temperature"], lev["depth"], 14.0)
    lon_edges = np.append(ds.lon_u.values, 360.0)
    d14 = ocean_data.cell_mean(lat_v, lon_edges, lev["lat"], lev["lon"], d14)
    total = late.thkcello.sum("lev").mean("time").values
    total = np.where(ocean, total, np.nan)

    def zonal_anomaly(field, rows, basin):
        anomalies = np.full(field.shape, np.nan)
        for j in rows:
            seg = _segment(ocean[j], lon, BASINS[basin]) if basin else np.flatnonzero(ocean[j])
            if seg.size < 3:
                continue
            vals = field[j, seg]
            anomalies[j, seg] = vals - np.nanmean(vals)
        return anomalies

    def correlation(rows, basin):
        a, b = zonal_anomaly(total, rows, basin), zonal_anomaly(d14, rows, basin)
        ok = np.isfinite(a) & np.isfinite(b)
        w = np.cos(np.deg2rad(lat))[:, None] * np.ones_like(a)
        return float(np.corrcoef(a[ok] * np.sqrt(w[ok]), b[ok] * np.sqrt(w[ok]))[0, 1]), int(ok.sum())

    north = np.flatnonzero((lat >= 10) & (lat <= 40))
    tropics = np.flatnonzero((lat >= -40) & (lat <= 40))
    out["thickness_vs_levitus_d14"] = {
        "north_atlantic_10_40N": correlation(north, "north_atlantic"),
        "north_pacific_10_40N": correlation(north, "north_pacific"),
        "all_basins_40S_40N": correlation(tropics, None),
        "note": "correlation of zonal anomalies (per row and basin), cos(lat) weights; [r, points]"}
    if end_year == 20:
        figures(folder, ds, total, d14, vh_late, lat, lat_v, lon, ocean)

    from calibration.observations import load_observations

    obs = load_observations(Path(__file__).resolve().parents[1] / "data" / "str_sst_climatology.nc")
    name = [v for v in obs.data_vars][0]
    ref = obs[name].mean("month" if "month" in obs.dims else "time").values
    ref = ref - 273.15 if np.nanmean(ref) > 200 else ref
    ref = ocean_data.cell_mean(lat_v, lon_edges, obs["lat"].values, obs["lon"].values, ref)
    band = (np.abs(lat) <= 60)[:, None] & ocean & np.isfinite(ref)
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones(ocean.shape)

    def sst_error(dataset, run):
        sst = _years(dataset, end_year - 4, end_year).tos.mean("time").values
        err = np.where(band, sst - ref, 0.0)
        return {"run": str(run), "rmse_60S_60N_K": float(np.sqrt(np.sum(w * err ** 2) / np.sum(w * band))),
                "bias_60S_60N_K": float(np.sum(w * err) / np.sum(w * band)),
                "max_K": float(np.nanmax(np.where(band, sst, np.nan))),
                "min_K": float(np.nanmin(np.where(band, sst, np.nan)))}

    out["sst_vs_str"] = sst_error(ds, folder)
    if no_restoring:
        out["sst_no_restoring_vs_str"] = sst_error(xr.open_dataset(Path(no_restoring) / "ocean.nc"),
                                                   no_restoring)
    return out


def figures(folder, ds, total, d14, vh, lat, lat_v, lon, ocean):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = Path(__file__).resolve().parents[1] / "docs" / "figures"
    docs.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 1, figsize=(9, 7), constrained_layout=True)
    for ax, field, title in ((axes[0], total, "model sum of active layer thicknesses (m), years 16-20"),
                             (axes[1], np.where(ocean, d14, np.nan), "Levitus depth of the 14 degC isotherm (m)")):
        im = ax.pcolormesh(lon, lat, field, vmin=0, vmax=700, cmap="viridis", shading="auto")
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
    fig.savefig(docs / "ocean_gyres_thickness.png", dpi=90)
    plt.close(fig)
    dx_v = RADIUS * np.cos(np.deg2rad(lat_v))[:, None] * np.deg2rad(float(lon[1] - lon[0]))
    # streamfunction of the active layers' transport: psi(x) = -int_x^coast v h dx along each
    # row, integrated westward from each basin's eastern coast (reset to zero on land)
    pad = np.pad(ocean, ((1, 1), (0, 0)))
    wet = pad[1:] & pad[:-1]
    flux = vh * dx_v / 1e6
    psi = np.zeros_like(flux)
    for j in range(flux.shape[0]):
        land = np.flatnonzero(~wet[j])
        start = (land[-1] if land.size else flux.shape[1] - 1)  # begin the sweep on land
        acc = 0.0
        for k in range(flux.shape[1]):
            i = (start - k) % flux.shape[1]
            acc = 0.0 if not wet[j, i] else acc - flux[j, i]
            psi[j, i] = acc
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    im = ax.pcolormesh(lon, lat_v, np.where(pad[1:] | pad[:-1], psi, np.nan), cmap="RdBu_r",
                       vmin=-40, vmax=40, shading="auto")
    ax.set_title("active-layer transport streamfunction (Sv, -int v h dx from each eastern coast), years 16-20")
    fig.colorbar(im, ax=ax)
    fig.savefig(docs / "ocean_gyres_streamfunction.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("run", "analyse", "drake"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3:]))
    if sys.argv[1] == "drake":
        print(json.dumps(drake(sys.argv[2]), indent=1))
        sys.exit(0)
    other = None
    if "--no-restoring-dir" in sys.argv:
        other = sys.argv[sys.argv.index("--no-restoring-dir") + 1]
    end = int(sys.argv[sys.argv.index("--end-year") + 1]) if "--end-year" in sys.argv else 20
    print(json.dumps(analyse(sys.argv[2], other, end), indent=1))
