"""Batched training equals separate plain-PyTorch runs; divergence is per network; resume is exact."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghostsing.deepcheck.nets import MLP, BatchedMLP, MLPConfig
from ghostsing.deepcheck.training import TrainConfig, epoch_permutation, make_optimizer, train


def _data(n=96, d=20, c=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(d, c, generator=g, dtype=dtype)
    y = (x @ w).argmax(1)
    return x[:64], y[:64], x[64:], y[64:]


def _separate(cfg_net, seed, tcfg, x, y):
    """Reference: one nn.Linear MLP, its own optimiser, plain loop over the same mini-batches."""
    net = MLP(cfg_net, seed, dtype=torch.float64)
    opt = make_optimizer(net.parameters(), tcfg)
    losses = []
    n = len(x)
    for epoch in range(1, tcfg.epochs + 1):
        order = epoch_permutation(seed, epoch, n) if tcfg.batch_size else torch.arange(n)
        bs = tcfg.batch_size or n
        tot = 0.0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        losses.append(tot / n)
    return np.array(losses), net


@pytest.mark.parametrize(
    ("skip", "opt", "bs"),
    [("identity", "adam", 16), ("none", "sgd", None), ("hyper", "rmsprop", 20), ("orthogonal", "adam", 32)],
)
def test_batched_equals_separate(skip, opt, bs):
    x, y, xt, yt = _data()
    cfg = MLPConfig(depth=4, width=8, in_dim=20, n_classes=4, skip=skip)
    tcfg = TrainConfig(optimizer=opt, lr=0.01 if opt != "sgd" else 0.2, epochs=3, batch_size=bs, momentum=0.0)
    seeds = [3, 5, 11]
    model = BatchedMLP(cfg, seeds, dtype=torch.float64)
    res = train(model, x, y, xt, yt, tcfg, progress=False)
    for j, s in enumerate(seeds):
        ref_losses, net = _separate(cfg, s, tcfg, x, y)
        np.testing.assert_allclose(res.history["train_loss"][1:, j], ref_losses, rtol=1e-10, atol=1e-12)
        got = model.extract(j)
        for p_ref, p_got in zip(net.parameters(), got.parameters(), strict=True):
            torch.testing.assert_close(p_got, p_ref, rtol=1e-9, atol=1e-11)
    # the loss actually went down, so the comparison is not between two untrained nets
    assert np.all(res.history["train_loss"][-1] < res.history["train_loss"][0])


def test_mixed_diagonal_skips_in_one_model_equal_separate():
    x, y, xt, yt = _data()
    cfg = MLPConfig(depth=3, width=6, in_dim=20, n_classes=4, init="scaled")
    skips = ["none", "identity", "lowrank:2", "scaled:0.5"]
    tcfg = TrainConfig(optimizer="adam", lr=0.01, epochs=2, batch_size=16)
    model = BatchedMLP(cfg, [1, 1, 1, 1], skips, dtype=torch.float64)
    res = train(model, x, y, xt, yt, tcfg, progress=False)
    for j, sk in enumerate(skips):
        c = MLPConfig(depth=3, width=6, in_dim=20, n_classes=4, skip=sk, init="scaled")
        ref, _ = _separate(c, 1, tcfg, x, y)
        np.testing.assert_allclose(res.history["train_loss"][1:, j], ref, rtol=1e-10)


def test_divergence_is_flagged_per_network_and_others_continue():
    x, y, xt, yt = _data()
    cfg = MLPConfig(depth=3, width=8, in_dim=20, n_classes=4, skip="identity")
    tcfg = TrainConfig(optimizer="sgd", lr=0.05, epochs=4, batch_size=16)
    model = BatchedMLP(cfg, [0, 1, 2], dtype=torch.float64)
    with torch.no_grad():  # blow up network 1 only: its logits overflow to inf/nan
        model.w_out[1].mul_(1e300)
        model.w_out[1, 0, 0] = float("nan")
    before = model.w_in[1].detach().clone()
    res = train(model, x, y, xt, yt, tcfg, progress=False)
    assert res.diverged_epoch.tolist() == [-1, 1, -1]
    assert np.all(np.isnan(res.history["train_loss"][1:, 1]))
    torch.testing.assert_close(model.w_in[1].detach(), before)  # frozen
    # the healthy nets train exactly as they would alone
    for j, s in ((0, 0), (2, 2)):
        ref, _ = _separate(cfg, s, tcfg, x, y)
        np.testing.assert_allclose(res.history["train_loss"][1:, j], ref, rtol=1e-10)


class _Killed(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    x, y, xt, yt = _data(dtype=torch.float32)
    cfg = MLPConfig(depth=3, width=8, in_dim=20, n_classes=4, skip="identity")
    tcfg = TrainConfig(optimizer="adam", lr=0.01, epochs=5, batch_size=16, probe_epochs=(0, 2, 5))

    def probe(m):
        return {"w_norm": m.w_in.detach().norm(dim=(1, 2)).numpy().copy()}

    full = train(BatchedMLP(cfg, [0, 1]), x, y, xt, yt, tcfg, progress=False, probe_fn=probe)
    ck = tmp_path / "ck.pt"

    def die(epoch):
        if epoch == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(BatchedMLP(cfg, [0, 1]), x, y, xt, yt, tcfg, checkpoint=ck, progress=False, probe_fn=probe,
              on_epoch_end=die)
    model = BatchedMLP(cfg, [0, 1])
    res = train(model, x, y, xt, yt, tcfg, checkpoint=ck, resume=True, progress=False, probe_fn=probe)
    assert res.resumed_from == 2
    for k in full.history:
        np.testing.assert_array_equal(res.history[k], full.history[k])
    assert sorted(res.probes) == [0, 2, 5]
    np.testing.assert_array_equal(res.probes[5]["w_norm"], full.probes[5]["w_norm"])
    # a checkpoint of another configuration is refused
    other = TrainConfig(optimizer="adam", lr=0.02, epochs=5, batch_size=16)
    with pytest.raises(ValueError, match="different run configuration"):
        train(BatchedMLP(cfg, [0, 1]), x, y, xt, yt, other, checkpoint=ck, resume=True, progress=False)


def test_bad_train_config():
    with pytest.raises(ValueError, match="optimizer 'lbfgs'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainConfig(batch_size=0)


def test_eval_train_records_whole_set_loss():
    from ghostsing.deepcheck.training import evaluate

    x, y, xt, yt = _data()
    cfg = MLPConfig(depth=2, width=8, in_dim=20, n_classes=4)
    model = BatchedMLP(cfg, [0, 1], dtype=torch.float64)
    res = train(model, x, y, xt, yt, TrainConfig(optimizer="adam", lr=0.01, epochs=2, batch_size=16,
                                                  eval_train=True), progress=False)
    loss, acc = evaluate(model, x, y)
    np.testing.assert_allclose(res.history["train_loss_eval"][-1], loss, rtol=1e-12)
    np.testing.assert_allclose(res.history["train_acc_eval"][-1], acc, rtol=1e-12)
    off = train(BatchedMLP(cfg, [0, 1], dtype=torch.float64), x, y, xt, yt,
                TrainConfig(optimizer="adam", lr=0.01, epochs=2, batch_size=16), progress=False)
    assert np.all(np.isnan(off.history["train_loss_eval"][1:]))


def test_warmup_and_step_log():
    x, y, xt, yt = _data()
    cfg = MLPConfig(depth=2, width=8, in_dim=20, n_classes=4)
    calls = []

    def probe(m):
        calls.append(1)
        return {"n": np.array([len(calls)])}

    tcfg = TrainConfig(optimizer="sgd", lr=0.1, epochs=2, batch_size=16, warmup_steps=6, step_probe_every=2,
                       step_probe_epochs=(1,))
    model = BatchedMLP(cfg, [0], dtype=torch.float64)
    res = train(model, x, y, xt, yt, tcfg, progress=False, step_probe=probe)
    log = res.extra["step_log"]
    assert [(r["epoch"], r["step"]) for r in log] == [(1, 0), (1, 2), (1, 4)]   # 64/16 = 4 steps per epoch
    # warm-up: SGD steps with lr * min(1, t/6); the first step of a warm-up run moves 1/6 as far
    m1, m2 = BatchedMLP(cfg, [0], dtype=torch.float64), BatchedMLP(cfg, [0], dtype=torch.float64)
    w0 = m1.w_out.detach().clone()
    train(m1, x, y, xt, yt, TrainConfig(optimizer="sgd", lr=0.1, epochs=1, batch_size=64), progress=False)
    train(m2, x, y, xt, yt, TrainConfig(optimizer="sgd", lr=0.1, epochs=1, batch_size=64, warmup_steps=6),
          progress=False)
    torch.testing.assert_close(m2.w_out.detach() - w0, (m1.w_out.detach() - w0) / 6)
