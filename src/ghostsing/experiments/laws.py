r"""Fitted and derived laws of the simulation studies as predictions (one verdict rule for all).

A simulation study checks a law ("``alpha tau -> C``", "the plateau slope is ``1/lambda_u``", "the line is
critical") against what it measured.  The claim is put as the sign of an effect ``E`` (predicted
positive), so that the verdict rules of :mod:`ghostsing.experiments.predictions` apply unchanged
(**holds**: ``p < level`` and the CI entirely on the predicted side of 0; **fails**: ``p < level`` and
the CI on the other side; **underpowered**: too few samples for the level; **inconclusive** otherwise):

* :func:`agreement_prediction` — independent samples ``x_i`` (starts, seeds), each scored
  ``d_i = tol - |x_i/predicted - 1|`` (or the absolute deviation); ``E = mean(d_i)``, tested by the exact
  sign-flip permutation test with the one-sample t interval (``one_group_prediction``): the law holds to
  the stated tolerance on average over samples;
* :func:`bootstrap_agreement` — a fitted value with its bootstrap replicates (a slope fitted over all
  starts): ``E = tol - |value/predicted - 1|``, the CI the percentile interval of the replicates'
  ``E*`` and the p-value the two-sided bootstrap one, ``2 min(P*(E* <= 0), P*(E* >= 0))``;
* :func:`exact_check` — a deterministic number (an eigenvalue of the generated Jacobian, a count over a
  fixed set of starts): there is no sampling, so the CI is the value itself, ``n_seeds = 1`` and the
  p-value is 0 by construction (test ``deterministic``); ``tol`` is the stated numerical tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ghostsing.experiments.predictions import LEVEL, Prediction, decide, one_group_prediction

__all__ = ["agreement_prediction", "bootstrap_agreement", "exact_check"]


def _dev(x, predicted: float, relative: bool):
    return np.abs(np.asarray(x, dtype=np.float64) / predicted - 1.0) if relative else \
        np.abs(np.asarray(x, dtype=np.float64) - predicted)


def _what(predicted: float, tol: float, relative: bool) -> str:
    kind = "relative" if relative else "absolute"
    return f"tol - |{kind} deviation from {predicted:.6g}|, tol = {tol:g}"


def agreement_prediction(name: str, samples: Sequence[float], predicted: float, tol: float, description: str,
                         *, relative: bool = True, seed: int = 0,
                         details: Mapping[str, object] | None = None) -> Prediction:
    """Independent ``samples`` agree with ``predicted`` to ``tol`` on average (module docstring).
    A non-finite sample (a run that never crossed) makes the verdict inconclusive."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    det = {"predicted": predicted, "tolerance": tol, "relative": relative,
           "sample_mean": float(np.mean(x)) if x.size else float("nan")}
    det.update(details or {})
    return one_group_prediction(name, tol - _dev(x, predicted, relative), +1,
                                _what(predicted, tol, relative) + ", mean over samples", description,
                                seed=seed, details=det)


def bootstrap_agreement(name: str, value: float, replicates: Sequence[float], predicted: float, tol: float,
                        description: str, *, n: int, relative: bool = True, confidence: float = 0.95,
                        details: Mapping[str, object] | None = None) -> Prediction:
    """A fitted ``value`` (bootstrap ``replicates`` over its ``n`` samples) agrees with ``predicted``."""
    effect = float(tol - _dev(value, predicted, relative))
    boot = tol - _dev(replicates, predicted, relative)
    boot = boot[np.isfinite(boot)]
    if boot.size >= 20:
        q = (1 - confidence) / 2
        ci = (float(np.quantile(boot, q)), float(np.quantile(boot, 1 - q)))
        p = float(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0)) + 1.0 / (boot.size + 1)))
        verdict, reason = decide(effect, ci, p, 1, LEVEL, 2.0 / (boot.size + 1))
    else:
        ci, p = (float("nan"), float("nan")), float("nan")
        verdict, reason = "inconclusive", "fewer than 20 finite bootstrap replicates"
    det = {"predicted": predicted, "tolerance": tol, "relative": relative, "value": value,
           "n_replicates": int(boot.size)}
    det.update(details or {})
    return Prediction(name, verdict, effect, ci, n, _what(predicted, tol, relative) + " of the fitted value",
                      description, 1, det, test="percentile bootstrap (two-sided bootstrap p)", p_value=p,
                      reason=reason)


def exact_check(name: str, measured: float, predicted: float, tol: float, description: str, *,
                relative: bool = False, details: Mapping[str, object] | None = None) -> Prediction:
    """A deterministic ``measured`` agrees with ``predicted`` to ``tol`` (CI = the value, p = 0)."""
    effect = float(tol - _dev(measured, predicted, relative)) if np.isfinite(measured) else float("nan")
    verdict, reason = decide(effect, (effect, effect), 0.0 if np.isfinite(effect) else float("nan"), 1)
    det = {"predicted": predicted, "measured": measured, "tolerance": tol, "relative": relative}
    det.update(details or {})
    return Prediction(name, verdict, effect, (effect, effect), 1, _what(predicted, tol, relative),
                      description, 1, det, test="deterministic (no sampling: CI = the value, p = 0)",
                      p_value=0.0 if np.isfinite(effect) else float("nan"),
                      reason=reason)
