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
    rep = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# deepcheck: smoke")
    cfg = rep["config"]
    assert cfg["epochs"] == 2 and cfg["n_train"] == 300 and cfg["depths"] == [2, 6]
    names = [p["name"] for p in rep["predictions"]]
    assert any(n.startswith("residual nets reach lower training loss") for n in names)
    assert any(n.startswith("more degenerate skips train worse") for n in names)
    assert any(n.startswith("skip advantage grows with depth") for n in names)
    for p in rep["predictions"]:
        assert p["verdict"] in ("holds", "fails", "inconclusive")
        assert p["n_seeds"] == 3 and len(p["ci"]) == 2
        if p["ci"][0] is not None:
            assert p["ci"][0] <= p["effect"] <= p["ci"][1] or p["name"].startswith("more degenerate")
    assert rep["meta"]["device"] == "cpu" and rep["meta"]["torch_version"] and rep["meta"]["wall_time_s"] > 0
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
    assert ra["predictions"] == rb["predictions"] and ra["summary"] == rb["summary"]
    # --resume with other settings is refused
    r = _run([*args, "--epochs", "4", "--out", str(cut), "--resume"])  # the last --epochs wins
    assert r.returncode == 2 and "different configuration" in r.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "smoke", "--skips", "none,bogus"], "skip 'bogus' is not one of"),
        (["--preset", "parker-hoang", "--depth", "3"], "setting 'depths' does not apply to the parker_hoang"),
        (["--preset", "smoke", "--datasets", "mnist"], "datasets=('mnist',)"),
        (["--preset", "smoke", "--device", "cuda:0"], "CUDA is not available"),
        (["--preset", "smoke", "--skips", "lowrank:99"], "needs k <= width=32"),
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


@pytest.mark.parametrize("argv", [["--preset", "nope"], ["--preset", "smoke", "--epochs", "0"],
                                  ["--preset", "smoke", "--seeds", "x"], []])
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
    assert "setting 'widht' does not apply" in capsys.readouterr().err


def test_download_without_torchvision_or_root_is_a_clear_error(tmp_path, capsys):
    assert main(["--preset", "smoke", "--download", "--out", str(tmp_path / "o")]) == 2
    assert "--download needs --data-root" in capsys.readouterr().err
    try:
        import torchvision  # noqa: F401
    except ImportError:
        assert main(["--preset", "smoke", "--download", "--data-root", str(tmp_path), "--out",
                     str(tmp_path / "o")]) == 2
        assert "needs torchvision" in capsys.readouterr().err


def test_shipped_toml_configs_load_and_change_only_what_they_say():
    """Every TOML under deepcheck/ resolves against its preset; the GPU configs of the device call
    change only what their comments say (orhan-pitkow: CIFAR-10 only; parker-hoang: nothing but the note)."""
    from dataclasses import replace

    from ghostsing.deepcheck.presets import PRESETS, load_toml

    root = Path(__file__).resolve().parents[2] / "deepcheck"
    tomls = sorted(root.rglob("*.toml"))
    assert len(tomls) >= 5, tomls
    cfgs = {p.name: load_toml(p) for p in tomls}
    op = cfgs["orhan-pitkow-gpu.toml"]
    assert op == replace(PRESETS["orhan-pitkow"], datasets=("cifar10",), note=op.note)
    ph = cfgs["parker-hoang-gpu.toml"]
    assert ph == replace(PRESETS["parker-hoang"], note=ph.note)
