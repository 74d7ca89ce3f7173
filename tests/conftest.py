"""Shared test fixtures: real Keras model files built by fixtures/build.py, real torch modules.

Comparisons through the CLI run ktdiff as a user does (a subprocess). Rule tests
load each summary once (the real loaders, in their worker processes) and run the
pure align/explain stages on them.
"""

from __future__ import annotations

import os
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
            if keras_name and not kwargs.get("input_shapes"):
                args["keras_inputs"] = [vars(i) for i in self.keras(keras_name).inputs]
            with workers.Workspace() as tmp:
                self._torch[key] = workers.collect(workers.start("torch", args, tmp), 600)
        return self._torch[key]

    def compare(self, keras_name: str, spec: str, ignore=None, **kwargs):
        from ktdiff.comparers.pipeline import compare_summaries

        return compare_summaries(self.keras(keras_name), self.torch(spec, keras_name, **kwargs), ignore)


@pytest.fixture(scope="session")
def loader(models) -> Loader:
    return Loader(models)


def codes(result, category: str | None = None, active: bool = True) -> list[str]:
    return sorted(f.code for f in result.findings
                  if (not active or not f.suppressed) and (category is None or f.category == category))
