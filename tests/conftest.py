"""Shared test fixtures: real Keras model files built by fixtures/build.py, real torch modules.

Comparisons through the CLI run ktdiff as a user does (a subprocess). Rule tests
load each summary once (the real loaders, in their worker processes) and run the
pure align/explain stages on them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
MODELS = FIXTURES / "models"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run_ktdiff(*args: str, cwd: Path = ROOT, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    """Run the installed CLI in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "ktdiff.cli.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=_env(**env))


@pytest.fixture(scope="session")
def models() -> Path:
    """Build (or reuse) the fixture model files once per session."""
    done = subprocess.run([sys.executable, str(FIXTURES / "build.py"), str(MODELS)], capture_output=True,
                          text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return MODELS


class Loader:
    """Summaries loaded once per session through the real worker processes."""

    def __init__(self, models_dir: Path):
        self.models = models_dir
        self._keras: dict = {}
        self._torch: dict = {}

    def keras(self, name: str):
        from ktdiff.comparers import workers

        path = str(self.models / name) if not os.path.isabs(name) else name
        if path not in self._keras:
            with workers.Workspace() as tmp:
                self._keras[path] = workers.collect(workers.start("keras", {"path": path}, tmp), 600)
        return self._keras[path]

    def torch(self, spec: str, keras_name: str | None = None, **kwargs):
        from ktdiff.comparers import workers

        target = spec.rpartition(":")[0]
        if target.endswith(".py") and not os.path.isabs(target):  # relative to fixtures/ (or the root)
            spec = str(ROOT / spec) if target.startswith("fixtures/") else str(FIXTURES / spec)
        key = (spec, keras_name, repr(sorted(kwargs.items())))
        if key not in self._torch:
            args = {"spec": spec, **kwargs}
            if keras_name:  # as the pipeline: a shape given by hand keeps the Keras input's dtype
                args["keras_inputs"] = [vars(i) for i in self.keras(keras_name).inputs]
            with workers.Workspace() as tmp:
                self._torch[key] = workers.collect(workers.start("torch", args, tmp), 600)
        return self._torch[key]

    def preload(self, pairs: list[tuple[str, str]]) -> None:
        """Load many summaries at once: one Keras and one torch batch worker, started together. The
        torch inputs come from the Keras files' configs, as `ktdiff compare` derives them."""
        from ktdiff.comparers import workers
        from ktdiff.comparers.keras_loader import input_specs_from_config, read_keras_config

        keras_paths = list(dict.fromkeys(str(self.models / k) for k, _ in pairs))
        torch_requests, keys = [], []
        for keras_name, spec in pairs:
            spec = self._spec(spec)
            inputs = [vars(i) for i in input_specs_from_config(read_keras_config(str(self.models / keras_name)))]
            torch_requests.append({"spec": spec, "keras_inputs": inputs})
            keys.append((spec, keras_name, repr([])))
        with workers.Workspace() as tmp:
            kw = workers.start("keras", {"job": "summaries", "requests": [{"path": p} for p in keras_paths]}, tmp)
            tw = workers.start("torch", {"job": "summaries", "requests": torch_requests}, tmp)
            try:
                k_out, t_out = workers.collect(kw, 900)["results"], workers.collect(tw, 900)["results"]
            finally:
                workers.stop(kw)
                workers.stop(tw)
        from ktdiff.comparers.summary import ModelSummary

        for path, answer in zip(keras_paths, k_out):
            if "data" in answer:
                self._keras[path] = ModelSummary.from_dict(answer["data"])
        for key, answer in zip(keys, t_out):
            if "data" in answer:
                self._torch[key] = ModelSummary.from_dict(answer["data"])

    def compare(self, keras_name: str, spec: str, ignore=None, **kwargs):
        from ktdiff.comparers.pipeline import compare_summaries

        return compare_summaries(self.keras(keras_name), self.torch(spec, keras_name, **kwargs), ignore)

    def _spec(self, spec: str) -> str:
        target, _, name = spec.rpartition(":")
        if target.endswith(".py") and not os.path.isabs(target):
            target = str(ROOT / target) if target.startswith("fixtures/") else str(FIXTURES / target)
        return f"{target}:{name}"

    def verified(self, pairs: list[tuple[str, str]], ignore=None) -> dict:
        """Results with the numeric check for (keras file, port spec) pairs. All pairs not yet checked
        run in one batch: one Keras worker runs each Keras model once, one torch worker ports and runs
        every port (the real workers, as `ktdiff compare --verify` uses them)."""
        from ktdiff.comparers.align import align
        from ktdiff.comparers.explain import explain
        from ktdiff.comparers.pipeline import CompareOptions, verify_many

        if not hasattr(self, "_verified"):
            self._verified = {}
        todo = [p for p in dict.fromkeys(pairs) if p not in self._verified]
        items = []
        for keras_name, spec in todo:
            k, t = self.keras(keras_name), self.torch(spec, keras_name)
            opts = CompareOptions(keras_path=str(self.models / keras_name), torch_spec=self._spec(spec), verify="on")
            items.append((opts, k, t, align(k, t)))
        for pair, item, v in zip(todo, items, verify_many(items) if items else []):
            self._verified[pair] = (item, v)
        out = {}
        for pair in pairs:
            (opts, k, t, rows), v = self._verified[pair]
            out[pair] = explain(k, t, rows, ignore=ignore, verification=v)
        return out


# Every fixture port and the Keras model it ports: the session loads all their summaries in two batch
# workers (one Keras, one torch process, side by side) instead of a worker per summary.
PORT_FILES = {"seed_torch.py": "seed", "faithful_torch.py": "seed", "lenet_torch.py": "lenet",
              "mobilenet_torch.py": "mini_mobilenet", "resnet_torch.py": "mini_resnet", "unet_torch.py": "mini_unet",
              "text_torch.py": "text_lstm", "branchy_torch.py": "branchy", "zoo_style_torch.py": "strided_cnn",
              "mlp_torch.py": "mlp", "bilstm_torch.py": "bilstm", "inception_torch.py": "inception_block"}
PORT_CLASSES = {"any_size_torch.py": {"AnySizeCnn": "any_size_cnn", "AnyLengthText": "any_length_text"},
                "layouts_torch.py": {"Layouts1d": "layouts_1d", "Layouts3d": "layouts_3d",
                                     "SqueezeExcite": "squeeze_excite"}}
NOT_A_MODEL = {"Block", "Conv2dSame", "BatchNormAct2d", "Conv1D", "MyConv"}


def fixture_pairs() -> list[tuple[str, str]]:
    pairs = []
    for name, keras in PORT_FILES.items():
        for m in re.finditer(r"^class (\w+)\(", (FIXTURES / name).read_text(), re.M):
            if m.group(1) not in NOT_A_MODEL:
                pairs.append((f"{keras}.keras", f"{name}:{m.group(1)}"))
    for name, classes in PORT_CLASSES.items():
        pairs += [(f"{keras}.keras", f"{name}:{cls}") for cls, keras in classes.items()]
    keras = None
    for line in (FIXTURES / "rule_ports.py").read_text().splitlines():
        section = re.match(r"# -+ (rule_\w+)", line)
        keras = section.group(1) if section else keras
        m = re.match(r"class (\w+)\(", line)
        if m and keras:
            pairs.append((f"{keras}.keras", f"rule_ports.py:{m.group(1)}"))
    return pairs


@pytest.fixture(scope="session")
def loader(models) -> Loader:
    loaded = Loader(models)
    loaded.preload(fixture_pairs())
    return loaded


def codes(result, category: str | None = None, active: bool = True) -> list[str]:
    return sorted(f.code for f in result.findings
                  if (not active or not f.suppressed) and (category is None or f.category == category))
