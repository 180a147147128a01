"""Benchmark: n seeds of the 30-layer, 128-unit MLP trained as one batched model vs one after another.

The alternative a user would write is a plain PyTorch loop: for each seed, build an ``nn.Linear`` MLP
(:class:`ghostsing.deepcheck.nets.MLP`) with its own Adam optimiser and train it; the networks are
trained one after another. The batched version (:class:`ghostsing.deepcheck.nets.BatchedMLP`) holds all
seeds as one model (stacked weights, ``torch.baddbmm``) with one optimiser, each network on its own
mini-batches. Both do the same number of Adam steps per network on the same data tensor (CIFAR-shaped
random inputs, 3072 features, 10 classes) held on the device.

Usage::

    python benchmarks/bench_deepcheck_batched.py [--seeds 8] [--steps 20] [--batch 256] [--device auto]
        [--threads N] [--json benchmarks/results/deepcheck_batched.json] [--with-smoke]

Prints a table and writes JSON (device, versions, seconds, ratio; the batched and sequential timings
alternate ``--repeats`` times and the fastest of each is reported, with every timing and the load average
at the start and end, since the machine may be shared). ``--with-smoke`` also times
``python -m ghostsing.deepcheck --preset smoke`` end to end (target: under 3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ghostsing.deepcheck.nets import MLP, BatchedMLP, MLPConfig
from ghostsing.deepcheck.training import TrainConfig, make_optimizer, per_net_loss, resolve_device


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_batched(cfg: MLPConfig, seeds: list[int], x, y, steps: int, batch: int, dev) -> float:
    model = BatchedMLP(cfg, seeds, device=dev)
    opt = make_optimizer(model.parameters(), TrainConfig(optimizer="adam", lr=1e-3))
    g = torch.Generator(device="cpu").manual_seed(0)
    idx = torch.randint(0, len(x), (steps + 1, len(seeds), batch), generator=g).to(dev)

    def step(i):
        losses, _ = per_net_loss(model(x[idx[i]]), y[idx[i]])
        opt.zero_grad()
        losses.sum().backward()
        opt.step()

    step(steps)  # warm-up
    _sync(dev)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(dev)
    return time.perf_counter() - t


def time_sequential(cfg: MLPConfig, seeds: list[int], x, y, steps: int, batch: int, dev) -> float:
    g = torch.Generator(device="cpu").manual_seed(0)
    idx = torch.randint(0, len(x), (steps + 1, len(seeds), batch), generator=g).to(dev)
    total = 0.0
    for j, s in enumerate(seeds):
        net = MLP(cfg, s, device=dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(i, net=net, opt=opt, j=j):
            loss = F.cross_entropy(net(x[idx[i, j]]), y[idx[i, j]])
            opt.zero_grad()
            loss.backward()
            opt.step()

        step(steps)  # warm-up
        _sync(dev)
        t = time.perf_counter()
        for i in range(steps):
            step(i)
        _sync(dev)
        total += time.perf_counter() - t
    return total


def time_smoke() -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ghostsing.deepcheck", "--preset", "smoke", "--out", d,
                        "--no-progress"], check=True, env=dict(os.environ, MPLBACKEND="Agg"),
                       capture_output=True)
        return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--repeats", type=int, default=2, help="best of this many timings")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/deepcheck_batched.json"))
    p.add_argument("--with-smoke", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    cfg = MLPConfig(a.depth, a.width, 3072, 10, "identity")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4096, 3072, generator=g).to(dev)
    y = torch.randint(0, 10, (4096,), generator=g).to(dev)
    seeds = list(range(a.seeds))
    load_start = os.getloadavg()
    tbs, tss = [], []
    for _ in range(a.repeats):  # alternated, so that both see the same load (the machine may be shared)
        tbs.append(time_batched(cfg, seeds, x, y, a.steps, a.batch, dev))
        tss.append(time_sequential(cfg, seeds, x, y, a.steps, a.batch, dev))
    tb, ts = min(tbs), min(tss)
    res = {
        "benchmark": "deepcheck batched vs sequential training",
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
        "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "net": f"{a.depth}-layer, {a.width}-unit residual MLP, 3072 inputs, 10 classes",
        "seeds": a.seeds, "steps_per_net": a.steps, "batch": a.batch,
        "batched_s": tb, "sequential_s": ts, "speedup_sequential_over_batched": ts / tb,
        "repeats": a.repeats, "batched_s_all": tbs, "sequential_s_all": tss,
        "paired_ratios": [q / b for b, q in zip(tbs, tss, strict=True)],
        "load_average_start_1m_5m_15m": list(load_start), "load_average_end_1m_5m_15m": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
    }
    if a.with_smoke:
        res["smoke_preset_s"] = time_smoke()
    print(f"{'device':<10} {'nets':>5} {'steps':>6} {'batched s':>10} {'sequential s':>13} {'ratio':>7}")
    print(f"{str(dev):<10} {a.seeds:>5} {a.steps:>6} {tb:>10.3f} {ts:>13.3f} {ts / tb:>7.2f}")
    if "smoke_preset_s" in res:
        print(f"smoke preset end to end: {res['smoke_preset_s']:.1f} s")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.json.with_name(a.json.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
