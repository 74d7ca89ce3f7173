"""Load each framework side in its own worker process, both at once.

TensorFlow and PyTorch (torchvision especially) can crash one process that
imports both, and on two cores the sides load in parallel. A worker gets its
arguments as JSON, writes its result as JSON (a neutral summary, or an error
with message and hint) to a file of its own, and sends its stdout/stderr, where
framework log noise and the user's prints go, to a log file that ``--debug``
shows. A worker that dies is reported as an error, never a hang.

Run as ``python -m ktdiff.comparers.workers SIDE ARGS.json RESULT.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field

from .errors import KtdiffError
from .summary import ModelSummary

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",       # TensorFlow's C++ logging
    "TF_ENABLE_ONEDNN_OPTS": "0",      # and its oneDNN banner
    "ABSL_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
    "PYTHONWARNINGS": "ignore",
    "PYTHONUNBUFFERED": "1",
}
SIDE_NAMES = {"keras": "Keras", "torch": "PyTorch"}


@dataclass
class Worker:
    side: str
    proc: subprocess.Popen
    result_path: str
    log_path: str
    started: float = field(default_factory=time.monotonic)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""


_STARTED = [0]


def start(side: str, args: dict, workdir: str) -> Worker:
    _STARTED[0] += 1
    name = f"{side}-{_STARTED[0]}"  # several workers of a side may share a workspace (the numeric check)
    args_path = os.path.join(workdir, f"{name}-args.json")
    result_path = os.path.join(workdir, f"{name}-result.json")
    log_path = os.path.join(workdir, f"{name}.log")
    with open(args_path, "w") as fh:
        json.dump(args, fh)
    env = dict(os.environ)
    env.update(QUIET_ENV)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    if side == "keras":
        env.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # a summary never needs the GPU
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ktdiff.comparers.workers", side, args_path, result_path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd(),
        )
    finally:
        log.close()
    return Worker(side, proc, result_path, log_path)


def collect(worker: Worker, timeout: float | None) -> ModelSummary | dict:
    """The worker's summary (a summary job) or its data (a verification job); its error is raised."""
    name = SIDE_NAMES[worker.side]
    remaining = None if timeout is None else max(1.0, timeout - (time.monotonic() - worker.started))
    try:
        code = worker.proc.wait(remaining)
    except subprocess.TimeoutExpired:
        stop(worker)
        raise KtdiffError(f"loading the {name} model took longer than {timeout:.0f} s and was stopped",
                          "raise the limit with --timeout, or check that the model loads on its own.",
                          worker.log_tail()) from None
    result = None
    if os.path.exists(worker.result_path):
        try:
            with open(worker.result_path) as fh:
                result = json.load(fh)
        except (OSError, ValueError):
            result = None
    if result is None:
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        raise KtdiffError(f"the {name} loader process {how} before it finished",
                          "run again with --debug to see its log; a crash while importing the framework "
                          "usually means a broken install.", worker.log_tail())
    if "error" in result:
        err = KtdiffError.from_dict(result["error"])
        err.detail = (err.detail or "") + ("\n--- worker log ---\n" + worker.log_tail() if worker.log_tail() else "")
        raise err
    if "data" in result:
        return result["data"]
    return ModelSummary.from_dict(result["summary"])


def stop(worker: Worker) -> None:
    if worker.proc.poll() is None:
        worker.proc.kill()
        try:
            worker.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


class Workspace:
    """A private temporary folder for the workers' files; removed afterwards."""

    def __enter__(self) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="ktdiff-")
        return self._tmp.name

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()


# --------------------------------------------------------------------------- the child side

def _run(side: str, args: dict) -> ModelSummary | dict:
    job = args.get("job", "summary")
    if job in ("keras_dump", "torch_verify", "summaries"):
        # several requests share one framework import, each fails on its own: the numeric check's Keras
        # half (inputs, every layer's outputs, the weights) or torch half (port, run, compare), or
        # the summaries of several models
        if job == "keras_dump":
            from .keras_verify import dump as run
        elif job == "torch_verify":
            from .torch_verify import run
        else:
            def run(request):
                return _summary(side, request).to_dict()
        results = []
        for request in args["requests"]:
            try:
                results.append({"data": run(request)})
            except KtdiffError as exc:
                results.append({"error": exc.to_dict()})
        return {"results": results}
    return _summary(side, args)


def _summary(side: str, args: dict) -> ModelSummary:
    if side == "keras":
        from .keras_loader import load_keras_model, load_keras_summary

        model = load_keras_model(args["path"], unsafe=args.get("unsafe", False))
        summary = load_keras_summary(args["path"], model=model)
        if args.get("dump"):  # --verify: run the model now, while the torch side loads
            _early_dump(model, summary, args)
        return summary
    from .torch_loader import load_torch_summary

    return load_torch_summary(
        args["spec"], kwargs=args.get("kwargs"), weights=args.get("weights"),
        keras_inputs=args.get("keras_inputs"), input_shapes=args.get("input_shapes"),
        input_dtype=args.get("input_dtype"), unsafe=args.get("unsafe", False),
    )


def _early_dump(model, summary, args: dict) -> None:
    """The numeric check's Keras half in the summary worker; its index (or its error) goes to a file.
    The plan reuses it when the port's input is the same array, or asks again."""
    from .keras_verify import dump
    from .verify import keras_check_inputs

    request = dict(args["dump"], model=model)
    request["inputs"] = keras_check_inputs(summary)
    if request["inputs"] is None:
        return
    os.makedirs(request["out_dir"], exist_ok=True)
    index_path = os.path.join(request["out_dir"], "index.json")
    try:
        index = {"data": dump(request)}
    except KtdiffError as exc:
        index = {"error": exc.to_dict()}
    _write_atomic(index_path, index)


def _write_atomic(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _import_modules(names: list[str]) -> None:
    """--keras-import: a module that is missing or raises is the user's error, not a crash."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the user's module
            if isinstance(exc, ModuleNotFoundError) and exc.name and (name + ".").startswith(exc.name + "."):
                raise KtdiffError(f"--keras-import: no Python module named {name!r}",
                                  "run ktdiff from the directory that contains it, or set PYTHONPATH.") from None
            first = (str(exc).strip().splitlines() or [""])[0]
            raise KtdiffError(f"--keras-import {name} failed: {type(exc).__name__}: {first}".rstrip(": "),
                              "fix the error in that module.", traceback.format_exc()) from None


def main(argv: list[str]) -> int:
    side, args_path, result_path = argv
    with open(args_path) as fh:
        args = json.load(fh)
    try:
        _import_modules(args.get("imports", []))
        out = _run(side, args)
        _write_atomic(result_path, {"summary": out.to_dict()} if isinstance(out, ModelSummary) else {"data": out})
    except KtdiffError as exc:
        _write_atomic(result_path, {"error": exc.to_dict()})
    except BaseException as exc:  # noqa: BLE001 - a bug of ours: report it, with the traceback for --debug
        detail = traceback.format_exc()
        print(detail, file=sys.stderr)
        _write_atomic(result_path, {"error": KtdiffError(
            f"internal error while loading the {SIDE_NAMES[side]} model: {type(exc).__name__}: {exc}",
            "please report this with the output of --debug.", detail).to_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
