"""Shared test configuration.

One on-disk cache of generated code per test session: the controller process (or the single process
without xdist) points ``GHOSTSING_CACHE_DIR`` at a fresh temporary directory before any test runs;
pytest-xdist workers are started afterwards and inherit the variable, so every worker reuses (and may
concurrently write) the same cache.  That is safe: :mod:`ghostsing.analytic.codegen` writes each
module atomically (temporary file + ``os.replace``) and Numba writes its index and object files the
same way.  The directory is removed when the session ends; the user's own cache is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_SAVED = "_GHOSTSING_TEST_SAVED_CACHE_DIR"


def pytest_configure(config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has set the variable already
        return
    config._ghostsing_cache = tempfile.mkdtemp(prefix="ghostsing-test-cache-")
    os.environ[_SAVED] = os.environ.get("GHOSTSING_CACHE_DIR", "")
    os.environ["GHOSTSING_CACHE_DIR"] = config._ghostsing_cache


def pytest_unconfigure(config) -> None:
    path = getattr(config, "_ghostsing_cache", None)
    if path is None:
        return
    saved = os.environ.pop(_SAVED, "")
    if saved:
        os.environ["GHOSTSING_CACHE_DIR"] = saved
    else:
        os.environ.pop("GHOSTSING_CACHE_DIR", None)
    shutil.rmtree(path, ignore_errors=True)
