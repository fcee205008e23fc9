"""The ocean: C-grids on the sphere or a beta plane, and an N + 1/2 layer reduced-gravity
dynamical core with a mixed-layer temperature (``esm.ocean.dynamics``)."""
