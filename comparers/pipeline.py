"""The stages end to end: load (two workers) -> align -> explain -> a Result."""

from __future__ import annotations

import json
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
from .verify import DEFAULT_ATOL, DEFAULT_RTOL, INPUT_VALUES, Verification, evaluate, plan, plan_inputs


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
    verify: str | None = None          # None | "on" | "strict": the numeric check
    verify_input: str | None = None    # an .npz of Keras-layout inputs (default: seeded)
    seed: int = 0
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    save_weights: str | None = None    # ktdiff port: write the ported state_dict here
    save_partial: bool = False         # ... even when some torch tensors get no Keras weights


def load_summaries(opts: CompareOptions, workspace: str | None = None,
                   dump_dir: str | None = None) -> tuple[ModelSummary, ModelSummary]:
    """Both summaries, each loaded in its own process; the two run at the same time.

    With dump_dir (--verify), the Keras worker also runs the model on the check's input and keeps
    every layer's output there, while the torch side loads."""
    if workspace is None:
        with workers.Workspace() as tmp:
            return load_summaries(opts, tmp, dump_dir)
    check_keras_path(opts.keras_path)  # fail fast, before any framework import
    check_spec(opts.torch_spec)         # a typo in the spec fails now, not after the Keras model has loaded
    if opts.torch_weights and not os.path.isfile(opts.torch_weights):
        raise KtdiffError(f"PyTorch weights file not found: {opts.torch_weights}", "check the --torch-weights path.")
    # the saved config's inputs: the port's input is derived from them, and a shape given by hand keeps
    # their dtype (int32 token ids stay integers)
    keras_inputs = [vars(s) for s in input_specs_from_config(read_keras_config(opts.keras_path))]
    keras_args = {"path": opts.keras_path, "unsafe": opts.unsafe_keras_load, "imports": opts.keras_imports}
    if dump_dir:
        keras_args["dump"] = {"seed": opts.seed, "npz": opts.verify_input, "out_dir": dump_dir}
    torch_args = {"spec": opts.torch_spec, "kwargs": opts.torch_kwargs, "weights": opts.torch_weights,
                  "input_shapes": opts.input_shapes, "input_dtype": opts.input_dtype,
                  "unsafe": opts.unsafe_torch_load}
    tmp = workspace  # the caller's: the numeric check reads the early Keras run from it
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


def verification_request(opts: CompareOptions, keras: ModelSummary, torch: ModelSummary, rows) -> tuple:
    """(plan, Keras dump request, torch request without the Keras index) for one pair."""
    p = plan(keras, torch, rows)
    p.inputs = plan_inputs(keras, torch)
    dump = {"path": opts.keras_path, "unsafe": opts.unsafe_keras_load, "inputs": p.inputs, "seed": opts.seed,
            "npz": opts.verify_input}
    request = {"spec": opts.torch_spec, "kwargs": opts.torch_kwargs, "weights": opts.torch_weights,
               "unsafe": opts.unsafe_torch_load, "plan": p.to_dict(), "save": opts.save_weights,
               "save_partial": opts.save_partial}
    return p, dump, request


def input_info(opts: CompareOptions, p) -> dict:
    return {"source": opts.verify_input or "seeded", "seed": None if opts.verify_input else opts.seed,
            "keras_shapes": [i["keras_shape"] for i in p.inputs], "torch_shapes": [i["torch_shape"] for i in p.inputs],
            "dtypes": [i["dtype"] for i in p.inputs],
            "values": "from the file" if opts.verify_input else _values(p.inputs)}


def _values(inputs: list[dict]) -> str:
    texts = [INPUT_VALUES[i["kind"]].format(high=i["high"]) for i in inputs]
    return "; ".join(dict.fromkeys(texts))


def _early(dump_dir: str | None, dump: dict) -> dict | None:
    """The Keras worker's early run (load_summaries with dump_dir), if it ran on this very input."""
    if not dump_dir or not os.path.exists(os.path.join(dump_dir, "index.json")):
        return None
    with open(os.path.join(dump_dir, "index.json")) as fh:
        answer = json.load(fh)
    made = answer.get("data", {}).get("made_from", {})
    same = [(i["keras_shape"], i["kind"]) for i in made.get("inputs", [])] == \
        [(i["keras_shape"], i["kind"]) for i in dump["inputs"]]
    return answer if "error" in answer or (same and made.get("seed") == dump["seed"]
                                           and made.get("npz") == dump["npz"]) else None


def verify_many(items: list[tuple[CompareOptions, ModelSummary, ModelSummary, list]],
                workspace: str | None = None, early: list[str | None] | None = None) -> list[Verification]:
    """The numeric check of several pairs: one Keras worker runs every Keras model (a model compared with
    several ports runs once per input) unless its summary worker already did (`early`: its dump folders),
    then one torch worker ports and runs every port.
    A pair that fails gets a 'not-run' Verification with the reason (or raises, with --verify=strict / port)."""
    if workspace is None:
        with workers.Workspace() as tmp:
            return verify_many(items, tmp, early)
    prepared = [verification_request(opts, k, t, rows) for opts, k, t, rows in items]
    out: list[Verification | None] = [None] * len(items)
    dumps: dict[str, dict] = {}
    answers: dict[str, dict] = {}
    which: list[str] = []
    for i, (_, dump, _) in enumerate(prepared):
        key = repr((dump["path"], dump["unsafe"], dump["inputs"], dump["seed"], dump["npz"]))
        ready = _early(early[i] if early else None, dump)
        if ready is not None:
            answers[key] = ready
        elif key not in dumps:
            dumps[key] = dict(dump, out_dir=os.path.join(workspace, f"keras-{len(dumps)}"))
        which.append(key)
    imports = sorted({m for opts, *_ in items for m in opts.keras_imports})
    timeout = max((opts.timeout or 0) for opts, *_ in items) or None
    if dumps:
        kw = workers.start("keras", {"job": "keras_dump", "imports": imports, "requests": list(dumps.values())},
                           workspace)
        try:
            answers.update(zip(dumps, workers.collect(kw, timeout)["results"]))
        finally:
            workers.stop(kw)
    requests, slots = [], []
    for i, ((opts, *_), (p, _, request)) in enumerate(zip(items, prepared)):
        answer = answers[which[i]]
        if "error" in answer:
            out[i] = _not_run(opts, p, KtdiffError.from_dict(answer["error"]))
            continue
        requests.append(dict(request, keras_index=answer["data"]))
        slots.append(i)
    if requests:
        tw = workers.start("torch", {"job": "torch_verify", "requests": requests}, workspace)
        try:
            results = workers.collect(tw, timeout)["results"]
        finally:
            workers.stop(tw)
        for i, answer in zip(slots, results):
            opts, p = items[i][0], prepared[i][0]
            if "error" in answer:
                out[i] = _not_run(opts, p, KtdiffError.from_dict(answer["error"]))
            else:
                out[i] = evaluate(p, answer["data"], opts.atol, opts.rtol, input_info(opts, p),
                                  "given" if opts.torch_weights else "ported")
    return out  # type: ignore[return-value]


def _not_run(opts: CompareOptions, p, exc: KtdiffError) -> Verification:
    if opts.verify == "strict" or opts.save_weights:
        raise exc
    return Verification(status="not-run", input=input_info(opts, p),
                        notes=[f"the numeric check could not run: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")])


def run_verification(opts: CompareOptions, keras: ModelSummary, torch: ModelSummary, rows,
                     workspace: str | None = None, early: str | None = None) -> Verification:
    """Port the weights (or load the user's), run both models on one input, compare every row."""
    try:
        return verify_many([(opts, keras, torch, rows)], workspace, [early])[0]
    except KtdiffError as exc:
        if opts.verify == "strict" or opts.save_weights:
            raise
        p = plan(keras, torch, rows)
        p.inputs = plan_inputs(keras, torch)
        return _not_run(opts, p, exc)


def _load_align_verify(opts: CompareOptions):
    """(keras, torch, rows, verification or None): the summaries, their alignment, and with --verify (or
    for ktdiff port) the numeric check, whose Keras half runs in the summary worker when it can."""
    with workers.Workspace() as tmp:
        early = os.path.join(tmp, "keras-early") if opts.verify or opts.save_weights else None
        keras, torch = load_summaries(opts, tmp, early)
        rows = align(keras, torch)
        verification = run_verification(opts, keras, torch, rows, tmp, early) if early else None
    return keras, torch, rows, verification


def compare(opts: CompareOptions) -> Result:
    keras, torch, rows, verification = _load_align_verify(opts)
    result = explain(keras, torch, rows, ignore=opts.ignore, verification=verification)
    blocked = verification is not None and any(u.get("keras") and u.get("torch") for u in verification.unported)
    if opts.verify == "strict" and verification is not None and (verification.status in ("partial", "not-run")
                                                                 or blocked):
        why = "; ".join(verification.notes[:1] + [f"row {u['row']}: {u['reason']}" for u in verification.unported[:2]])
        state = "partial" if blocked and verification.status == "diverge" else verification.status
        raise KtdiffError(f"the numeric check is {state}" + (f": {why}" if why else ""),
                          "run with --verify (not strict) to see what was verified.")
    return result


def port_weights(opts: CompareOptions, output: str, partial: bool = False) -> tuple[Result, list[str]]:
    """ktdiff port: write the Keras weights ported into the port's state_dict; (result, lines to print)."""
    from dataclasses import replace

    from .report import verification_lines

    opts = replace(opts, save_weights=output, save_partial=partial, verify="on")
    keras, torch, rows, v = _load_align_verify(opts)
    result = explain(keras, torch, rows, ignore=opts.ignore, verification=v)
    gaps = [f"{u.get('torch') or u.get('keras')}: {u['reason']}" for u in v.unported if u.get("torch")] + \
        [f"{name}: no Keras weights" for name in v.missing]
    if not v.saved:
        raise KtdiffError(f"{len(gaps)} PyTorch tensor{'s' if len(gaps) != 1 else ''} cannot be ported ("
                          + "; ".join(gaps[:3]) + ("; ..." if len(gaps) > 3 else "") + "); nothing written",
                          "run `ktdiff compare --verify` to see the rows, or pass --partial to write it anyway.")
    lines = [f"ktdiff: wrote {output}: {v.ported} tensors ported from {opts.keras_path} into {opts.torch_spec}"
             + (f"; {len(gaps)} kept their initial values (--partial)" if gaps else "")
             + "; load it with model.load_state_dict(torch.load(path, weights_only=True))."]
    lines += [line for line, _ in verification_lines(result)[2:]]
    return result, lines
