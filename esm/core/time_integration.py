"""Time steppers for implicit–explicit equations.

An equation provides (all pure functions of a state pytree and a parameter pytree):

* ``explicit_terms(state, params)``: the slow, nonlinear tendencies;
* ``implicit_terms(state, params)``: the fast linear tendencies (gravity waves, diffusion);
* ``implicit_inverse(state, eta, params)``: the solution ``y`` of ``y - eta * L(y) = state``;
* optionally ``physics_terms(state, params, time, interval)``: column-physics tendencies that
  act over ``interval`` seconds and are evaluated on the older leapfrog level (``time`` in
  seconds since the start), as in the GFDL idealized moist model, where physics is
  computed from the t - dt level over 2 dt. Only the leapfrog supports them; equations with
  ``has_column_physics`` refuse the Runge–Kutta steppers.

A stepper is built from ``(equation, dt)`` and exposes ``init(state, params) -> carry``,
``step(carry, params) -> carry`` and ``current(carry) -> state``. For single-level schemes
the carry is the state; the leapfrog carry holds both time levels, which is exactly what a
restart needs. Every stepper declares its order of accuracy (``order``), which a test
measures by regression.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Protocol

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class ImplicitExplicitEquation(Protocol):
    def explicit_terms(self, state: PyTree, params: PyTree) -> PyTree: ...

    def implicit_terms(self, state: PyTree, params: PyTree) -> PyTree: ...

    def implicit_inverse(self, state: PyTree, eta: float, params: PyTree) -> PyTree: ...


def _axpy(*terms):
    """sum_i c_i * x_i over pytrees for (c_i, x_i) pairs with scalar c_i; zero c_i skipped."""
    nonzero = [(c, x) for c, x in terms if c != 0.0]
    if not nonzero:
        return jax.tree.map(jnp.zeros_like, terms[0][1])
    return jax.tree.map(lambda *xs: sum(c * x for (c, _), x in zip(nonzero, xs)),
                        *[x for _, x in nonzero])


@dataclasses.dataclass(frozen=True)
class ImExButcherTableau:
    """Implicit–explicit Runge–Kutta tableau with an explicit first stage.

    ``a_ex[i]`` (length i + 1) and ``a_im[i]`` (length i + 2, the last entry being the
    diagonal) give stage ``i + 1`` from stages ``0..i``; ``b_ex``, ``b_im`` the final
    combination.
    """

    a_ex: tuple[tuple[float, ...], ...]
    a_im: tuple[tuple[float, ...], ...]
    b_ex: tuple[float, ...]
    b_im: tuple[float, ...]
    order: int


# Whitaker & Kar (2013, MWR 141, 3426–3434), the semi-implicit three-stage scheme of their
# section 2b ("IMEX-SIL3"); second order overall (dinosaur's default stepper).
IMEX_SIL3 = ImExButcherTableau(
    a_ex=((1 / 3,), (1 / 6, 1 / 2), (1 / 2, -1 / 2, 1.0)),
    a_im=((1 / 6, 1 / 6), (1 / 3, 0.0, 1 / 3), (3 / 8, 0.0, 3 / 8, 1 / 4)),
    b_ex=(1 / 2, -1 / 2, 1.0, 0.0),
    b_im=(3 / 8, 0.0, 3 / 8, 1 / 4),
    order=2,
)

# Ascher, Ruuth & Spiteri (1997, Appl. Numer. Math. 25, 151–167), scheme (4,4,3) of their
# section 2.8: L-stable, stiffly accurate, third order.
ARS_443 = ImExButcherTableau(
    a_ex=((1 / 2,), (11 / 18, 1 / 18), (5 / 6, -5 / 6, 1 / 2),
          (1 / 4, 7 / 4, 3 / 4, -7 / 4)),
    a_im=((0.0, 1 / 2), (0.0, 1 / 6, 1 / 2), (0.0, -1 / 2, 1 / 2, 1 / 2),
          (0.0, 3 / 2, -3 / 2, 1 / 2, 1 / 2)),
    b_ex=(1 / 4, 7 / 4, 3 / 4, -7 / 4, 0.0),
    b_im=(0.0, 3 / 2, -3 / 2, 1 / 2, 1 / 2),
    order=3,
)


class AbstractStepper(eqx.Module):
    """A time stepper of a fixed step ``dt`` for one equation."""

    equation: Any
    dt: float = eqx.field(static=True)

    @property
    @abc.abstractmethod
    def order(self) -> int:
        """Declared order of accuracy."""

    @abc.abstractmethod
    def init(self, state, params):
        """Carry for the first step from an initial state."""

    @abc.abstractmethod
    def step(self, carry, params):
        """Advance the carry by ``dt``."""

    def current(self, carry):
        """The state at the carry's current time."""
        return carry


class ImExRungeKutta(AbstractStepper):
    """Implicit–explicit Runge–Kutta stepper from a tableau (explicit first stage)."""

    tableau: ImExButcherTableau = eqx.field(static=True, default=IMEX_SIL3)

    @property
    def order(self) -> int:
        return self.tableau.order

    def init(self, state, params):
        return state

    def __check_init__(self):
        if getattr(self.equation, "has_column_physics", False):
            raise ValueError("column physics acts on the leapfrog's t - dt level; "
                             "use the leapfrog stepper (run.stepper=leapfrog)")

    def step(self, state, params):
        eq, dt, tab = self.equation, self.dt, self.tableau
        f = [eq.explicit_terms(state, params)]
        g = [eq.implicit_terms(state, params)]
        ys = [state]
        for a_ex, a_im in zip(tab.a_ex, tab.a_im):
            rhs = _axpy((1.0, state), *[(dt * a, fj) for a, fj in zip(a_ex, f)],
                        *[(dt * a, gj) for a, gj in zip(a_im[:-1], g)])
            diag = a_im[-1]
            y = eq.implicit_inverse(rhs, dt * diag, params) if diag != 0.0 else rhs
            ys.append(y)
            f.append(eq.explicit_terms(y, params))
            g.append(eq.implicit_terms(y, params))
        return _axpy((1.0, state), *[(dt * b, fj) for b, fj in zip(tab.b_ex, f)],
                     *[(dt * b, gj) for b, gj in zip(tab.b_im, g)])


class LeapfrogCarry(eqx.Module):
    """Both leapfrog time levels: ``previous`` (already filtered) and ``current``.

    ``started`` is False only before the first step; the carry is always at the time of
    ``current``, which is ``step * dt`` after the start (``step``: an integer counter, so model
    time is never an accumulated float).
    """

    previous: PyTree
    current: PyTree
    started: jax.Array
    step: jax.Array = eqx.field(default_factory=lambda: jnp.asarray(0, jnp.int32))


class SemiImplicitLeapfrog(AbstractStepper):
    """Semi-implicit leapfrog with the Robert–Asselin–Williams (RAW) filter.

    x_{n+1} = x_{n-1} + 2 dt N(x_n) + dt [L(x_{n+1}) + L(x_{n-1})]   (Hoskins & Simmons 1975)
    d = robert / 2 * (x_{n-1} - 2 x_n + x_{n+1});
    x_n <- x_n + williams * d;  x_{n+1} <- x_{n+1} + (williams - 1) * d   (Williams 2009,
    MWR 137, 2538–2546, eqs. 8–9).

    With ``williams = 0.5`` the filter leaves the three-level mean unchanged and the scheme
    is second order; Robert–Asselin (``williams = 1``) and other values are first order.
    ``init`` returns a carry at the initial time; the first ``step`` is a semi-implicit
    forward step of ``dt`` (the same update with half the leapfrog interval), so ``n`` steps
    always reach time ``n dt``.
    """

    robert: float = eqx.field(static=True, default=0.05)
    williams: float = eqx.field(static=True, default=0.5)

    @property
    def order(self) -> int:
        return 2 if self.williams == 0.5 else 1

    def init(self, state, params):
        return LeapfrogCarry(previous=state, current=state, started=jnp.asarray(False),
                             step=jnp.asarray(0, jnp.int32))

    def step(self, carry, params):
        eq = self.equation
        prev, cur = carry.previous, carry.current
        # Before the first step previous == current == x0 and the same formula with half the
        # step, tau = dt / 2, is the semi-implicit start x1 = x0 + dt N(x0) + dt/2 L(x0 + x1)
        # (one O(dt^2) local error: second order is kept); the filter is off for it. No
        # lax.cond: a scanned cond would carry (and, under AD, store) both branches.
        tau = jnp.where(carry.started, self.dt, 0.5 * self.dt)
        explicit = eq.explicit_terms(cur, params)
        if getattr(eq, "has_column_physics", False):
            # physics from the older level over the leapfrog interval 2 tau (GFDL)
            older_step = carry.step - carry.started.astype(carry.step.dtype)
            time = older_step.astype(tau.dtype) * self.dt
            physics = eq.physics_terms(prev, params, time, 2.0 * tau)
            explicit = jax.tree.map(jnp.add, explicit, physics)
        implicit = eq.implicit_terms(prev, params)
        rhs = jax.tree.map(lambda p, n, l: p + 2.0 * tau * n + tau * l, prev, explicit, implicit)
        new = eq.implicit_inverse(rhs, tau, params)
        half = 0.5 * self.robert * carry.started.astype(tau.dtype)
        d = jax.tree.map(lambda p, c, n: half * (p - 2.0 * c + n), prev, cur, new)
        cur = jax.tree.map(lambda c, dd: c + self.williams * dd, cur, d)
        new = jax.tree.map(lambda n, dd: n + (self.williams - 1.0) * dd, new, d)
        return LeapfrogCarry(previous=cur, current=new, started=jnp.asarray(True),
                             step=carry.step + 1)

    def current(self, carry):
        return carry.current


class Filtered(AbstractStepper):
    """A stepper whose newest state passes through ``filter(state) -> state`` after each step
    (e.g. a tracer positivity fix); the carry layout is the inner stepper's."""

    inner: AbstractStepper
    filter: Any

    def __init__(self, inner: AbstractStepper, filter):
        self.inner, self.filter = inner, filter
        self.equation, self.dt = inner.equation, inner.dt

    @property
    def order(self) -> int:
        return self.inner.order

    def init(self, state, params):
        return self._apply(self.inner.init(self.filter(state), params))

    def _apply(self, carry):
        if isinstance(carry, LeapfrogCarry):
            return LeapfrogCarry(carry.previous, self.filter(carry.current), carry.started,
                                 carry.step)
        return self.filter(carry)

    def step(self, carry, params):
        return self._apply(self.inner.step(carry, params))

    def current(self, carry):
        return self.inner.current(carry)


class ExplicitEquation(Protocol):
    """An equation integrated fully explicitly: ``tendency(state, params, time)`` with
    ``time`` in seconds since the start (the ocean's forcing depends on it)."""

    def tendency(self, state: PyTree, params: PyTree, time) -> PyTree: ...


class ExplicitCarry(eqx.Module):
    """State, the two previous tendencies (Adams–Bashforth history; unused by RK3) and the
    integer step counter: time = step * dt. A restart stores all of it."""

    state: PyTree
    history: tuple
    step: jax.Array


# Shu–Osher form of SSP-RK3, y_{s+1} = a_s u + b_s (y_s + dt f(y_s, t + c_s dt)), y_0 = u
_SSP_RK3 = ((0.0, 1.0, 0.0), (0.75, 0.25, 1.0), (1.0 / 3.0, 2.0 / 3.0, 0.5))


def _ssp_rk3(eq, state, params, time, dt):
    """One step of the third-order strong-stability-preserving Runge–Kutta scheme of Shu &
    Osher (1988, J. Comput. Phys. 77, 439–471, eq. 2.18), its three stages as one
    ``lax.scan`` so that the tendency is traced and compiled once."""

    def stage(y, coefficients):
        a, b, c = coefficients
        k = eq.tendency(y, params, time + c * dt)
        new = jax.tree.map(lambda u, x, f: (a * u + b * (x + dt * f)).astype(x.dtype),
                           state, y, k)
        return new, None

    coefficients = tuple(jnp.asarray(col) for col in zip(*_SSP_RK3))
    y, _ = jax.lax.scan(stage, state, coefficients)
    return y


class RungeKutta3(AbstractStepper):
    """SSP-RK3 (Shu & Osher 1988) for an ``ExplicitEquation``; three tendencies a step."""

    @property
    def order(self) -> int:
        return 3

    def init(self, state, params):
        return ExplicitCarry(state, (), jnp.asarray(0, jnp.int32))

    def step(self, carry, params):
        time = carry.step * self.dt
        new = _ssp_rk3(self.equation, carry.state, params, time, self.dt)
        return ExplicitCarry(new, (), carry.step + 1)

    def current(self, carry):
        return carry.state


class AdamsBashforth3(AbstractStepper):
    """Third-order Adams–Bashforth: x_{n+1} = x_n + dt (23 f_n − 16 f_{n−1} + 5 f_{n−2}) / 12
    (Durran 2010, Numerical Methods for Fluid Dynamics, eq. 2.67); one tendency a step.

    Stable for oscillations with |omega| dt <= 0.72 (Durran 2010, Fig. 2.10), e.g. inertial
    oscillations f dt <= 0.72 (about 1.5 h at 65°N). ``init`` fills the history f_{−1},
    f_{−2} from two backward SSP-RK3 steps of the initial state, so the first step is
    already third order (a forward-Euler start would cost one order); the carry holds the
    history, so a restart continues bit for bit.
    """

    @property
    def order(self) -> int:
        return 3

    def init(self, state, params):
        eq, dt = self.equation, self.dt

        def backward(x, k):
            time = -k * dt
            earlier = _ssp_rk3(eq, x, params, time, -dt)
            return earlier, eq.tendency(earlier, params, time - dt)

        _, tendencies = jax.lax.scan(backward, state, jnp.arange(2.0))
        history = tuple(jax.tree.map(lambda a, i=i: a[i], tendencies) for i in range(2))
        return ExplicitCarry(state, history, jnp.asarray(0, jnp.int32))

    def step(self, carry, params):
        dt = self.dt
        time = carry.step * dt
        f0 = self.equation.tendency(carry.state, params, time)
        f1, f2 = carry.history
        new = _axpy((1.0, carry.state), (dt * 23.0 / 12.0, f0), (-dt * 16.0 / 12.0, f1),
                    (dt * 5.0 / 12.0, f2))
        return ExplicitCarry(new, (f0, f1), carry.step + 1)

    def current(self, carry):
        return carry.state


STEPPERS = ("leapfrog", "imex_sil3", "ars443", "ab3", "rk3")


def make_stepper(name: str, equation, dt: float, **options) -> AbstractStepper:
    """Stepper by name: ``leapfrog`` (semi-implicit + RAW), ``imex_sil3`` or ``ars443`` for
    implicit–explicit equations; ``ab3`` or ``rk3`` for explicit ones (the ocean)."""
    if name == "leapfrog":
        return SemiImplicitLeapfrog(equation, float(dt), **options)
    if name == "imex_sil3":
        return ImExRungeKutta(equation, float(dt), IMEX_SIL3)
    if name == "ars443":
        return ImExRungeKutta(equation, float(dt), ARS_443)
    if name == "ab3":
        return AdamsBashforth3(equation, float(dt))
    if name == "rk3":
        return RungeKutta3(equation, float(dt))
    raise ValueError(f"unknown stepper {name!r}; choose one of {', '.join(STEPPERS)}")


def tableau_check(tab: ImExButcherTableau) -> dict[str, float]:
    """Residuals of the order conditions up to 2 (consistency helper for tests)."""
    c_ex = np.array([0.0] + [sum(r) for r in tab.a_ex])
    c_im = np.array([0.0] + [sum(r) for r in tab.a_im])
    b_ex, b_im = np.array(tab.b_ex), np.array(tab.b_im)
    return {
        "sum_b_ex": b_ex.sum() - 1.0, "sum_b_im": b_im.sum() - 1.0,
        "b_ex_c_ex": b_ex @ c_ex - 0.5, "b_im_c_im": b_im @ c_im - 0.5,
        "b_ex_c_im": b_ex @ c_im - 0.5, "b_im_c_ex": b_im @ c_ex - 0.5,
    }
