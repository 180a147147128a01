"""Exact Hessian trace / diagonal of piecewise-linear nets against the dense float64 Hessian
(``hessian.exact_hessian``, autograd double backward) and, for the negative control, against a Gauss-Newton
matrix assembled from per-sample Jacobians (``torch.func.jacrev``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ghostsing.deepcheck import cnns, nets
from ghostsing.deepcheck.probes import hessian as hs
from ghostsing.deepcheck.probes import pl_trace as pl

F64 = torch.float64
CE = torch.nn.functional.cross_entropy


def _half_sse(z, y):  # written out here, independently of pl_trace._LOSS_FNS
    return 0.5 * ((z - y) ** 2).sum() / z.shape[0]


def _seq_mlp(seed: int, widths=(5, 12, 12, 3), act=nn.ReLU) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=False):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1]).to(F64)


def _conv_net(seed: int) -> nn.Module:
    """conv - batch norm (eval, non-trivial running stats) - ReLU - maxpool - residual block - dilated conv -
    avg pool - dropout - linear: P = 306."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        cnns._ResBlock(3), nn.Conv2d(3, 4, 2, dilation=2, padding="valid"), nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.3), nn.Linear(4, 3),
    ).to(F64)
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        bn.running_var.copy_(torch.tensor([0.5, 1.5, 2.0]))
        bn.weight.copy_(torch.tensor([1.2, 0.7, -0.9]))
        bn.bias.copy_(torch.tensor([0.05, 0.1, -0.1]))
    return net


def _data(n: int, shape, c: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, dtype=F64, generator=g), torch.randint(0, c, (n,), generator=g)


def _dense(model, loss_fn, x, y):
    fl = hs.flat_loss(model, loss_fn, x, y)
    return hs.exact_hessian(fl.hessian(), chunk=512)


def _assert_trace_and_diag(model, x, y, loss, loss_fn, methods):
    h = _dense(model, loss_fn, x, y)
    tr_h, diag_h = float(torch.trace(h)), torch.diagonal(h)
    assert tr_h > 0
    for method in methods:
        tr = pl.exact_trace_piecewise_linear(model, x, y, loss, method=method)
        np.testing.assert_allclose(tr, tr_h, rtol=1e-10)
        d = pl.hessian_diagonal_piecewise_linear(model, x, y, loss, method=method)
        assert d.shape == (h.shape[0],)
        np.testing.assert_allclose(d.numpy(), diag_h.numpy(), rtol=1e-9,
                                   atol=1e-13 * float(diag_h.abs().max()))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "half_sse"])
def test_plain_relu_mlp_trace_and_diagonal_equal_dense_hessian(loss):
    net = _seq_mlp(0)
    x, y = _data(60, (5,), 3, 0)
    loss_fn = {"cross_entropy": CE, "mse": torch.nn.functional.mse_loss, "half_sse": _half_sse}[loss]
    if loss != "cross_entropy":
        y = torch.randn(60, 3, dtype=F64, generator=torch.Generator().manual_seed(9))
    _assert_trace_and_diag(net, x, y, loss, loss_fn, ["func", "layers", "auto"])


@pytest.mark.parametrize("skip", ["identity", "hyper", "orthogonal", "scaled:0.5"])
def test_residual_mlp_from_nets_trace_and_diagonal(skip):
    cfg = nets.MLPConfig(depth=3, width=8, in_dim=6, n_classes=4, skip=skip, init="scaled")
    net = nets.MLP(cfg, seed=2, dtype=F64)
    x, y = _data(50, (6,), 4, 1)
    _assert_trace_and_diag(net, x, y, "cross_entropy", CE, ["func", "layers"])


def test_conv_net_with_eval_batchnorm_dropout_and_resblock():
    net = _conv_net(0)
    net.train()  # the probe evaluates in eval mode and must restore the training flag
    x, y = _data(24, (2, 8, 8), 3, 2)
    _assert_trace_and_diag(net, x, y, "cross_entropy", CE, ["func", "layers", "auto"])
    assert net.training


def test_conv1d_net_with_stride_dilation_and_batchnorm1d():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv1d(3, 4, 2, dilation=2),
                        nn.BatchNorm1d(4), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(8, 3)).to(F64)
    with torch.no_grad():
        net[3].running_var.copy_(torch.tensor([0.5, 2.0, 1.0, 3.0]))
        net[3].running_mean.copy_(torch.tensor([0.1, 0.0, -0.3, 0.2]))
    x, y = _data(30, (2, 12), 3, 3)
    _assert_trace_and_diag(net, x, y, "cross_entropy", CE, ["func", "layers"])


def test_same_padding_conv_and_unused_layer_fall_back_to_per_sample_vjps():
    """Layers the per-layer path does not handle ('same' padding; a layer never applied): 'auto' uses the
    torch.func path and is still exact, 'layers' refuses."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding="same"), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)).to(F64)
    x, y = _data(16, (2, 4, 4), 3, 4)
    tr_h = float(torch.trace(_dense(net, CE, x, y)))
    np.testing.assert_allclose(pl.exact_trace_piecewise_linear(net, x, y), tr_h, rtol=1e-10)
    with pytest.raises(ValueError, match="method='layers' needs every trainable parameter"):
        pl.exact_trace_piecewise_linear(net, x, y, method="layers")

    class Unused(nn.Module):  # check=False: the caller asserts piecewise linearity
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 3), nn.Linear(5, 3)

        def forward(self, x):
            return self.a(torch.relu(x))

    m = Unused().to(F64)
    x5, y5 = _data(20, (5,), 3, 5)
    h = _dense(m, CE, x5, y5)
    d = pl.hessian_diagonal_piecewise_linear(m, x5, y5, check=False)
    np.testing.assert_allclose(d.numpy(), torch.diagonal(h).numpy(), rtol=1e-9, atol=1e-15)
    assert float(d[-18:].abs().max()) == 0.0  # b's 18 parameters do not enter the loss
    with pytest.raises(ValueError, match="exactly once"):
        pl.exact_trace_piecewise_linear(m, x5, y5, check=False, method="layers")


def test_soft_targets_and_index_targets_share_the_trace():
    """The output Hessian of cross-entropy does not depend on the targets: probability targets give the
    same tr H (dense Hessian of torch's soft-target cross-entropy)."""
    net = _seq_mlp(3)
    x, y = _data(40, (5,), 3, 3)
    soft = torch.softmax(torch.randn(40, 3, dtype=F64, generator=torch.Generator().manual_seed(1)), 1)
    tr_h = float(torch.trace(_dense(net, CE, x, soft)))
    np.testing.assert_allclose(pl.exact_trace_piecewise_linear(net, x, soft), tr_h, rtol=1e-10)
    np.testing.assert_allclose(pl.exact_trace_piecewise_linear(net, x, y), tr_h, rtol=1e-10)


def test_linear_applied_to_sequences():
    """A Linear on (N, T, features) inputs sums T outer products per sample, so ||g a^T||^2 = ||g||^2 ||a||^2
    no longer holds per sample; the per-layer path forms sum_t g_t a_t^T (diagonal) or uses the Gram
    identity (trace)."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Flatten(), nn.Linear(10, 3)).to(F64)
    x, y = _data(30, (2, 3), 3, 4)
    _assert_trace_and_diag(net, x, y, "cross_entropy", CE, ["func", "layers"])


@pytest.mark.parametrize("method", ["func", "layers"])
def test_chunking_dtype_and_frozen_parameters(method):
    net = _seq_mlp(5)
    x, y = _data(37, (5,), 3, 5)
    ref = pl.exact_trace_piecewise_linear(net, x, y, method=method)
    np.testing.assert_allclose(pl.exact_trace_piecewise_linear(net, x, y, method=method, chunk=6), ref,
                               rtol=1e-12)
    net32 = _seq_mlp(5).float()
    tr32 = pl.exact_trace_piecewise_linear(net32, x.float(), y, method=method, dtype=F64)
    np.testing.assert_allclose(tr32, ref, rtol=1e-6)  # float32 weights, evaluated in float64
    net[0].weight.requires_grad_(False)  # frozen: Hessian over the remaining parameters only
    tr_h = float(torch.trace(_dense(net, CE, x, y)))
    np.testing.assert_allclose(pl.exact_trace_piecewise_linear(net, x, y, method=method), tr_h, rtol=1e-10)
    assert tr_h < ref


def _ggn_trace_from_jacobians(net, x):
    """tr G = (1/N) sum_n tr(J_n^T Lambda_n J_n), J_n by torch.func.jacrev, Lambda_n = diag p - pp^T."""
    fl = hs.flat_loss(net, lambda z, y: z, x, x)  # fn(theta) = outputs (N, C)
    jac = torch.func.jacrev(fl.fn)(fl.theta)  # (N, C, P)
    p = torch.softmax(fl.fn(fl.theta), 1)
    lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    return float(torch.einsum("ncp,ncd,ndp->", jac, lam, jac)) / x.shape[0]


def test_negative_control_tanh_is_refused_and_ggn_differs_from_hessian():
    net = _seq_mlp(6, act=nn.Tanh)
    x, y = _data(40, (5,), 3, 6)
    with pytest.raises(ValueError, match="Tanh") as err:
        pl.exact_trace_piecewise_linear(net, x, y)
    assert "check=False" in str(err.value)
    assert not pl.is_piecewise_linear(net)
    tr_g = pl.exact_trace_piecewise_linear(net, x, y, check=False)
    np.testing.assert_allclose(tr_g, _ggn_trace_from_jacobians(net, x), rtol=1e-10)
    tr_h = float(torch.trace(_dense(net, CE, x, y)))
    assert abs(tr_g - tr_h) > 1e-3 * abs(tr_h), (tr_g, tr_h)  # the identity is not vacuous
    # the same independent GGN equals tr H on the ReLU net
    relu = _seq_mlp(6)
    np.testing.assert_allclose(_ggn_trace_from_jacobians(relu, x),
                               float(torch.trace(_dense(relu, CE, x, y))), rtol=1e-10)


def test_hessian_trace_convenience_routes():
    net = _seq_mlp(7)
    x, y = _data(40, (5,), 3, 7)
    tr_h = float(torch.trace(_dense(net, CE, x, y)))
    est = pl.hessian_trace(net, x, y)
    assert est.stderr == 0.0
    np.testing.assert_allclose(est.mean, tr_h, rtol=1e-10)
    tanh = _seq_mlp(7, act=nn.Tanh)
    tr_tanh = float(torch.trace(_dense(tanh, CE, x, y)))
    auto = pl.hessian_trace(tanh, x, y, n_probes=60, seed=1)  # not piecewise linear: XTrace or Hutchinson
    assert auto.stderr > 0 and auto.method in ("xtrace", "hutchinson")
    assert abs(auto.mean - tr_tanh) < 5 * auto.stderr + 1e-9
    hut = pl.hessian_trace(net, x, y, method="hutchinson", n_probes=200, seed=2)
    assert abs(hut.mean - tr_h) < 4 * hut.stderr
    with pytest.raises(ValueError, match="method"):
        pl.hessian_trace(net, x, y, method="exact")


def test_allow_list_accepts_the_report_nets_and_names_offenders():
    assert pl.is_piecewise_linear(cnns.parker_hoang_cnn())
    assert pl.is_piecewise_linear(cnns.parker_hoang_resnet())
    assert pl.is_piecewise_linear(nets.MLP(nets.MLPConfig(3, 4, in_dim=3, skip="hyper")))
    # dropout (p > 0) and batch norm are fine only in eval mode
    assert not pl.is_piecewise_linear(cnns.parker_hoang_cnn(), eval_mode=False)
    assert pl.is_piecewise_linear(cnns.parker_hoang_cnn(dropout=0.0), eval_mode=False)
    bad = pl.piecewise_linear_violations(_conv_net(0), eval_mode=False)
    assert any("BatchNorm2d" in b and "training mode" in b for b in bad)
    assert any("Dropout" in b for b in bad)
    # weight tying: one Linear applied twice, or one Parameter in two modules
    lin = nn.Linear(4, 4)
    twice = pl.piecewise_linear_violations(nn.Sequential(lin, nn.ReLU(), lin))
    assert any("applied twice" in b for b in twice)
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    assert any("weight tying" in v for v in pl.piecewise_linear_violations(nn.Sequential(a, nn.ReLU(), b)))

    class Gate(nn.Module):  # a module with its own non-linear forward is refused
        def forward(self, x):
            return x * x

    class MySeq(nn.Sequential):  # inherits Sequential's forward: certified structurally (torch.fx)
        pass

    assert pl.is_piecewise_linear(MySeq(nn.Linear(3, 3), nn.ReLU()))

    class SquareSeq(nn.Sequential):  # overrides forward with a product of two activations: refused
        def forward(self, x):
            h = self[0](x)
            return h * h

    for model, name in [(nn.Sequential(nn.Linear(3, 3), Gate()), "Gate"),
                        (SquareSeq(nn.Linear(3, 3)), "SquareSeq"),
                        (nn.Sequential(nn.Linear(3, 3), nn.GELU()), "GELU"),
                        (nets.BatchedMLP(nets.MLPConfig(2, 3, in_dim=3), [0, 1]), "BatchedMLP")]:
        with pytest.raises(ValueError, match=name):
            pl.exact_trace_piecewise_linear(model, torch.zeros(2, 3))


def test_bad_inputs_give_clear_errors():
    net = _seq_mlp(8)
    x, y = _data(10, (5,), 3, 8)
    with pytest.raises(ValueError, match="loss must be one of"):
        pl.exact_trace_piecewise_linear(net, x, y, "hinge")
    with pytest.raises(ValueError, match="method must be one of"):
        pl.exact_trace_piecewise_linear(net, x, y, method="fast")
    with pytest.raises(ValueError, match="chunk"):
        pl.exact_trace_piecewise_linear(net, x, y, chunk=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        pl.exact_trace_piecewise_linear(net, x, torch.full((10,), 3))
    with pytest.raises(ValueError, match="leading batch axis of length 10"):
        pl.exact_trace_piecewise_linear(net, x, y[:4])
    with pytest.raises(ValueError, match="probability targets"):
        pl.exact_trace_piecewise_linear(net, x, torch.rand(10, 4, dtype=F64))
    with pytest.raises(ValueError, match="mse targets"):
        pl.exact_trace_piecewise_linear(net, x, torch.zeros(10, 5, dtype=F64), "mse")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        pl.exact_trace_piecewise_linear(lambda t: t, x, y)
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor"):
        pl.exact_trace_piecewise_linear(net, x.numpy(), y)
    with pytest.raises(TypeError, match="dtype"):
        pl.exact_trace_piecewise_linear(net, x, y, dtype=torch.int64)
    with pytest.raises(ValueError, match="no trainable parameters"):
        pl.exact_trace_piecewise_linear(nn.Sequential(nn.ReLU()), x, y)
    seg = nn.Sequential(nn.Conv1d(2, 3, 1)).to(F64)  # (N, C, L) logits: not supported
    for method in ("layers", "func"):
        with pytest.raises(ValueError, match=r"shape \(N, C\)"):
            pl.exact_trace_piecewise_linear(seg, torch.zeros(4, 2, 5, dtype=F64), method=method)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        pl.output_hessian_factor(torch.zeros(3), "cross_entropy")


def test_output_hessian_factor_squares_to_the_loss_hessian():
    """S_n S_n^T equals torch.func.hessian of the per-sample loss in z (cross-entropy, mse, half_sse)."""
    z = torch.randn(4, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    y = torch.randn(4, 5, dtype=F64, generator=torch.Generator().manual_seed(1))
    refs = {
        "cross_entropy": lambda zn, n: -torch.log_softmax(zn, 0)[2],
        "mse": lambda zn, n: ((zn - y[n]) ** 2).mean(),  # torch's mean over D outputs, times N / N
        "half_sse": lambda zn, n: 0.5 * ((zn - y[n]) ** 2).sum(),
    }
    for loss, ell in refs.items():
        s = pl.output_hessian_factor(z, loss)
        for n in range(4):
            want = torch.func.hessian(lambda zn, n=n, ell=ell: ell(zn, n))(z[n])
            np.testing.assert_allclose((s[n] @ s[n].T).numpy(), want.numpy(), atol=1e-14)


def test_hvp_plan_avoids_vmap_over_convolutions_and_stochastic_routes_stay_exact_in_mean():
    """Nets with a convolution get one double backward per probe (vmap has no batching rule for
    convolution_backward); MLPs the vmap-batched jvp. The conv route's Hutch++ and Hutchinson estimates
    agree with the dense Hessian's trace within their standard errors, and the Hutchinson samples do
    not depend on the block size (each probe is drawn on its own)."""
    assert pl.hvp_plan(_seq_mlp(3)) == ("jvp", 32)
    conv = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 16, 3))
    assert pl.hvp_plan(conv) == ("double_backward", 1)
    x, y = _data(24, (2, 4, 4), 3, 5)
    x, conv = x.double(), conv.double()
    tr_h = float(torch.trace(_dense(conv, CE, x, y)))
    hpp = pl.hessian_trace(conv, x, y, method="hutchpp", n_probes=60, seed=3)
    assert abs(hpp.mean - tr_h) < 5 * hpp.stderr + 1e-9
    one = pl.hessian_trace(conv, x, y, method="hutchinson", n_probes=40, seed=4)
    blocks = pl.hessian_trace(conv, x, y, method="hutchinson", n_probes=40, seed=4, batch=16)
    np.testing.assert_allclose(one.samples, blocks.samples, rtol=1e-10, atol=1e-12)
    assert abs(one.mean - tr_h) < 4 * one.stderr
