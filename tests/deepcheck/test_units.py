"""Unit probes on hand-built layers and networks with known eliminated, duplicated and dependent units."""

import numpy as np
import pytest
import torch

from ghostsing.deepcheck.nets import BatchedMLP, MLPConfig
from ghostsing.deepcheck.probes.units import (
    ProbeConfig,
    ablation_contributions,
    dead_units,
    overlapping_pairs,
    probe_layer,
    probe_mlp,
    small_weight_units,
    spectrum_stats,
)


def test_dead_and_small_weight_units():
    g = torch.Generator().manual_seed(0)
    H = torch.rand(50, 6, generator=g, dtype=torch.float64) + 0.1
    H[:, [1, 4]] = 0.0
    H[3, 5] = 1e-9  # alive on one input only: not eliminated
    H[:, 5] = torch.where(torch.arange(50) == 3, H[:, 5], torch.zeros(50, dtype=torch.float64))
    assert dead_units(H)[0].tolist() == [False, True, False, False, True, False]
    assert dead_units(H, act_tol=1e-8)[0].tolist() == [False, True, False, False, True, True]
    W = torch.ones(6, 10, dtype=torch.float64)
    W[2] *= 1e-3  # norm 0.1 * 1e-3 / median ... below 1 %
    W[0] *= 0.02  # 2 % of the median: above the 1 % threshold
    assert small_weight_units(W, 0.01)[0].tolist() == [False, False, True, False, False, False]


def test_overlapping_pairs_count_exactly():
    g = torch.Generator().manual_seed(1)
    V = torch.randn(8, 40, generator=g, dtype=torch.float64)
    V[3] = 2.5 * V[0]  # same direction, other length: overlap
    V[5] = V[0] + 1e-6 * V[1]  # nearly the same: overlap with 0 and 3
    V[7] = -V[2]  # opposite: cosine -1, not an overlap
    V[6] = 0.0  # zero vector takes part in no pair
    n_pairs, in_pair = overlapping_pairs(V, 0.99)
    assert n_pairs.item() == 3  # (0,3), (0,5), (3,5)
    assert in_pair[0].nonzero().flatten().tolist() == [0, 3, 5]


def test_spectrum_of_dependent_units():
    g = torch.Generator().manual_seed(2)
    H = torch.randn(200, 7, generator=g, dtype=torch.float64)
    H[:, 4] = H[:, 0] + H[:, 1]  # linearly dependent
    H[:, 6] = 3 * H[:, 2] - H[:, 5]
    st = spectrum_stats(H, 1e-6)
    assert st["num_rank"].item() == 5
    assert st["small_sv_frac"].item() == pytest.approx(2 / 7)
    s = np.linalg.svd(H.numpy(), compute_uv=False)
    p = s / s.sum()
    assert st["erank"].item() == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    # equal singular values: erank = n exactly
    Q, _ = torch.linalg.qr(torch.randn(30, 4, generator=g, dtype=torch.float64))
    assert spectrum_stats(Q)["erank"].item() == pytest.approx(4.0, rel=1e-12)


def test_hand_built_network_gives_exact_counts():
    """A 2-layer, width-6 net: layer 1 has 1 dead unit, a duplicate pair and a dependent unit."""
    cfg = MLPConfig(depth=2, width=6, in_dim=4, n_classes=2)
    m = BatchedMLP(cfg, [0], dtype=torch.float64)
    W = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0],
                      [2.0, 0, 0, 0],  # duplicate of unit 0 (cosine 1)
                      [0, 0, 0, 0]], dtype=torch.float64)  # eliminated: zero weights
    b = torch.tensor([0, 0, 0, 0, 0, -1.0], dtype=torch.float64)
    x = torch.rand(100, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)  # positive inputs
    with torch.no_grad():
        m.w_in[0] = W
        m.b_in[0] = b
    cfg_p = ProbeConfig(cos_threshold=0.999, rank_rel_tol=1e-9)
    res = probe_mlp(m, x, cfg_p)
    assert res["dead_frac"].shape == (1, 2)
    assert res["dead_frac"][0, 0] == pytest.approx(1 / 6)
    assert res["small_weight_frac"][0, 0] == pytest.approx(1 / 6)
    assert res["overlap_w_pairs"][0, 0] == 1 and res["overlap_act_pairs"][0, 0] == 1
    assert res["overlap_w_frac"][0, 0] == pytest.approx(2 / 6)
    assert res["num_rank"][0, 0] == 4  # units 4 = 2 * unit 0 and the dead unit 5 add no rank
    assert res["small_sv_frac"][0, 0] == pytest.approx(2 / 6)
    one = probe_layer(torch.relu(x @ W.T + b), W, cfg_p)
    for k in one:
        np.testing.assert_allclose(one[k][0], res[k][0, 0])


def test_probe_config_validation():
    with pytest.raises(ValueError, match="cos_threshold=1.5"):
        ProbeConfig(cos_threshold=1.5)
    with pytest.raises(ValueError, match="weight_frac=0"):
        ProbeConfig(weight_frac=0)


def test_dead_relu_branch_versus_live_skip_output():
    """Residual net: a ReLU unit of layer 2 that never fires is a dead ReLU, but its output lives on."""
    cfg = MLPConfig(depth=2, width=4, in_dim=4, n_classes=2, skip="identity")
    m = BatchedMLP(cfg, [0], dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    with torch.no_grad():
        m.w_in[0], m.b_in[0] = eye, torch.zeros(4, dtype=torch.float64)
        m.w_hid[0, 0] = eye
        m.b_hid[0, 0] = torch.tensor([0, 0, -10.0, 0], dtype=torch.float64)  # unit 2 of layer 2 never fires
    x = torch.rand(50, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    res = probe_mlp(m, x)
    assert res["dead_relu_frac"][0].tolist() == [0.0, 0.25]
    assert res["dead_frac"][0].tolist() == [0.0, 0.0]
    # the same weights without the skip: the unit's output is dead too
    p = BatchedMLP(MLPConfig(2, 4, 4, 2, skip="none"), [0], dtype=torch.float64)
    state = {k: v for k, v in m.state_dict().items() if k != "skip_diag"}
    p.load_state_dict(state | {"skip_diag": p.skip_diag})
    res = probe_mlp(p, x)
    assert res["dead_frac"][0].tolist() == [0.0, 0.25] and res["dead_relu_frac"][0].tolist() == [0.0, 0.25]


def _hand_net(skip: str, seed: int = 0) -> BatchedMLP:
    """Depth-3, width-6 net (float64) with: unit 1 of layer 1 dead (bias -100), unit 2 of layer 2 a
    duplicate of unit 0 of layer 2, unit 4 of layer 2 alive but with zero outgoing weights."""
    cfg = MLPConfig(depth=3, width=6, in_dim=5, n_classes=3, init="scaled")
    m = BatchedMLP(cfg, [seed], [skip], dtype=torch.float64)
    with torch.no_grad():
        m.b_in[0, 1] = -100.0                      # dead in layer 1: relu(W x - 100) = 0
        m.w_hid[0, 0, 2] = m.w_hid[0, 0, 0]        # layer 2: unit 2 duplicates unit 0 (weights and output)
        m.b_hid[0, 0, 2] = m.b_hid[0, 0, 0]
        m.b_hid[0, 0, 4] = 10.0                    # layer 2, unit 4: always active ...
        m.w_hid[0, 1, :, 4] = 0.0                  # ... but layer 3 does not read it
        m.w_out[0, :, 4] = 0.0                     # with a skip the stream carries h_2[4] to the output
    return m


def test_ablation_finds_dead_zero_weight_and_keeps_duplicates_plain():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    m = _hand_net("none")
    c = ablation_contributions(m, x)
    assert c[0][0, 1].item() == 0.0                 # dead unit: no contribution
    assert c[1][0, 4].item() == 0.0                 # active, zero outgoing weights: eliminated too
    assert c[1][0, 0].item() > 1e-3 and c[1][0, 2].item() > 1e-3   # a duplicate is not eliminated
    # exact against removing the unit by hand
    m2 = _hand_net("none")
    with torch.no_grad():
        m2.w_hid[0, 0, :, 3] = 0.0                  # layer 2 no longer reads unit 3 of layer 1
        f, f2 = m(x), m2(x)
    ref = torch.linalg.vector_norm(f2 - f) / torch.linalg.vector_norm(f)
    assert c[0][0, 3].item() == pytest.approx(ref.item(), rel=1e-10)
    res = probe_mlp(m, x, ProbeConfig(n_ablate=40))
    assert res["elim_frac"][0, 0] == pytest.approx(1 / 6) and res["elim_frac"][0, 1] >= 1 / 6
    assert res["overlap_both_frac"][0, 1] == pytest.approx(2 / 6)   # units 0 and 2 of layer 2
    assert res["smin_unit"][0, 1] < 1e-12                              # duplicated column: dependent


def test_residual_dead_branch_is_eliminated_although_the_stream_is_nonnegative():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    m = _hand_net("identity")
    with torch.no_grad():
        m.b_hid[0, 1, 5] = -100.0                   # layer 3, unit 5: dead branch
        m.w_out[0, :, 5] = 1.0
    res = probe_mlp(m, x, ProbeConfig(n_ablate=40))
    # the stream h_3 = a_3 + h_2 is non-negative and alive: the old measure sees no dead unit
    assert res["dead_frac"][0, 2] == 0.0
    assert res["dead_relu_frac"][0, 2] >= 1 / 6
    c = ablation_contributions(m, x)
    assert c[2][0, 5].item() == 0.0
    assert res["elim_frac"][0, 2] >= 1 / 6
    # h_l = a_l + h_{l-1} >= h_{l-1}: a stream unit is dead only if it is dead in every earlier layer
    torch.manual_seed(0)
    for _ in range(3):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
        assert probe_mlp(m, x, ProbeConfig(n_ablate=0))["dead_frac"][0, 1:].max() == 0.0


def test_ablation_hyper_and_batched_match_single_nets():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 7, generator=g, dtype=torch.float64)
    cfg = MLPConfig(depth=4, width=6, in_dim=7, n_classes=3, init="scaled")
    for skips in (["none", "identity", "lowrank:3"], ["hyper", "hyper"], ["orthogonal"]):
        seeds = list(range(len(skips)))
        m = BatchedMLP(cfg, seeds, skips, dtype=torch.float64)
        c = ablation_contributions(m, x, max_elems=500)   # small chunks
        for s, sk in enumerate(skips):
            one = BatchedMLP(cfg, [seeds[s]], [sk], dtype=torch.float64)
            c1 = ablation_contributions(one, x)
            for layer in range(4):
                torch.testing.assert_close(c[layer][s], c1[layer][0], rtol=1e-10, atol=1e-12)
        # brute force for one unit of layer 2: zero its ReLU output by a forward hook on the branch
        s, layer, unit = 0, 1, 2
        one = BatchedMLP(cfg, [seeds[s]], [skips[s]], dtype=torch.float64)
        f, hs, br = one(x, return_hidden=True, return_branches=True)
        with torch.no_grad():
            one.b_hid[0, layer - 1, unit] = -1e9     # kill a_{2,unit} on every input
        f2 = one(x)
        ref = (torch.linalg.vector_norm(f2 - f) / torch.linalg.vector_norm(f)).item()
        assert c[layer][s, unit].item() == pytest.approx(ref, rel=1e-9)
