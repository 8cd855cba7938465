"""Shared pytest configuration: hypothesis profiles, and each test's environment given back.

Pick a profile with the environment variable ``HYPOTHESIS_PROFILE``:

* ``default`` -- a small number of examples, for everyday runs;
* ``ci`` -- fewer still and derandomized, so CI runs are fast and repeatable;
* ``thorough`` -- many examples, for hunting bugs by hand.

Property tests that do not pass ``max_examples`` themselves get the profile's count.
Every profile turns the deadline off: the first example of a test pays for Numba's
compilation and would otherwise trip it.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("default", max_examples=15, **_COMMON)
settings.register_profile("ci", max_examples=6, derandomize=True, database=None, **_COMMON)
settings.register_profile("thorough", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _environment_as_it_was():
    """This process's ``os.environ`` after each test as before it. Dask's nannies write their workers'
    environment (``OPENBLAS_NUM_THREADS=1`` and friends) into it whenever they start a worker, a
    restart after a killed one included; a later test's ``minigan`` subprocess would then run another
    BLAS thread count than this process and round its matrix products differently."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)
