"""Network shapes and parameter counts (against the Keras summaries of the 2022 report), skip algebra."""

import numpy as np
import pytest
import torch

from ghostsing.deepcheck.cnns import BatchedModule, parker_hoang_cnn, parker_hoang_resnet
from ghostsing.deepcheck.nets import (
    MLP,
    BatchedMLP,
    MLPConfig,
    count_params,
    parse_skip,
)


def _shapes(net, x):
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape[1:]))))
             for m in net if not isinstance(m, torch.nn.ReLU)]
    net(x)
    for h in hooks:
        h.remove()
    return shapes


def test_parker_hoang_cnn_matches_keras_summary():
    net = parker_hoang_cnn()
    assert count_params(net) == 418_794
    # per-layer parameter counts of the Keras summary, in order
    convs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [sum(p.numel() for p in m.parameters()) for m in convs] == [
        896, 9248, 18496, 36928, 73856, 147584, 131136, 650]
    s = _shapes(net, torch.zeros(2, 3, 32, 32))
    assert [sh for name, sh in s if name == "MaxPool2d"] == [(32, 16, 16), (64, 8, 8), (128, 4, 4)]
    assert s[-1] == ("Dropout", (10,))


def test_parker_hoang_resnet_matches_keras_summary():
    net = parker_hoang_resnet()
    assert count_params(net) == 223_242
    s = dict(enumerate(_shapes(net, torch.zeros(2, 3, 32, 32))))
    names = [v for _, v in sorted(s.items())]
    assert names[0] == ("Conv2d", (32, 30, 30)) and names[1] == ("Conv2d", (64, 28, 28))
    assert names[2] == ("MaxPool2d", (64, 9, 9))
    assert names[3] == ("_ResBlock", (64, 9, 9)) and names[4] == ("_ResBlock", (64, 9, 9))
    assert names[5] == ("Conv2d", (64, 7, 7))
    assert ("Linear", (256,)) in names and names[-1] == ("Linear", (10,))
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [count_params(m) for m in lin] == [16640, 2570]


def test_resblock_is_identity_plus_branch():
    net = parker_hoang_resnet()
    block = net[5]
    x = torch.randn(1, 64, 9, 9)
    with torch.no_grad():
        for c in (block.conv1, block.conv2):
            c.weight.zero_()
            c.bias.zero_()
    torch.testing.assert_close(block(x), x)


def test_batched_cnn_copies_match_seeded_single_nets():
    model = BatchedModule(parker_hoang_resnet, [4, 9]).eval()
    x = torch.randn(2, 3, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 3, 10)
    for j, s in enumerate([4, 9]):
        torch.manual_seed(s)
        ref = parker_hoang_resnet().eval()
        torch.testing.assert_close(out[j], ref(x[j]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("depth,width,inp,c", [(1, 5, 7, 3), (30, 128, 3072, 10), (4, 16, 3072, 100)])
def test_mlp_parameter_count(depth, width, inp, c):
    cfg = MLPConfig(depth, width, inp, c)
    assert count_params(MLP(cfg)) == cfg.n_params
    assert count_params(BatchedMLP(cfg, [0, 1, 2])) == 3 * cfg.n_params
    if (depth, width) == (30, 128):
        assert cfg.n_params == 3072 * 128 + 128 + 29 * (128 * 128 + 128) + 128 * 10 + 10 == 873_482


def test_skip_algebra():
    """lowrank:width == identity == scaled:1, lowrank:0 == none == scaled:0; hyper at depth 2 == identity."""
    x = torch.randn(5, 6, 12, dtype=torch.float64)

    def out(skip, depth=4):
        cfg = MLPConfig(depth, 6, 12, 3)
        return BatchedMLP(cfg, [0, 1, 2, 3, 4], [skip] * 5, dtype=torch.float64)(x)

    torch.testing.assert_close(out("lowrank:6"), out("identity"))
    torch.testing.assert_close(out("scaled:1"), out("identity"))
    torch.testing.assert_close(out("lowrank:0"), out("none"))
    torch.testing.assert_close(out("hyper", 2), out("identity", 2))
    assert not torch.allclose(out("hyper", 4), out("identity", 4))
    assert not torch.allclose(out("lowrank:3"), out("identity"))


def test_hand_computed_forward():
    """Depth-3 residual and hyper nets against the equations written out by hand."""
    cfg = MLPConfig(3, 4, 5, 2)
    m = MLP(MLPConfig(3, 4, 5, 2, "hyper"))
    r = MLP(cfg.__class__(3, 4, 5, 2, "identity"))
    x = torch.randn(7, 5)
    L = m.linears
    h1 = torch.relu(L[0](x))
    h2 = torch.relu(L[1](h1)) + h1
    h3 = torch.relu(L[2](h2)) + (h1 + h2) / 2
    torch.testing.assert_close(m(x), L[3](h3))
    L = r.linears
    h1 = torch.relu(L[0](x))
    h2 = torch.relu(L[1](h1)) + h1
    h3 = torch.relu(L[2](h2)) + h2
    torch.testing.assert_close(r(x), L[3](h3))


def test_orthogonal_skips_are_orthogonal_and_seeded():
    m = BatchedMLP(MLPConfig(4, 8, 3, 2, "orthogonal"), [0, 1], dtype=torch.float64)
    q = m.skip_q
    eye = torch.eye(8, dtype=torch.float64).expand_as(q)
    torch.testing.assert_close(q @ q.transpose(-1, -2), eye, atol=1e-6, rtol=0)
    assert not torch.allclose(q[0], q[1])
    torch.testing.assert_close(q[1], BatchedMLP(MLPConfig(4, 8, 3, 2, "orthogonal"), [1]).skip_q[0].double())


def test_init_is_pytorch_default_uniform():
    w = MLP(MLPConfig(1, 2000, 50, 2)).linears[0].weight.detach().numpy()
    bound = 1 / np.sqrt(50)
    assert w.min() >= -bound and w.max() <= bound
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.02)  # Var U(-b, b) = b^2/3


@pytest.mark.parametrize("bad", ["lowrank", "lowrank:-1", "scaled:nan", "resid", "lowrank:x", "scaled:"])
def test_bad_skip_strings(bad):
    with pytest.raises(ValueError, match="is not one of none, identity, hyper"):
        parse_skip(bad)


def test_bad_configs():
    with pytest.raises(ValueError, match="MLPConfig.depth=0"):
        MLPConfig(0, 4)
    with pytest.raises(ValueError, match="lowrank:9 needs k <= width=8"):
        BatchedMLP(MLPConfig(2, 8, 3, 2), [0], ["lowrank:9"])
    with pytest.raises(ValueError, match="cannot batch skips"):
        BatchedMLP(MLPConfig(2, 8, 3, 2), [0, 1], ["hyper", "identity"])
    with pytest.raises(TypeError, match="skip must be a string"):
        parse_skip(3)


def test_scaled_init_keeps_the_forward_signal_order_one():
    """Monte Carlo: with init='scaled' the last hidden layer's mean square stays O(1) at depth 30
    (plain: He keeps it ~ the first layer's; skips: bounded growth), unlike the 'torch' default."""
    x = torch.randn(1000, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def ms(skip, init):
        m = BatchedMLP(MLPConfig(30, 128, 256, 10, init=init), [0, 1], [skip] * 2, dtype=torch.float64)
        with torch.no_grad():
            _, hs = m(x, return_hidden=True)
        return (hs[-1] ** 2).mean().item() / (hs[0] ** 2).mean().item()

    assert 0.2 < ms("none", "scaled") < 5
    assert 1 < ms("identity", "scaled") < 2 * np.e
    assert 1 < ms("hyper", "scaled") < 2 * np.e
    assert ms("identity", "torch") > 1e4 and ms("none", "torch") < 0.05
    w = MLP(MLPConfig(5, 400, 400, 3, "identity", init="scaled")).linears
    np.testing.assert_allclose(w[2].weight.var().item(), 2 / 400 / 16, rtol=0.02)  # He / (depth-1)^2
    np.testing.assert_allclose(w[0].weight.var().item(), 2 / 400, rtol=0.02)


def test_resnet_without_additions_has_the_same_parameters_and_init():
    from ghostsing.deepcheck.cnns import parker_hoang_resnet_noskip

    torch.manual_seed(3)
    a = parker_hoang_resnet()
    torch.manual_seed(3)
    b = parker_hoang_resnet_noskip()
    assert count_params(b) == count_params(a) == 223_242
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    x = torch.randn(1, 64, 9, 9)
    with torch.no_grad():
        for c in (b[5].conv1, b[5].conv2):
            c.weight.zero_()
            c.bias.zero_()
    assert torch.equal(b[5](x), torch.zeros_like(x)) and not b[5].skip and a[5].skip


def test_looks_linear_init_is_an_orthogonal_linear_map_at_init():
    from ghostsing.deepcheck.probes.units import spectrum_stats

    cfg = MLPConfig(depth=12, width=16, in_dim=24, n_classes=8, init="looks-linear")
    net = BatchedMLP(cfg, [0, 1], ["none", "none"], dtype=torch.float64)
    x = torch.randn(50, 24, dtype=torch.float64)
    f, hs = net(x, return_hidden=True)
    torch.testing.assert_close(net(-x), -f)            # linear: f(-x) = -f(x) (zero biases)
    torch.testing.assert_close(net(2 * x), 2 * f)
    # the map x -> logits has orthonormal rows (Q_out Q_L ... Q_1 restricted to the first 8 directions)
    J = net(torch.eye(24, dtype=torch.float64))[0]     # (24, 8): rows are images of the basis vectors
    torch.testing.assert_close(J.T @ J, torch.eye(8, dtype=torch.float64))
    # no rank collapse with depth: the units' effective rank stays that of the first layer
    er = [spectrum_stats(h)["erank"][0].item() for h in hs]
    assert min(er) > 0.95 * er[0]
    # the He-normal plain net collapses (the review's finding); orthogonal/he/sqrt-scaled init exist
    he = BatchedMLP(MLPConfig(depth=12, width=16, in_dim=24, n_classes=8, init="scaled"), [0], ["none"],
                    dtype=torch.float64)
    _, hs_he = he(x, return_hidden=True)
    assert spectrum_stats(hs_he[-1])["erank"][0].item() < 0.8 * spectrum_stats(hs_he[0])["erank"][0].item()
    for init in ("orthogonal", "he", "sqrt-scaled"):
        BatchedMLP(MLPConfig(depth=3, width=6, in_dim=5, init=init), [0], ["identity"])
    with pytest.raises(ValueError, match="even width"):
        BatchedMLP(MLPConfig(depth=3, width=5, in_dim=4, init="looks-linear"), [0], ["none"])
