"""`python -m ghostsing.deepcheck`: smoke end to end, kill + resume == uninterrupted, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ghostsing.deepcheck.__main__ import main

FAST = ["--data", "synthetic", "--n-train", "300", "--n-test", "100", "--threads", "1", "--no-progress"]


def _run(args, env_extra=None, timeout=240):
    env = dict(os.environ, MPLBACKEND="Agg", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "ghostsing.deepcheck", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_smoke_preset_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = _run(["--preset", "smoke", "--out", str(out), "--epochs", "2", *FAST])
    assert r.returncode == 0, r.stderr
    assert "deepcheck data: cifar10: synthetic" in r.stderr and "data: cifar10: synthetic" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# Deep MLPs with and without skips")
    cfg = rep["config"]
    assert cfg["epochs"] == 2 and cfg["n_train"] == 300 and cfg["depths"] == [2, 6]
    names = [p["name"] for p in rep["predictions"]]
    assert any(n.startswith("identity reaches lower training loss than none") for n in names)
    assert any(n.startswith("more degenerate skips train worse") for n in names)
    assert any(n.startswith("skip advantage grows with depth") for n in names)
    assert any(n.startswith("none gains more eliminated units") for n in names)
    for p in rep["predictions"]:
        assert {"name", "verdict", "effect", "ci", "n_seeds", "test", "p_value"} <= set(p)
        assert p["verdict"] in ("holds", "fails", "inconclusive", "underpowered") and p["test"]
        assert p["n_seeds"] == 3 and len(p["ci"]) == 2
        # 3 against 3 seeds: the exact permutation test cannot reach 0.05, so no verdict is given
        if p["test"] == "exact permutation":
            assert p["verdict"] in ("underpowered", "inconclusive")
    assert rep["meta"]["device"] == "cpu" and rep["meta"]["torch_version"] and rep["meta"]["wall_time_s"] > 0
    assert rep["meta"]["data"].startswith("cifar10: synthetic")
    for f in rep["figures"]:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    arr = np.load(out / "arrays.npz")
    assert arr["cifar10/d6/identity/train_loss"].shape == (3, 3)


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    args = ["--preset", "smoke", "--depth", "3", "--epochs", "3", "--skips", "none,identity,hyper", *FAST]
    full = tmp_path / "full"
    assert _run([*args, "--out", str(full)]).returncode == 0
    cut = tmp_path / "cut"
    # two batched models (diagonal skips; hyper) x 3 epochs: die after the 4th epoch, inside the second model
    r = _run([*args, "--out", str(cut)], {"GHOSTSING_DEEPCHECK_KILL_AFTER_EPOCHS": "4"})
    assert r.returncode == -9, r.stderr
    assert not (cut / "report.json").exists()
    r = _run([*args, "--out", str(cut), "--resume"])
    assert r.returncode == 0, r.stderr
    a, b = np.load(full / "arrays.npz"), np.load(cut / "arrays.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (full, cut))
    assert ra["predictions"] == rb["predictions"]
    ra["summary"].pop("training_wall_time_s"), rb["summary"].pop("training_wall_time_s")  # timing differs
    assert ra["summary"] == rb["summary"]
    # --resume with other settings is refused
    r = _run([*args, "--epochs", "4", "--out", str(cut), "--resume"])  # the last --epochs wins
    assert r.returncode == 2 and "different configuration" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "smoke", "--skips", "none,bogus"], "skip 'bogus' is not one of"),
        (["--preset", "parker-hoang", "--depth", "3"], "'depths' is not a setting of ParkerHoangConfig"),
        (["--preset", "smoke", "--datasets", "mnist"], "datasets='mnist' is not allowed"),
        (["--preset", "smoke", "--device", "cuda:0"], "CUDA is not available"),
        (["--preset", "smoke", "--device", "gpu"], "device='gpu' is not allowed"),
        (["--preset", "smoke", "--optimizer", "lbfgs"], "optimizer='lbfgs' is not allowed"),
        (["--preset", "smoke", "--data", "fake"], "data='fake' is not allowed"),
        (["--preset", "smoke", "--skips", "lowrank:99"], "needs k <= width=32"),
        (["--preset", "nope"], "preset 'nope' is not known"),
        (["--preset", "smoke", "--set", "lr_grid=1e-3", "--set", "lr_seeds=0"], "lr_seeds must differ"),
    ],
)
def test_bad_settings_exit_2_with_message(tmp_path, capsys, argv, message):
    if "cuda" in message.lower():
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip(reason="CUDA present: the no-CUDA error path cannot be exercised")
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--preset", "smoke", "--epochs", "0"],
                                  ["--preset", "smoke", "--seeds", "x"], [], ["--set", "novalue"]])
def test_bad_flags_are_argparse_errors(tmp_path, argv):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path)])
    assert e.value.code == 2


def test_missing_data_names_path_and_files(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["--preset", "parker-hoang", "--data-root", str(empty), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "cifar-10-batches-py/{data_batch_1" in err and "cifar10.npz" in err


def test_toml_config(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "smoke"\nepochs = 1\ndepths = [2]\nskips = ["none", "identity"]\n'
                   'seeds = [0, 1]\ndata = "synthetic"\nn_train = 200\nn_test = 50\n')
    out = tmp_path / "o"
    assert main(["--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["config"]["skips"] == ["none", "identity"] and rep["config"]["seeds"] == [0, 1]
    cfg.write_text('preset = "smoke"\nwidht = 3\n')
    assert main(["--config", str(cfg), "--out", str(out)]) == 2
    assert "'widht' is not a setting of SkipsConfig" in capsys.readouterr().err


def test_download_without_torchvision_or_root_is_a_clear_error(tmp_path, capsys):
    assert main(["--preset", "smoke", "--download", "--out", str(tmp_path / "o")]) == 2
    assert "--download needs --data-root" in capsys.readouterr().err
    try:
        import torchvision  # noqa: F401
    except ImportError:
        assert main(["--preset", "smoke", "--download", "--data-root", str(tmp_path), "--out",
                     str(tmp_path / "o")]) == 2
        assert "needs torchvision" in capsys.readouterr().err


def test_shipped_toml_configs_load():
    """Every TOML under deepcheck/ resolves against its preset through the registry, and every reduced
    CPU configuration keeps at least 5 seeds per arm."""
    import tomllib

    from ghostsing.experiments.registry import find_preset

    root = Path(__file__).resolve().parents[2] / "deepcheck"
    tomls = sorted(root.rglob("*.toml"))
    assert len(tomls) >= 5, tomls
    for path in tomls:
        table = tomllib.loads(path.read_text())
        exp, key = find_preset(table.pop("preset"), kind="deep")
        cfg = exp.config(key, table)
        assert len(cfg.seeds) >= 5, path
        assert cfg.note, path


def test_unsafe_pickle_is_a_one_line_error_and_never_runs(tmp_path):
    import pickle

    from ghostsing.deepcheck.data import write_synthetic_cifar

    write_synthetic_cifar(tmp_path, "cifar10", n_train=50, n_test=10, seed=1)
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 5, b"x": Evil()}
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(evil, protocol=2))
    r = _run(["--preset", "skip-comparison-small", "--data", "real", "--data-root", str(tmp_path), "--out",
              str(tmp_path / "o"), "--no-progress"])
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "refused a data file that tries to run code" in r.stderr
    assert "Traceback" not in r.stderr and not marker.exists()


def test_explicit_data_root_without_data_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["--preset", "smoke", "--data-root", str(empty), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 2  # the smoke preset's data='auto' does not fall back to synthetic data
    err = capsys.readouterr().err
    assert str(empty) in err and "synthetic" not in err
    assert not (tmp_path / "o" / "report.json").exists()


def test_list_names_every_deep_preset(capsys):
    assert main(["--list"]) == 0
    text = capsys.readouterr().out
    for preset in ("smoke", "orhan-pitkow", "skip-degeneracy", "fair-comparison", "dead-branches",
                   "parker-hoang", "parker-hoang-ablation"):
        assert f"  {preset}: " in text


def test_note_is_report_metadata_for_an_experiment_without_a_note_field(tmp_path):
    """``--note`` reaches the report of every deep experiment, also those whose config has no ``note``
    field (the curvature ones; it used to be refused as an unknown setting)."""
    out = tmp_path / "ns"
    r = _run(["--preset", "nullspace-small", "--out", str(out), "--data", "synthetic", "--threads", "1",
              "--no-progress", "--note", "reduced run for a test"])
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "report.json").read_text())["meta"]["note"] == "reduced run for a test"
    assert "> **reduced run for a test**" in (out / "report.md").read_text()
