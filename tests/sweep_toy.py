"""A tiny experiment for the sweep tests (``sweep_toy:TOY``), independent of the registered studies.

Its cell computes a deterministic number from ``(x, n, seed)`` after sleeping ``sleep`` seconds, raises
when ``x == fail_at``, and, when ``$GHOSTSING_TOY_LOG`` names a folder, leaves one file there per run
(so the tests can count how many times each cell ran, on whichever process ran it).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostsing.experiments.base import Experiment, ExperimentOutput


@dataclass(frozen=True)
class ToyConfig:
    x: float = 1.0
    n: int = 3
    seed: int = 0
    sleep: float = 0.0
    fail_at: float = -1.0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n} is not allowed; allowed: >= 1")


def run(config: ToyConfig, out_dir: Path, *, resume: bool = False, progress: bool = True) -> ExperimentOutput:
    log = os.environ.get("GHOSTSING_TOY_LOG")
    if log:
        Path(log, f"{config.x}_{config.n}_{config.seed}_{os.getpid()}_{uuid.uuid4().hex[:6]}").touch()
    if config.sleep:
        time.sleep(config.sleep)
    if config.x == config.fail_at:
        raise RuntimeError(f"toy cell fails at x = {config.x}")
    r = np.random.default_rng(config.seed).standard_normal(config.n)
    return ExperimentOutput(summary={"value": float(config.x * r.sum()), "stats": {"n": config.n,
                                                                                    "max": float(r.max())}})


TOY = Experiment("sweep-toy", "toy cell for the sweep tests", "simulation", ToyConfig, run,
                 {"default": ToyConfig(), "small": ToyConfig(n=2)})
#: the same cell registered as a deep experiment (for the GPU-resource request)
TOY_DEEP = Experiment("sweep-toy-deep", "toy deep cell for the sweep tests", "deep", ToyConfig, run,
                      {"default": ToyConfig()})
EXPERIMENTS = (TOY, TOY_DEEP)
