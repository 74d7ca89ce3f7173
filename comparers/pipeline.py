"""The stages end to end: load (two workers) -> align -> explain -> a Result."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import workers
from .align import align
from .errors import KtdiffError
from .explain import Result, explain
from .keras_loader import check_keras_path, input_specs_from_config, read_keras_config
from .summary import ModelSummary
from .torch_loader import check_spec


@dataclass
class CompareOptions:
    keras_path: str
    torch_spec: str
    torch_kwargs: dict = field(default_factory=dict)
    torch_weights: str | None = None
    input_shapes: list[list[int]] | None = None
    input_dtype: str | None = None
    unsafe_keras_load: bool = False
    unsafe_torch_load: bool = False
    keras_imports: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    timeout: float | None = 600.0


def load_summaries(opts: CompareOptions) -> tuple[ModelSummary, ModelSummary]:
    """Both summaries, each loaded in its own process; the two run at the same time."""
    check_keras_path(opts.keras_path)  # fail fast, before any framework import
    check_spec(opts.torch_spec)         # a typo in the spec fails now, not after the Keras model has loaded
    if opts.torch_weights and not os.path.isfile(opts.torch_weights):
        raise KtdiffError(f"PyTorch weights file not found: {opts.torch_weights}", "check the --torch-weights path.")
    keras_inputs = None
    if not opts.input_shapes:
        keras_inputs = [vars(s) for s in input_specs_from_config(read_keras_config(opts.keras_path))]
    keras_args = {"path": opts.keras_path, "unsafe": opts.unsafe_keras_load, "imports": opts.keras_imports}
    torch_args = {"spec": opts.torch_spec, "kwargs": opts.torch_kwargs, "weights": opts.torch_weights,
                  "input_shapes": opts.input_shapes, "input_dtype": opts.input_dtype,
                  "unsafe": opts.unsafe_torch_load}
    with workers.Workspace() as tmp:
        kw = workers.start("keras", keras_args, tmp)
        tw = None
        try:
            if opts.input_shapes or keras_inputs:
                tw = workers.start("torch", dict(torch_args, keras_inputs=keras_inputs), tmp)
                done = _collect_all([kw, tw], opts.timeout)
                keras_summary, torch_summary = done["keras"], done["torch"]
            else:  # the saved config did not say: ask the loaded Keras model first
                keras_summary = workers.collect(kw, opts.timeout)
                inputs = [vars(s) for s in keras_summary.inputs]
                tw = workers.start("torch", dict(torch_args, keras_inputs=inputs), tmp)
                torch_summary = workers.collect(tw, opts.timeout)
        finally:
            for w in (kw, tw):
                if w is not None:
                    workers.stop(w)
    return keras_summary, torch_summary


def _collect_all(running: list[workers.Worker], timeout: float | None) -> dict[str, ModelSummary]:
    """Each worker's summary; the first error to arrive is raised at once (a typo in the port's
    module is reported without waiting for a large Keras model to load)."""
    results: dict[str, ModelSummary] = {}
    pending = list(running)
    while pending:
        ready = [w for w in pending if w.proc.poll() is not None
                 or (timeout is not None and time.monotonic() - w.started > timeout)]
        for w in ready:
            results[w.side] = workers.collect(w, timeout)
            pending.remove(w)
        if pending and not ready:
            time.sleep(0.02)
    return results


def compare_summaries(keras: ModelSummary, torch: ModelSummary, ignore: list[str] | None = None) -> Result:
    rows = align(keras, torch)
    return explain(keras, torch, rows, ignore=ignore or [])


def compare(opts: CompareOptions) -> Result:
    keras, torch = load_summaries(opts)
    return compare_summaries(keras, torch, opts.ignore)
