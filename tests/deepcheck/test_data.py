"""CIFAR loading: restricted unpickler, torchvision layout, npz, clear errors, shared subset statistics."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from ghostsing.deepcheck import data as D


class _Evil:
    """Unpickling this calls os.system, which would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('PWNED_EVAL').touch()",))


def test_malicious_pickle_does_not_execute(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    D.write_synthetic_cifar(tmp_path, "cifar10", n_train=50, n_test=10, seed=1)
    marker = tmp_path / "PWNED"
    # a data batch whose payload runs a shell command when unpickled by an ordinary pickle.load
    evil = {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 5, b"x": _Evil(marker)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(D.UnsafePickleError, match="posix.system|os.system|nt.system"):
        D.load_cifar("cifar10", tmp_path)
    assert not marker.exists()
    # control: the ordinary unpickler would indeed have run it (so the test can fail)
    pickle.loads((folder / "data_batch_3").read_bytes())
    assert marker.exists()


def test_eval_and_object_arrays_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(_EvilEval(), protocol=2))
    with pytest.raises(D.UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        D.safe_pickle_load(p)
    assert not (tmp_path / "PWNED_EVAL").exists()
    p.write_bytes(pickle.dumps({b"data": np.array([1, "a"], dtype=object)}, protocol=2))
    with pytest.raises(D.UnsafePickleError, match="object dtype"):
        D.safe_pickle_load(p)


def test_plain_arrays_and_containers_load(tmp_path):
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], b"name": b"x",
           "f": 1.5}
    for proto in (2, 4, 5):
        p = tmp_path / f"ok{proto}.pkl"
        p.write_bytes(pickle.dumps(obj, protocol=proto))
        got = D.safe_pickle_load(p)
        np.testing.assert_array_equal(got[b"data"], obj[b"data"])
        assert got[b"labels"] == [1, 2, 3] and got[b"name"] == b"x" and got["f"] == 1.5


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_torchvision_layout_round_trip(tmp_path, name):
    folder = D.write_synthetic_cifar(tmp_path, name, n_train=120, n_test=30, seed=3)
    assert folder.name == {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    got = D.load_cifar(name, tmp_path)
    ref = D.synthetic_arrays(name, 120, 30, 3)
    np.testing.assert_array_equal(got.x_train, ref.x_train)
    np.testing.assert_array_equal(got.y_train, ref.y_train)
    np.testing.assert_array_equal(got.x_test, ref.x_test)
    np.testing.assert_array_equal(got.y_test, ref.y_test)
    assert got.n_classes == {"cifar10": 10, "cifar100": 100}[name]
    # the on-disk rows are CHW-ordered as in the official files: row 0 starts with the red plane
    raw = D.safe_pickle_load(folder / ("data_batch_1" if name == "cifar10" else "train"))
    np.testing.assert_array_equal(raw[b"data"][0, :1024], ref.x_train[0, :, :, 0].ravel())


def test_npz_round_trip_and_subset(tmp_path):
    D.write_synthetic_cifar(tmp_path, "cifar10", n_train=80, n_test=20, seed=5, fmt="npz")
    got = D.load_cifar("cifar10", tmp_path).subset(50, 10)
    ref = D.synthetic_arrays("cifar10", 80, 20, 5)
    np.testing.assert_array_equal(got.x_train, ref.x_train[:50])
    np.testing.assert_array_equal(got.y_test, ref.y_test[:10])
    with pytest.raises(ValueError, match="n_train=81 is outside 1..80"):
        D.load_cifar("cifar10", tmp_path).subset(81)


def test_missing_data_error_names_paths_and_files(tmp_path):
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_cifar("cifar100", tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "cifar-100-python/{train, test}" in msg and "cifar100.npz" in msg
    with pytest.raises(D.DataNotFoundError, match="does not exist"):
        D.load_cifar("cifar10", tmp_path / "nope")
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(D.DataNotFoundError, match=r"lacks \['data_batch_1'"):
        D.load_cifar("cifar10", tmp_path)
    with pytest.raises(ValueError, match="dataset 'mnist'"):
        D.load_cifar("mnist", tmp_path)


def test_malformed_npz(tmp_path):
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"missing arrays \['x_test', 'y_test'\]"):
        D.load_cifar("cifar10", tmp_path)
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 32, 32, 3), np.float32), y_train=np.zeros(2, int),
             x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.zeros(1, int))
    with pytest.raises(ValueError, match="uint8 of shape"):
        D.load_cifar("cifar10", tmp_path)


def test_to_tensors_normalises_with_training_statistics():
    d = D.synthetic_arrays("cifar10", 64, 16, 0)
    x_tr, y_tr, x_te, _ = D.to_tensors(d, layout="nchw")
    assert tuple(x_tr.shape) == (64, 3, 32, 32) and tuple(x_te.shape) == (16, 3, 32, 32)
    np.testing.assert_allclose(x_tr.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(x_tr.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, atol=1e-5)
    flat, *_ = D.to_tensors(d, layout="flat")
    np.testing.assert_allclose(flat.numpy(), x_tr.permute(0, 2, 3, 1).reshape(64, -1).numpy())


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cifar10_subset.npz"


@pytest.mark.skipif(not SHARED.is_file(), reason="shared CIFAR-10 subset not present")
def test_shared_subset_statistics_match_its_readme():
    d = D.load_cifar("cifar10", SHARED.parent)
    assert d.x_train.shape == (12100, 32, 32, 3) and d.x_test.shape == (2000, 32, 32, 3)
    mu, sd = D.channel_stats(d.x_train)
    np.testing.assert_allclose(mu, [125.84, 123.25, 114.06], atol=0.006)
    np.testing.assert_allclose(sd, [63.11, 62.36, 66.92], atol=0.006)
    assert np.bincount(d.y_train).tolist() == [1210] * 10


def test_explicit_root_without_data_is_an_error_not_synthetic(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DataNotFoundError, match=str(empty)):
        D.load_for_run("cifar10", "auto", empty, 100, 50)
    # without a root, 'auto' may fall back (cwd has no data here) and says so in its source
    monkeypatch.chdir(tmp_path)
    d = D.load_for_run("cifar10", "auto", None, 100, 50)
    assert d.source.startswith("synthetic") and "synthetic" in D.describe(d)
