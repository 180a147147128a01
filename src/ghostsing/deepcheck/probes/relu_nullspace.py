r"""The Hessian null directions that dead and duplicated ReLU units create, counted from the weights and the
data alone (:func:`null_directions`, no Hessian): the derivation that the exact spectra of
:mod:`ghostsing.deepcheck.probes.hessian` are checked against (experiment ``nullspace``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["NullCount", "null_directions"]


@dataclass(frozen=True)
class NullCount:
    """The Hessian null directions a ReLU MLP's dead and duplicated units create (:func:`null_directions`).

    ``total = dead + duplicate``; ``dead`` counts parameters (a union: a weight from a dead unit into a
    dead unit counts once); ``dead_units`` / ``duplicate_pairs`` per hidden layer."""

    total: int
    dead: int
    duplicate: int
    dead_units: tuple[int, ...]
    duplicate_pairs: tuple[int, ...]


def null_directions(layers: Sequence[tuple[Tensor, Tensor]], skips: Sequence[float], x: Tensor) -> NullCount:
    r"""The number of zero eigenvalues of the training-loss Hessian that dead and duplicated ReLU units
    create, from the weights and the data alone (no Hessian).

    The net: ``h_1 = relu(W_1 x + b_1)``, ``h_l = relu(W_l h_{l-1} + b_l) + s_l h_{l-1}`` (``skips[l-2] =
    s_l``, 0 plain, 1 residual), logits ``W_out h_depth + b_out``; ``layers`` = ``[(W_1, b_1), ...,
    (W_out, b_out)]``; ``x`` the training inputs.

    **Dead unit** (pre-activation ``< 0`` on every training input): the loss is locally constant in its
    ``fan_in`` incoming weights and its bias, so these ``fan_in + 1`` coordinate directions are exact null
    vectors of the Hessian at any point (not only at critical points).  If its output ``h`` is also
    identically zero -- a plain net, or a residual net's first layer -- the ``fan_out`` outgoing weights
    multiply zero and are null too: a dead unit of a plain net creates ``fan_in + 1 + fan_out`` null
    directions, a dead *branch* of a residual net (``h_l = 0 + h_{l-1}``, alive) only ``fan_in + 1``.
    Counted as the union over parameters: rows of dead units and columns of identically-zero inputs.

    **Duplicated pair** (two units of one layer with identical incoming weights and bias *and* identical
    outputs on the data -- so not in a residual layer, whose skip adds different stream components): with
    ``e = (v_i - v_j)/2`` (outgoing columns) and ``d = (w_i - w_j)/2`` (incoming rows with bias), the net
    depends on ``e`` only through ``relu'(w x)(d . x) e`` (ReLU: ``relu'' = 0``), so at ``d = 0`` the
    Hessian's ``e`` rows vanish except the block ``B = d^2 L / de dd`` (``fan_out x (fan_in + 1)``,
    ``B = 2 E[relu'(w x) r x^T]`` with ``r = dl/df`` the output residual).  The ``e`` directions in the
    kernel of ``B^T`` are null vectors: ``max(0, fan_out - (fan_in + 1))`` of them for a generic (full-rank)
    ``B``, each pair independently.  At a critical point of the pair (``B = 0``) all ``fan_out`` are.
    Not counted: the softmax shift invariance of a cross-entropy loss (``width + 1`` more null directions
    in the output layer: use a square loss), always-active units and other coincidences of the data.
    """
    if len(layers) < 2 or len(skips) != len(layers) - 2:
        raise ValueError(f"need >= 2 layers and len(skips) = len(layers) - 2, got {len(layers)} layers and "
                         f"{len(skips)} skips")
    h = x
    dead_total, dup_total = 0, 0
    dead_units, dup_pairs = [], []
    prev_zero = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device) if x.ndim == 2 else None
    for li, (w, b) in enumerate(layers):
        fan_out, fan_in = w.shape
        zero_in = (h == 0).all(0) if li > 0 else prev_zero
        null = torch.zeros(fan_out, fan_in + 1, dtype=torch.bool)
        null[:, :fan_in] |= zero_in.cpu()[None, :]
        if li == len(layers) - 1:
            dead_total += int(null.sum())
            break
        pre = h @ w.T + b
        dead = (pre < 0).all(0).cpu()
        null[dead, :] = True
        dead_total += int(null.sum())
        dead_units.append(int(dead.sum()))
        a = torch.relu(pre)
        h_new = a if li == 0 else a + float(skips[li - 1]) * h
        # duplicated pairs: identical incoming parameters and identical outputs (alive units only)
        wb = torch.cat([w, b[:, None]], 1)
        n_next = layers[li + 1][0].shape[0]
        pairs = 0
        for i in range(fan_out):
            for j in range(i + 1, fan_out):
                if dead[i] or dead[j]:
                    continue
                # equal outputs up to rounding: a matmul may round identical rows differently by column
                if torch.equal(wb[i], wb[j]) and torch.allclose(h_new[:, i], h_new[:, j], rtol=1e-12,
                                                                  atol=1e-12 * float(h_new.abs().max())):
                    pairs += 1
        dup_pairs.append(pairs)
        dup_total += pairs * max(0, n_next - (fan_in + 1))
        h = h_new
    return NullCount(dead_total + dup_total, dead_total, dup_total, tuple(dead_units), tuple(dup_pairs))
