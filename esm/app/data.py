"""Shipped data files (``data/``, packaged as ``esm._data``) and readers that turn them
into the arrays the numerics take."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HELD_SUAREZ_STATE_FILE = "held_suarez_t21_l8.nc"
HELD_SUAREZ_STATE_TRUNCATION = 21


def data_dir() -> Path:
    """The ``data/`` folder: packaged as ``esm._data`` (wheel) or at the repository top."""
    try:
        from importlib import resources

        packaged = Path(str(resources.files("esm._data")))
        if packaged.is_dir() and any(packaged.glob("*.nc")):
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "data"


def data_file(name: str) -> Path:
    path = data_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"shipped data file {name!r} is missing from {data_dir()}; "
                                "reinstall diffesm")
    return path


def held_suarez_state() -> dict[str, np.ndarray]:
    """The spun-up Held–Suarez state (T21, SPEEDY 8 layers; ``data/held_suarez_t21_l8.nc``,
    made by ``data/make_held_suarez_state.py``) as the arrays of
    ``esm.atmosphere.cases.held_suarez_spun_up``."""
    import xarray as xr

    with xr.open_dataset(data_file(HELD_SUAREZ_STATE_FILE)) as ds:
        return {"sigma_bounds": ds["sigma_bounds"].values, "zonal_wind": ds["ua"].values,
                "meridional_wind": ds["va"].values, "temperature": ds["ta"].values,
                "surface_pressure": ds["ps"].values}
