"""Numerics shared by every component: grids and transforms, steppers, rollouts, parameters."""
