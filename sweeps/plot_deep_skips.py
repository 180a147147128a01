"""The deep-net grid (depth x skip kind x seed) from the store of ``sweeps/deep_skips_tiny.toml``.

    ghostsing sweep sweeps/deep_skips_tiny.toml
    python sweeps/plot_deep_skips.py      # docs/sweeps/deep_skips.png, sweeps/results/deep_skips_summary.json

Draws the final training loss, the fraction of eliminated units and of overlapping units (layer means of
the ReLU units, end of training) against depth for each skip kind (mean and seeds), and evaluates the
deep-check predictions on the store with the package's rules (``ghostsing.experiments.predictions``):
each skip arm reaches a lower final training loss than the plain arm at the deepest depth (permutation
test over seeds), and the skip advantage grows from the shallowest to the deepest depth (Welch contrast).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEASURES = {"runs.0.final_train_loss.0": "final training loss",
            "runs.0.layer_mean_end.elim_frac.0": "eliminated units (end)",
            "runs.0.layer_mean_end.overlap_both_frac.0": "overlapping units (end)"}


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ghostsing._io import write_json_atomic, write_with_atomic
    from ghostsing.experiments.predictions import contrast_prediction, difference_prediction
    from ghostsing.experiments.sweep_store import open_sweep

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default=str(ROOT / "sweeps/results/deep_skips.zarr"))
    ap.add_argument("--out", default=str(ROOT / "docs/sweeps"))
    ap.add_argument("--summary", default=str(ROOT / "sweeps/results/deep_skips_summary.json"))
    args = ap.parse_args(argv)
    ds = open_sweep(args.store)
    depths, skips = ds.depths.values, [str(s) for s in ds.skips.values]
    loss = "runs.0.final_train_loss.0"
    measures = {k: v for k, v in MEASURES.items() if k in ds}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.3 * len(measures), 3.8), squeeze=False)
    for ax, (var, label) in zip(axes[0], measures.items(), strict=True):
        for i, s in enumerate(skips):
            v = ds[var].sel(skips=s)
            ax.plot(depths, v.mean("seed"), "o-", color=colours[i % len(colours)], label=s, ms=4)
            for seed in v.seed.values:
                ax.plot(depths, v.sel(seed=seed), ".", color=colours[i % len(colours)], alpha=0.35)
        ax.set_xlabel("depth")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
    axes[0, 0].legend(fontsize=7, title="skip kind")
    fig.suptitle("Deep-net grid (sweeps/deep_skips_tiny.toml; synthetic data, test size)")
    fig.tight_layout()
    write_with_atomic(Path(args.out) / "deep_skips.png", lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)

    plain = "none" if "none" in skips else skips[0]
    deep, shallow = depths.max(), depths.min()
    preds = []
    for s in skips:
        if s == plain:
            continue
        a = ds[loss].sel(skips=plain, depths=deep).values
        b = ds[loss].sel(skips=s, depths=deep).values
        preds.append(difference_prediction(
            f"{s} reaches a lower training loss than {plain} at depth {deep}", a, b, 1,
            "mean final train loss (plain) - (skip)", "skip arm trains better at the deepest depth",
        ).to_dict())
        at = {(arm, d): ds[loss].sel(skips=arm, depths=d).values
              for arm in (plain, s) for d in (deep, shallow)}
        groups = [at[plain, deep], at[s, deep], at[plain, shallow], at[s, shallow]]
        preds.append(contrast_prediction(
            f"the advantage of {s} over {plain} grows from depth {shallow} to {deep}", groups, [1, -1, -1, 1],
            1, "[L(plain) - L(skip)]_deep - [L(plain) - L(skip)]_shallow",
            "the skip advantage grows with depth").to_dict())
    summary = {"depths": depths.tolist(), "skips": skips, "seeds": ds.seed.values.tolist(),
               "cells": {"done": int((ds.status == "done").sum()),
                         "failed": int((ds.status == "failed").sum())},
               "cell_wall_time_s": {"median": float(np.nanmedian(ds.wall_time_s)),
                                    "total": float(np.nansum(ds.wall_time_s))},
               "mean_over_seeds": {label: ds[var].mean("seed").transpose("skips", "depths").values.tolist()
                                   for var, label in measures.items()},
               "predictions": preds}
    write_json_atomic(args.summary, summary)
    for p in preds:
        print(f"{p['verdict']:>13}  effect {p['effect']:+.3g}  p = {p.get('p_value')}  {p['name']}")
    print(f"wrote {Path(args.out) / 'deep_skips.png'} and {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
