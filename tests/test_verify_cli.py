"""--verify and `ktdiff port` from the command line, as a user runs them.

The round trip checks ktdiff's ported weights against the frameworks themselves: a child process
runs the Keras model, another loads the written state_dict strictly (weights_only=True) into the
port and runs it on the same input; the outputs must agree.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, _env, run_ktdiff

BRANCHY = "fixtures/branchy_torch.py:Branchy"


def _child(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          cwd=ROOT, env=_env(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_seed_verify_table_names_the_first_divergent_row(models):
    done = run_ktdiff("compare", models / "seed.keras", "fixtures/seed_torch.py:Net", "--verify")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "Outputs diverge first at row 5 (batch_normalization ↔ features.2)" in out
    assert "explained by NRM003" in out and "row 8 (ACT002); row 10 (ACT005)" in out
    assert "NRM002 (row 5): training only" in out
    row5 = next(line for line in out.splitlines() if line.lstrip().startswith("5 "))
    assert row5.rstrip().endswith("◀") and "Δ rel" in out


def test_faithful_verify_json(models, tmp_path):
    report = tmp_path / "report.json"
    done = run_ktdiff("compare", models / "branchy.keras", BRANCHY, "--verify", "--format", "json", "-o", report)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    v = data["verification"]
    assert data["schema_version"] == "1.1" and v["status"] == "agree" and v["first_divergent_row"] is None
    assert v["tolerance"] == {"atol": 1e-6, "rtol": 1e-4} and v["input"]["seed"] == 0
    assert v["input"]["torch_shapes"] == [[1, 3, 6, 6]] and v["input"]["keras_shapes"] == [[1, 6, 6, 3]]
    numbers = [r["verification"] for r in data["rows"] if r["verification"]]
    assert numbers and all(n["max_rel_diff"] < 1e-4 and n["within_tolerance"] for n in numbers)
    assert v["max_rel_diff"] < 1e-4 and "verified numerically" in done.stderr


def test_without_verify_the_json_says_not_run(models):
    done = run_ktdiff("compare", models / "branchy.keras", BRANCHY, "--format", "json")
    data = json.loads(done.stdout)
    assert data["verification"] == {"status": "not-run", "requested": False}
    assert all(r["verification"] is None for r in data["rows"])


def test_port_round_trip_and_users_own_weights(models, loader, tmp_path):
    weights = tmp_path / "branchy.pt"
    done = run_ktdiff("port", models / "branchy.keras", BRANCHY, "-o", weights)
    assert done.returncode == 0, done.stderr
    assert f"wrote {weights}: 8 tensors ported" in done.stdout and "Outputs agree" in done.stdout
    assert oct(os.stat(weights).st_mode & 0o777) == oct(0o666 & ~_umask())

    x = np.random.default_rng(7).standard_normal((2, 6, 6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _child("""
        import sys, numpy as np, keras
        m = keras.saving.load_model(sys.argv[1], compile=False)
        np.save(sys.argv[3], np.asarray(m(np.load(sys.argv[2]), training=False)))
    """, str(models / "branchy.keras"), str(tmp_path / "x.npy"), str(tmp_path / "keras_out.npy"))
    _child("""
        import sys, numpy as np, torch
        sys.path.insert(0, "fixtures")
        from branchy_torch import Branchy
        m = Branchy().eval()
        m.load_state_dict(torch.load(sys.argv[1], weights_only=True), strict=True)
        x = torch.from_numpy(np.load(sys.argv[2])).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            np.save(sys.argv[3], m(x).numpy())
    """, str(weights), str(tmp_path / "x.npy"), str(tmp_path / "torch_out.npy"))
    k, t = np.load(tmp_path / "keras_out.npy"), np.load(tmp_path / "torch_out.npy")
    assert np.abs(k - t).max() <= 1e-4 * np.abs(k).max()

    # the user's own weights (--torch-weights FILE --verify, both checked in one batch of the workers): the
    # written file verifies as given, and one weight stored transposed (the 3x3 kernel's h and w swapped) is
    # found at its row
    _child("""
        import sys, torch
        sd = torch.load(sys.argv[1], weights_only=True)
        sd["branch_b.weight"] = sd["branch_b.weight"].transpose(2, 3).contiguous()
        torch.save(sd, sys.argv[2])
    """, str(weights), str(tmp_path / "bad.pt"))
    from ktdiff.comparers.align import align
    from ktdiff.comparers.explain import explain
    from ktdiff.comparers.pipeline import CompareOptions, verify_many

    k, t = loader.keras("branchy.keras"), loader.torch(BRANCHY, "branchy.keras")
    rows = align(k, t)
    items = [(CompareOptions(keras_path=str(models / "branchy.keras"), torch_spec=str(ROOT / BRANCHY.split(":")[0])
                             + ":Branchy", torch_weights=str(w), verify="on"), k, t, rows)
             for w in (weights, tmp_path / "bad.pt")]
    good, bad = (explain(k, t, rows, verification=v) for v in verify_many(items))
    v = good.verification
    assert good.exit_code == 0 and v.status == "agree" and v.weights == "given" and v.ported == 0
    (f,) = [f for f in bad.findings if f.code == "UNX003"]
    assert bad.exit_code == 1 and f.keras == "branch_b" and f.torch == "branch_b"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_port_refuses_what_it_cannot_port(models, tmp_path):
    out = tmp_path / "text.pt"
    done = run_ktdiff("port", models / "rule_text.keras", "fixtures/rule_ports.py:TextPort", "-o", out)
    assert done.returncode == 2 and not out.exists()
    assert "cannot be ported" in done.stderr and "--partial" in done.stderr and "Traceback" not in done.stderr
    done = run_ktdiff("port", models / "rule_text.keras", "fixtures/rule_ports.py:TextPort", "-o", out, "--partial")
    assert done.returncode == 0 and out.exists() and "kept their initial values" in done.stdout


def test_verify_strict_exits_2_when_a_layer_cannot_be_ported(models):
    done = run_ktdiff("compare", models / "rule_text.keras", "fixtures/rule_ports.py:TextPort", "--verify=strict")
    assert done.returncode == 2 and done.stderr.startswith("ktdiff: error: the numeric check is partial")
    assert "reset_after=False" in done.stderr


def test_verify_input_file(models, tmp_path):
    npz = tmp_path / "inputs.npz"
    np.savez(npz, image=np.ones((1, 6, 6, 3), dtype=np.float32))
    done = run_ktdiff("compare", models / "branchy.keras", BRANCHY, "--verify", "--verify-input", npz,
                      "--format", "json")
    v = json.loads(done.stdout)["verification"]
    assert done.returncode == 0 and v["status"] == "agree" and v["input"]["source"] == str(npz)
    np.savez(npz, pixels=np.ones((1, 6, 6, 3), dtype=np.float32), labels=np.zeros(1))
    done = run_ktdiff("compare", models / "branchy.keras", BRANCHY, "--verify=strict", "--verify-input", npz)
    assert done.returncode == 2 and "no array named 'image'" in done.stderr
    done = run_ktdiff("compare", models / "branchy.keras", BRANCHY, "--verify-input", npz)
    assert done.returncode == 2 and "--verify-input needs --verify" in done.stderr


def test_verify_never_unpickles_the_users_weights(models, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"stem.weight": Evil()}))
    done = run_ktdiff("compare", models / "branchy.keras", BRANCHY, "--torch-weights", bad, "--verify")
    assert done.returncode == 2 and not marker.exists() and "Traceback" not in done.stderr


def test_verify_plot(models, tmp_path):
    pytest.importorskip("matplotlib")
    svg = tmp_path / "error.svg"
    done = run_ktdiff("compare", models / "branchy.keras", "fixtures/branchy_torch.py:BranchyWrongPermute",
                      "--verify-plot", svg)
    assert done.returncode == 1, done.stderr
    text = svg.read_text()
    assert text.startswith("<?xml") and "first divergence: row 8 (UNX003)" in text
