"""Test configuration: float32 stays the default; tests that need float64 use ``x64``.

JAX's persistent compilation cache is shared by every test and every ``esm-run`` /
``esm-calibrate`` subprocess of the session (``JAX_COMPILATION_CACHE_DIR``), so a model that
several tests run is compiled once: the folder is ``.pytest_cache/jax`` in the repository
(kept between local runs; empty on a fresh clone) unless ``DIFFESM_TEST_JAX_CACHE`` names
another one (``off`` disables it).
"""

import os
from pathlib import Path

import jax
import pytest

_CACHE = os.environ.get("DIFFESM_TEST_JAX_CACHE",
                        str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"))
if _CACHE != "off":
    Path(_CACHE).mkdir(parents=True, exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE  # inherited by subprocesses
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@pytest.fixture
def x64():
    """Enable float64 for one test and restore the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


# hypothesis: a bounded example count in the default suite, more with HYPOTHESIS_PROFILE=slow
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("slow", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
