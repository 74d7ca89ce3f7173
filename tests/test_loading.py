"""Loading as users do it: worker failures, Keras files with code or optimizer state, nested models,
weights, factories, dotted specs. Real frameworks, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, _env, run_ktdiff

SEED = "fixtures/models/seed.keras"


def keras_script(code: str, out: Path) -> Path:
    """Build a Keras model file in a child process (TensorFlow stays out of the test process)."""
    script = "import sys, keras\nfrom keras import layers as L\n" + code + "\nmodel.save(sys.argv[1])\n"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True,
                          env=_env(TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def one_error_line(done) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_a_crashing_worker_is_an_error_not_a_hang(models, tmp_path):
    port = tmp_path / "crash.py"
    port.write_text("import ctypes\nctypes.string_at(0)\n")
    line = one_error_line(run_ktdiff("compare", SEED, f"{port}:Net"))
    assert "PyTorch loader process was killed by SIGSEGV" in line and "--debug" in line
    # the crash is in the port's module, imported: blamed on it, not on the install
    assert f"while importing {port}" in line and "broken install" not in line


def test_a_slow_worker_is_stopped_at_the_timeout(models, tmp_path):
    port = tmp_path / "slow.py"
    port.write_text("import time\ntime.sleep(120)\n")
    line = one_error_line(run_ktdiff("compare", SEED, f"{port}:Net", "--timeout", "8", timeout=100))
    assert "took longer than 8 s" in line and "--timeout" in line


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    return keras_script("inp = keras.Input((4,))\nx = L.Lambda(lambda t: t * 2.0)(inp)\n"
                        "model = keras.Model(inp, L.Dense(2, name='out')(x))", out)


def test_safe_mode_stays_on_unless_asked(lambda_model, tmp_path):
    port = tmp_path / "port.py"
    port.write_text("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
                    "        super().__init__(); self.out = nn.Linear(4, 2)\n"
                    "    def forward(self, x):\n        return self.out(x * 2.0)\n")
    line = one_error_line(run_ktdiff("compare", lambda_model, f"{port}:Net"))
    assert "safe mode" in line and "--unsafe-keras-load" in line
    done = run_ktdiff("compare", lambda_model, f"{port}:Net", "--unsafe-keras-load", "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert any(r["keras"] and r["keras"]["type"] == "Lambda" for r in rows)


def test_optimizer_state_never_inflates_the_counts(tmp_path):
    code = ("import numpy as np\ninp = keras.Input((6,))\nmodel = keras.Model(inp, L.Dense(3, name='d')(inp))\n"
            "model.compile('adam', 'mse')\nmodel.fit(np.zeros((4, 6)), np.zeros((4, 3)), verbose=0)\n")
    path = keras_script(code, tmp_path / "trained.keras")
    port = tmp_path / "port.py"
    port.write_text("import torch.nn as nn\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                    "        super().__init__(nn.Linear(6, 3))\n")
    done = run_ktdiff("compare", path, f"{port}:Net", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["totals"]["keras"]["total"] == 6 * 3 + 3  # Dense(3) on 6 features; no Adam slots
    assert data["verdict"] == "equivalent"


def test_nested_keras_models_are_compared_by_their_leaves(tmp_path):
    code = ("inner = keras.Sequential([keras.Input((8,)), L.Dense(4, name='fc')], name='block')\n"
            "inp = keras.Input((8,), name='x')\nmodel = keras.Model(inp, L.Dense(2, name='head')(inner(inp)))")
    path = keras_script(code, tmp_path / "nested.keras")
    port = tmp_path / "port.py"
    port.write_text("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
                    "        super().__init__(); self.block = nn.Sequential(nn.Linear(8, 4)); self.head = nn.Linear(4, 2)\n"
                    "    def forward(self, x):\n        return self.head(self.block(x))\n")
    done = run_ktdiff("compare", path, f"{port}:Net", "--format", "json")
    assert done.returncode == 0, done.stderr
    pairs = [(r["keras"]["id"], r["torch"]["id"]) for r in json.loads(done.stdout)["rows"] if r["keras"] and r["torch"]]
    assert pairs == [("block/fc", "block.0"), ("head", "head")]


def test_weights_factories_and_dotted_specs(models, tmp_path):
    weights = tmp_path / "port.pt"
    save = ("import sys, torch; sys.path.insert(0, 'fixtures'); from faithful_torch import FaithfulNet;"
            f"torch.save(FaithfulNet().state_dict(), {str(weights)!r})")
    subprocess.run([sys.executable, "-c", save], cwd=ROOT, check=True, timeout=120)
    before = weights.read_bytes()
    done = run_ktdiff("compare", SEED, "fixtures.faithful_torch:FaithfulNet", "--torch-weights", weights)
    assert done.returncode == 0, done.stderr
    assert weights.read_bytes() == before  # inputs are never written

    factory = tmp_path / "factory.py"
    factory.write_text("import sys\nsys.path.insert(0, %r)\nfrom faithful_torch import FaithfulNet\n"
                       "def build(width=100):\n    assert width == 100\n    return FaithfulNet()\n"
                       "instance = FaithfulNet()\n" % str(ROOT / "fixtures"))
    assert run_ktdiff("compare", SEED, f"{factory}:build", "--torch-kwargs", '{"width": 100}').returncode == 0
    assert run_ktdiff("compare", SEED, f"{factory}:instance").returncode == 0


def test_output_file_is_written_whole(models, tmp_path):
    out = tmp_path / "report.md"
    done = run_ktdiff("compare", SEED, "fixtures/seed_torch.py:Net", "--format", "markdown", "-o", out)
    assert done.returncode == 1
    assert done.stdout == "" and "wrote" in done.stderr and "DIFFERENT" in done.stderr
    assert out.read_text().startswith("## ktdiff:")
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary file left behind
