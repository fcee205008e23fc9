"""Choosing a checkpoint policy for a memory budget from XLA's own memory analysis.

The gradient of a rollout of n steps needs, besides its inputs and outputs, XLA temporary
memory that depends on the checkpoint policy (``esm.core.rollout``): ``none`` keeps every
step's residuals, ``step`` one carry per step, ``binomial`` c carries. The planner prefers
the policy with the least recomputation that fits the budget:

1. ``none`` (1 forward), then ``step`` (2: the adjoint recomputes each step), measured from
   their compilations (``compiled.memory_analysis().temp_size_in_bytes``: no run needed);
2. else ``binomial`` with c carries, whose memory is modelled as a + b·c from two
   compilations (at the fewest carries that ``max_recompute`` allows and at twice as
   many); the largest c within the budget gives the repetition number r (1 + r forwards),
   the smallest c with that r is taken, and its memory is verified by compiling it.

A budget that no policy meets within ``max_recompute`` raises ``BudgetTooSmall`` with the
smallest budget that would do.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from esm.core.rollout import binomial_forwards

GIB = 2.0 ** 30


class BudgetTooSmall(ValueError):
    """No policy fits the budget within the recomputation cap; ``smallest_bytes`` would."""

    def __init__(self, budget_bytes: float, smallest_bytes: float, max_recompute: int):
        self.budget_bytes, self.smallest_bytes = budget_bytes, smallest_bytes
        self.max_recompute = max_recompute
        super().__init__(
            f"memory budget {budget_bytes / GIB:.3g} GiB is too small for this gradient "
            f"within {max_recompute} forwards; the smallest that works is "
            f"{math.ceil(smallest_bytes / GIB * 1000) / 1000:.3f} GiB")


@dataclasses.dataclass
class MemoryPlan:
    """The chosen policy, its carries (binomial), forwards per step (1 + recomputations),
    the measured temporary memory at the choice, and every measurement taken."""

    policy: str
    checkpoints: int | None
    forwards: int
    temp_bytes: int
    budget_bytes: float
    measured: dict = dataclasses.field(default_factory=dict)
    model: tuple[float, float] | None = None

    def describe(self) -> str:
        what = self.policy if self.checkpoints is None else f"{self.policy} with {self.checkpoints} checkpoints"
        fit = ""
        if self.model is not None:
            a, b = self.model
            fit = f"; binomial memory modelled as {a / 2**20:.1f} MiB + c x {b / 2**20:.3f} MiB"
        return (f"checkpointing: {what} ({self.forwards} forwards per step), XLA temporary "
                f"memory {self.temp_bytes / 2**20:.1f} MiB of a {self.budget_bytes / 2**20:.1f} "
                f"MiB budget{fit}")


def least_checkpoints(n_steps: int, repetitions: int) -> int:
    """The fewest carries c with C(c + r, r) >= n: the binomial schedule's c for r."""
    c = 1
    while math.comb(c + repetitions, repetitions) < n_steps:
        c += 1
    return c


def plan_checkpointing(temp_bytes: Callable[[str, int | None], int], n_steps: int,
                       budget_bytes: float, max_recompute: int = 3) -> MemoryPlan:
    """Choose the policy for a gradient through ``n_steps`` steps.

    Args:
      temp_bytes: ``(policy, checkpoints) -> bytes`` of XLA temporary memory of the
        compiled gradient (e.g. ``jax.jit(grad).lower(...).compile().memory_analysis()``).
      n_steps: steps in the rollout.
      budget_bytes: the memory allowed for the temporaries.
      max_recompute: most forward evaluations per step (>= 1; 1 allows only ``none``).
    """
    if max_recompute < 1:
        raise ValueError(f"max_recompute={max_recompute} must be at least 1")
    measured: dict[str, int] = {}

    def measure(policy, c=None):
        key = policy if c is None else f"{policy}:{c}"
        if key not in measured:
            measured[key] = int(temp_bytes(policy, c))
        return measured[key]

    if measure("none") <= budget_bytes:
        return MemoryPlan("none", None, 1, measured["none"], budget_bytes, measured)
    smallest = measured["none"]
    if max_recompute >= 2:
        if measure("step") <= budget_bytes:
            return MemoryPlan("step", None, 2, measured["step"], budget_bytes, measured)
        smallest = min(smallest, measured["step"])
    if max_recompute < 2 or n_steps < 3:
        raise BudgetTooSmall(budget_bytes, smallest, max_recompute)
    repetitions = max_recompute - 1
    c1 = least_checkpoints(n_steps, repetitions)
    c2 = min(2 * c1, n_steps)
    m1 = measure("binomial", c1)
    if m1 > budget_bytes:
        raise BudgetTooSmall(budget_bytes, min(smallest, m1), max_recompute)
    m2 = measure("binomial", c2) if c2 > c1 else m1
    b = (m2 - m1) / (c2 - c1) if c2 > c1 else 0.0
    a = m1 - b * c1
    c_max = n_steps if b <= 0 else int(min(n_steps, (budget_bytes - a) // b))
    c_max = max(c_max, c1)
    r = binomial_forwards(n_steps, c_max)
    c = least_checkpoints(n_steps, r)
    m = measure("binomial", c)
    if m > budget_bytes:  # the linear model was optimistic: fall back to what was measured
        c, r, m = c1, repetitions, m1
    return MemoryPlan("binomial", c, 1 + r, m, budget_bytes, measured, (a, b))
