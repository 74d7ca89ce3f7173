"""The acceptance case: the seed pair as the user wrote it, and its faithful ports.

Expected figures come from Keras and PyTorch themselves (a child process loads
each model and prints what the framework reports), never from ktdiff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT, _env, run_ktdiff

GOLDEN = ROOT / "tests" / "golden" / "seed_report.txt"
SEED_TORCH = "fixtures/seed_torch.py:Net"

KERAS_FACTS = """
import json, sys, keras
m = keras.saving.load_model(sys.argv[1], compile=False)
bn = [l for l in m.layers if l.__class__.__name__ == 'BatchNormalization'][0]
print(json.dumps({
    'total': m.count_params(),
    'trainable': sum(int(w.numpy().size) for w in m.trainable_weights),
    'non_trainable': sum(int(w.numpy().size) for w in m.non_trainable_weights),
    'bn_params': bn.count_params(),
    'bn_moving': sum(int(w.numpy().size) for w in bn.non_trainable_weights),
    'bn_momentum': bn.get_config()['momentum'], 'bn_epsilon': bn.get_config()['epsilon'],
    'input': list(m.inputs[0].shape[1:]),
}))
"""

TORCH_FACTS = """
import json, sys, importlib.util
spec = importlib.util.spec_from_file_location('port', sys.argv[1]); mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod); net = getattr(mod, sys.argv[2])()
bn = net.features[2]
print(json.dumps({
    'total': sum(p.numel() for p in net.parameters()),
    'buffers': sum(b.numel() for b in net.buffers()),
    'bn_params': sum(p.numel() for p in bn.parameters()),
    'bn_momentum': bn.momentum, 'bn_eps': bn.eps,
}))
"""


def facts(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=_env(
        TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def keras_facts(models):
    return facts(KERAS_FACTS, str(models / "seed.keras"))


@pytest.fixture(scope="module")
def torch_facts():
    return facts(TORCH_FACTS, str(FIXTURES / "seed_torch.py"), "Net")


@pytest.fixture(scope="module")
def seed_json(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("seed") / "report.json"
    done = run_ktdiff("compare", "fixtures/models/seed.keras", SEED_TORCH, "--format", "json", "-o", out)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    return json.loads(out.read_text())


def normalise(text: str) -> str:
    text = re.sub(r"keras \d+\.\d+\.\d+\S* \(\w+\)", "keras X (backend)", text)
    return re.sub(r"torch \d+\.\d+\.\d+\S*", "torch X", text)


def test_seed_report_matches_golden(models):
    done = run_ktdiff("compare", "fixtures/models/seed.keras", SEED_TORCH)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    text = normalise(done.stdout)
    if os.environ.get("KTDIFF_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    assert "\x1b[" not in done.stdout  # no colour when piped


def test_plain_output_does_not_depend_on_terminal_width(models):
    narrow = run_ktdiff("compare", "fixtures/models/seed.keras", SEED_TORCH, COLUMNS="40")
    wide = run_ktdiff("compare", "fixtures/models/seed.keras", SEED_TORCH, COLUMNS="300")
    assert narrow.stdout == wide.stdout
    assert "13,108,758" in narrow.stdout and "…" not in narrow.stdout


def _find(data, code):
    return [f for f in data["findings"] if f["code"] == code]


def test_seed_totals_come_to_the_frameworks_figures(seed_json, keras_facts, torch_facts):
    totals = seed_json["totals"]
    assert totals["keras"]["total"] == keras_facts["total"] == 13_108_758
    assert totals["keras"]["trainable"] == keras_facts["trainable"]
    assert totals["keras"]["non_trainable"] == keras_facts["non_trainable"] == 64
    assert totals["torch"]["total"] == torch_facts["total"] == 13_108_694
    assert totals["torch"]["buffers"] == torch_facts["buffers"] == 65
    assert totals["difference"] == keras_facts["total"] - torch_facts["total"]
    assert totals["unexplained"] == 0
    assert totals["explained"] == [{"code": "NRM001", "row": 5, "params": keras_facts["bn_moving"]}]
    assert f"torchinfo: {torch_facts['total']:,} parameters" in " ".join(seed_json["torch"]["notes"])


def test_seed_batchnorm_counts_are_bookkeeping(seed_json, keras_facts, torch_facts):
    (f,) = _find(seed_json, "NRM001")
    assert f["category"] == "bookkeeping"
    assert f["keras_layer"] == "batch_normalization" and f["torch_module"] == "features.2"
    assert f["params"] == keras_facts["bn_params"] - torch_facts["bn_params"] == 64
    assert "num_batches_tracked" in f["message"] and "2 × 32" in f["message"]
    row = seed_json["rows"][f["row"]]
    assert row["keras"]["params"] == keras_facts["bn_params"] == 128
    assert row["torch"]["params"] == torch_facts["bn_params"] == 64


def test_seed_momentum_and_epsilon(seed_json, keras_facts, torch_facts):
    (m,) = _find(seed_json, "NRM002")
    assert m["category"] == "behaviour" and m["torch_module"] == "features.2"
    assert keras_facts["bn_momentum"] == 0.15 and torch_facts["bn_momentum"] == 0.1
    assert "momentum=0.85" in m["message"] and "momentum=0.1" in m["message"] and "Keras 0.9" in m["message"]
    (e,) = _find(seed_json, "NRM003")
    assert e["category"] == "behaviour"
    assert f"epsilon={keras_facts['bn_epsilon']:g}" in e["message"] and f"eps={torch_facts['bn_eps']:g}" in e["message"]


def test_seed_missing_relu_and_softmax_head(seed_json):
    (relu,) = _find(seed_json, "ACT002")
    assert relu["category"] == "behaviour"
    assert relu["keras_layer"] == "dense ↳ relu" and relu["torch_module"] is None
    assert "between fc1 (Linear) and fc2 (Linear)" in relu["message"]
    (head,) = _find(seed_json, "ACT005")
    assert head["keras_layer"] == "dense_1 ↳ softmax" and head["category"] == "behaviour"
    assert "CrossEntropyLoss" in head["message"] and "logits" in head["message"]


def test_seed_conventions_are_not_differences(seed_json):
    by_row = {r["index"]: r for r in seed_json["rows"]}
    conv = next(r for r in seed_json["rows"] if r["keras"] and r["keras"]["id"] == "conv2d" and r["keras"]["part"] == "layer")
    assert conv["torch"]["id"] == "features.0" and conv["status"] == "convention"
    assert conv["keras"]["output_shape"] == [None, 64, 64, 32] and conv["torch"]["output_shape"] == [1, 32, 64, 64]
    assert "LAY001" in conv["codes"]
    fused = by_row[conv["index"] + 1]
    assert fused["keras"]["part"] == "activation" and fused["torch"]["id"] == "features.1"
    assert fused["codes"] == ["ACT001"] and fused["status"] == "same"
    (flt,) = _find(seed_json, "FLT001")
    assert flt["category"] == "convention" and flt["keras_layer"] == "dense" and flt["torch_module"] == "fc1"
    assert "(h, w, c) vs (c, h, w)" in flt["message"]
    assert not [f for f in seed_json["findings"] if f["code"].startswith("UNX")]


def test_seed_verdict_and_schema(seed_json):
    assert seed_json["schema_version"] == "1.1"
    assert seed_json["verdict"] == "different" and seed_json["exit_code"] == 1
    failing = sorted({f["code"] for f in seed_json["findings"] if f["category"] in ("behaviour", "unexplained")})
    assert failing == ["ACT002", "ACT005", "NRM002", "NRM003"]
    assert seed_json["torch"]["inputs"] == [{"name": "input", "shape": [1, 1, 64, 64], "dtype": "float32"}]
    for f in seed_json["findings"]:
        assert set(f) >= {"code", "category", "keras_layer", "torch_module", "message", "suppressed"}


@pytest.mark.parametrize("spec", ["fixtures/faithful_torch.py:FaithfulNet", "fixtures/faithful_torch.py:FaithfulLogitsNet",
                                  "fixtures/faithful_torch.py:FaithfulChannelsLastFlattenNet"])
def test_faithful_ports_are_equivalent_except_bookkeeping(models, spec, tmp_path):
    out = tmp_path / "r.json"
    done = run_ktdiff("compare", "fixtures/models/seed.keras", spec, "--format", "json", "-o", out)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["verdict"] == "bookkeeping"
    active = {f["code"] for f in data["findings"] if not f["suppressed"]}
    assert not active & {"ACT002", "ACT005", "NRM002", "NRM003"}
    assert data["totals"]["unexplained"] == 0
    # x.permute(0, 2, 3, 1) before the flatten: the features already come in Keras's order
    assert ("FLT001" in active) == (not spec.endswith("ChannelsLastFlattenNet"))
    suppressed = [f for f in data["findings"] if f["suppressed"]]
    if spec.endswith("LogitsNet"):
        assert [f["code"] for f in suppressed] == ["ACT005"]
        assert "CrossEntropyLoss" in suppressed[0]["suppression"]
    else:
        assert suppressed == []


def test_legacy_h5_gives_the_same_report(models):
    keras_file = run_ktdiff("compare", "fixtures/models/seed.keras", SEED_TORCH, "--format", "json")
    h5_file = run_ktdiff("compare", "fixtures/models/seed.h5", SEED_TORCH, "--format", "json")
    assert keras_file.returncode == h5_file.returncode == 1
    a, b = json.loads(keras_file.stdout), json.loads(h5_file.stdout)
    assert [(f["code"], f["row"]) for f in a["findings"]] == [(f["code"], f["row"]) for f in b["findings"]]
    assert a["totals"] == b["totals"]


def test_markdown_report(models):
    done = run_ktdiff("compare", "fixtures/models/seed.keras", SEED_TORCH, "--format", "markdown")
    assert done.returncode == 1
    assert done.stdout.startswith("## ktdiff:")
    assert "| 5 | ✗ | batch_normalization (BatchNormalization) |" in done.stdout
    assert "**NRM002**" in done.stdout
