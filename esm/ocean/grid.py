"""Arakawa C-grids for the ocean: latitude–longitude on the sphere, or a beta-plane box.

Index layout (``j`` north, ``i`` east), for ``ny`` rows and ``nx`` columns of cells:

* thickness and temperature at cell centres, shape ``(ny, nx)``;
* ``u`` on the west face of each cell, ``(ny, nx)``: ``u[j, i]`` sits between cells
  ``i - 1`` and ``i`` (periodic in ``i``; a box is a periodic channel with one land column);
* ``v`` on the south face of each cell plus the northern boundary, ``(ny + 1, nx)``:
  ``v[j, i]`` between rows ``j - 1`` and ``j``; rows 0 and ``ny`` are walls;
* vorticity and potential vorticity at the south-west corners, ``(ny + 1, nx)``.

Masks are 1 for ocean and 0 for land; a face is open only between two ocean cells, so the
normal velocity on a coastline face is exactly zero. Grid building is numpy (and scipy for
the connected components), done once, outside jitted code.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from esm.core.constants import ANGULAR_VELOCITY, EARTH_RADIUS, SECONDS_PER_DAY

RESOLUTIONS = {"4deg": 4.0, "2deg": 2.0, "1deg": 1.0, "0.5deg": 0.5}


@dataclasses.dataclass(frozen=True, eq=False)
class OceanGrid:
    """A C-grid with its metrics (SI units) and masks; see the module docstring for shapes.

    Attributes:
      lat, lat_faces: cell-centre and south-face latitudes, degrees (``ny``, ``ny + 1``);
        on a box these are the distances ``y`` in metres instead.
      lon, lon_faces: cell-centre and west-face longitudes, degrees (or ``x`` in metres).
      dx_center: zonal width of cells and u faces at each row, m, ``(ny,)``.
      dx_face: zonal width at v faces and corners, m, ``(ny + 1,)``.
      dy: meridional width, m.
      area: cell area, m^2, ``(ny,)`` (exact on the sphere: a² Δλ (sin φ_n − sin φ_s)).
      coriolis_corner: f at the corners, 1/s, ``(ny + 1,)``.
      coriolis_center: f at the centres, 1/s, ``(ny,)``.
      ocean, u_open, v_open: float masks of centres, u faces and v faces.
      sponge: relaxation rate at the closed rows, 1/s, ``(ny,)`` (zero on a box).
      periodic: whether the grid wraps in longitude.
    """

    lat: np.ndarray
    lat_faces: np.ndarray
    lon: np.ndarray
    lon_faces: np.ndarray
    dx_center: np.ndarray
    dx_face: np.ndarray
    dy: float
    area: np.ndarray
    coriolis_corner: np.ndarray
    coriolis_center: np.ndarray
    ocean: np.ndarray
    u_open: np.ndarray
    v_open: np.ndarray
    sponge: np.ndarray
    periodic: bool
    spherical: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.ocean.shape

    def cell_area(self) -> np.ndarray:
        """Cell areas broadcast to ``(ny, nx)``, m^2."""
        return np.broadcast_to(self.area[:, None], self.shape)

    def ocean_area(self) -> float:
        return float(np.sum(self.cell_area() * self.ocean))


def face_masks(ocean: np.ndarray, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Open u faces (between two ocean cells) and open v faces (rows 0 and ny closed)."""
    ocean = np.asarray(ocean, dtype=float)
    u_open = ocean * np.roll(ocean, 1, axis=1)
    if not periodic:
        u_open[:, 0] = 0.0
    v_open = np.zeros((ocean.shape[0] + 1, ocean.shape[1]))
    v_open[1:-1] = ocean[1:] * ocean[:-1]
    return u_open, v_open


def connected_ocean(ocean: np.ndarray, periodic: bool = True):
    """The largest face-connected piece of ``ocean`` (bool ``(ny, nx)``), and the others.

    Returns ``(mask, pieces)``: ``mask`` keeps only the largest piece (the world ocean);
    ``pieces`` lists the detached ones as dicts with ``cells`` and the centre indices
    ``(j, i)`` of one of their cells, largest first. Connectivity is through faces (4
    neighbours), across the date line when ``periodic``.
    """
    from scipy import ndimage

    ocean = np.asarray(ocean, dtype=bool)
    labels, count = ndimage.label(ocean)
    if periodic and count > 1:  # merge labels that touch across the date line
        parent = np.arange(count + 1)

        def root(k):
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for a, b in zip(labels[:, 0], labels[:, -1]):
            if a and b:
                ra, rb = root(a), root(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        labels = np.array([root(k) for k in range(count + 1)])[labels]
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    if ids.size == 0:
        raise ValueError("the ocean mask has no ocean cell")
    order = np.argsort(-sizes)
    keep = ids[order[0]]
    pieces = []
    for k in order[1:]:
        j, i = np.argwhere(labels == ids[k])[0]
        pieces.append({"cells": int(sizes[k]), "index": (int(j), int(i))})
    return labels == keep, pieces


def spherical_grid(resolution: float, south: float = -54.0, north: float = 65.0,
                   ocean: np.ndarray | None = None, sponge_degrees: float = 5.0,
                   sponge_days: float = 30.0, sponge_south: bool = True,
                   sponge_north: bool = True) -> OceanGrid:
    """A latitude–longitude C-grid of ``resolution`` degrees between ``south`` and ``north``
    (the outermost faces; rows beyond are closed), all ocean unless ``ocean`` is given.

    The sponge relaxes over ``sponge_days`` at the closed rows, falling linearly to zero
    ``sponge_degrees`` away from them (zero where ``sponge_south``/``sponge_north`` is off).
    """
    if resolution <= 0 or 360.0 / resolution % 1 > 1e-9:
        raise ValueError(f"ocean resolution {resolution} degrees does not divide 360; "
                         "use 4deg, 2deg or 1deg")
    if not -90.0 <= south < north <= 90.0:
        raise ValueError(f"ocean latitude limits south={south}, north={north} are not ordered "
                         "within [-90, 90]")
    nx = int(round(360.0 / resolution))
    ny = int(round((north - south) / resolution))
    lat_faces = south + resolution * np.arange(ny + 1)
    lat = 0.5 * (lat_faces[1:] + lat_faces[:-1])
    lon_faces = resolution * np.arange(nx)
    lon = lon_faces + 0.5 * resolution
    dlam, dphi = np.deg2rad(resolution), np.deg2rad(resolution)
    a = EARTH_RADIUS
    dx_center = a * np.cos(np.deg2rad(lat)) * dlam
    dx_face = a * np.cos(np.deg2rad(lat_faces)) * dlam
    area = a * a * dlam * (np.sin(np.deg2rad(lat_faces[1:])) - np.sin(np.deg2rad(lat_faces[:-1])))
    if ocean is None:
        ocean = np.ones((ny, nx), dtype=bool)
    if np.shape(ocean) != (ny, nx):
        raise ValueError(f"ocean mask shape {np.shape(ocean)} is not the grid's {(ny, nx)}")
    ocean = np.asarray(ocean, dtype=float)
    u_open, v_open = face_masks(ocean, periodic=True)
    rate = 1.0 / (sponge_days * SECONDS_PER_DAY)
    sponge = np.zeros(ny)
    if sponge_south:
        sponge = np.maximum(sponge, rate * np.clip(1.0 - (lat - south) / sponge_degrees, 0, 1))
    if sponge_north:
        sponge = np.maximum(sponge, rate * np.clip(1.0 - (north - lat) / sponge_degrees, 0, 1))
    omega2 = 2.0 * ANGULAR_VELOCITY
    return OceanGrid(lat=lat, lat_faces=lat_faces, lon=lon, lon_faces=lon_faces,
                     dx_center=dx_center, dx_face=dx_face, dy=a * dphi, area=area,
                     coriolis_corner=omega2 * np.sin(np.deg2rad(lat_faces)),
                     coriolis_center=omega2 * np.sin(np.deg2rad(lat)), ocean=ocean,
                     u_open=u_open, v_open=v_open, sponge=sponge, periodic=True,
                     spherical=True)


def beta_plane_box(length_x: float, length_y: float, spacing: float, f0: float,
                   beta: float) -> OceanGrid:
    """A closed rectangular basin on the beta plane, f = f0 + beta (y − L_y/2), all
    lengths in metres; walls on all four sides.

    The basin's ``nx`` ocean columns are followed by one land column and the grid wraps,
    so the east and west walls are ordinary coastlines: every stencil (and the no-slip
    wall vorticity, which counts the ocean cells around a corner) treats them exactly as
    it treats a coast on the sphere. ``lon`` holds the cell-centre ``x`` in metres; the land
    column sits at ``x = L_x + spacing / 2``.
    """
    nx, ny = int(round(length_x / spacing)), int(round(length_y / spacing))
    if nx < 4 or ny < 4 or abs(nx * spacing - length_x) > 1e-6 * length_x:
        raise ValueError(f"box {length_x} x {length_y} m is not a whole number (>= 4) of "
                         f"{spacing} m cells")
    y_faces = spacing * np.arange(ny + 1)
    y = y_faces[:-1] + 0.5 * spacing
    x_faces = spacing * np.arange(nx + 1)
    ocean = np.ones((ny, nx + 1))
    ocean[:, -1] = 0.0
    u_open, v_open = face_masks(ocean, periodic=True)
    mid = 0.5 * length_y
    return OceanGrid(lat=y, lat_faces=y_faces, lon=x_faces + 0.5 * spacing, lon_faces=x_faces,
                     dx_center=np.full(ny, spacing), dx_face=np.full(ny + 1, spacing),
                     dy=float(spacing), area=np.full(ny, spacing * spacing),
                     coriolis_corner=f0 + beta * (y_faces - mid),
                     coriolis_center=f0 + beta * (y - mid), ocean=ocean, u_open=u_open,
                     v_open=v_open, sponge=np.zeros(ny), periodic=True, spherical=False)
