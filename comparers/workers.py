"""Load each framework side in its own worker process, both at once.

TensorFlow and PyTorch (torchvision especially) can crash one process that
imports both, and on two cores the sides load in parallel. A worker gets its
arguments as JSON, writes its result as JSON (a neutral summary, or an error
with message and hint) to a file of its own, and sends its stdout/stderr, where
framework log noise and the user's prints go, to a log file that ``--debug``
shows. A worker that dies is reported as an error, never a hang.

Each worker runs in a process group of its own (a new session): stopping a
worker kills the whole group, so processes the user's code started go with it,
on every exit path (done, error, --timeout, SIGINT/SIGTERM/SIGHUP in the CLI).
The worker also ends its group when its parent dies. It records what it is
doing (importing the framework, the user's module, the forward pass) in a
stage file, so a worker that exits or crashes without a result is blamed on the
right code.

Run as ``python -m ktdiff.comparers.workers SIDE ARGS.json RESULT.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import shutil
import sys
import tempfile
import threading
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
    workdir: str = ""

    @property
    def stage_path(self) -> str:
        return self.result_path + ".stage"

    def stage(self) -> dict:
        """What the worker was doing last (see set_stage); {} when it did not say."""
        try:
            with open(self.stage_path) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""


_STARTED = [0]
_RUNNING: list[Worker] = []  # every worker not yet stopped, so any exit path can end them all


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
            start_new_session=True,  # its own process group: stop() kills what the user's code started too
        )
        worker = Worker(side, proc, result_path, log_path, workdir=workdir)
        _RUNNING.append(worker)
    finally:
        log.close()
    return worker


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
    stop(worker)  # done: anything the user's code left running in its process group goes now
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
        stage = worker.stage()
        blame = USER_STAGES.get(stage.get("stage", ""))
        if blame:
            doing, hint = blame
            raise KtdiffError(f"the {name} loader process {how} while {doing.format(what=stage.get('what', '?'))}",
                              hint + " --debug shows its log.", worker.log_tail())
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


# Stages in the user's code: a worker that dies there is blamed on that code, not on the install.
USER_STAGES = {
    "keras-import": ("importing --keras-import {what}",
                     "that module ended the process (os._exit, sys.exit or a crash in native code): fix it."),
    "user-import": ("importing {what}",
                    "the port's module ended the process while it was imported (os._exit or a crash in "
                    "native code): fix it, or move that code under `if __name__ == '__main__':`."),
    "user-construct": ("building {what}",
                       "the port's constructor ended the process (os._exit or a crash in native code): fix it."),
    "user-forward": ("running the forward() of {what}",
                     "the port's forward() ended the process (os._exit, or a crash in native code it calls): "
                     "forward() must return its outputs; run it on its own to find the fault."),
}


def stop(worker: Worker) -> None:
    """Kill the worker's whole process group (the worker and anything the user's code started) and reap it."""
    try:
        os.killpg(worker.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    if worker.proc.poll() is None:
        try:
            worker.proc.kill()
            worker.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if worker in _RUNNING:
        _RUNNING.remove(worker)


def stop_all() -> None:
    """Every worker this process started and did not stop yet (the CLI's last exit step, signals included)."""
    for worker in list(_RUNNING):
        stop(worker)


_WORKSPACES: list[str] = []


class Workspace:
    """A private temporary folder for the workers' files; removed afterwards, with the workers that used it
    stopped first (so none writes into it again)."""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="ktdiff-")
        _WORKSPACES.append(self.path)
        return self.path

    def __exit__(self, *exc) -> None:
        for worker in [w for w in _RUNNING if w.workdir == self.path]:
            stop(worker)
        _remove(self.path)


def _remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path in _WORKSPACES:
        _WORKSPACES.remove(path)


def cleanup_all() -> None:
    """Stop every worker, then remove every workspace still there: the CLI calls it on every exit path."""
    stop_all()
    for path in list(_WORKSPACES):
        _remove(path)


# --------------------------------------------------------------------------- the child side

_STAGE = {"stage": "framework", "what": ""}
_STAGE_FILE: list[str] = []  # set in a worker process only


def set_stage(stage: str, what: str = "") -> None:
    """Record what this worker does now ("user-import", "user-construct", "user-forward", ...): if it dies
    without a result, the parent blames that code. Does nothing outside a worker process."""
    _STAGE.update(stage=stage, what=what)
    if _STAGE_FILE:
        try:
            _write_atomic(_STAGE_FILE[0], dict(_STAGE))
        except OSError:
            pass


def _watch_parent() -> None:
    """End this worker's process group when the ktdiff process that started it is gone (killed with -9)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                try:
                    os.killpg(0, signal.SIGKILL)
                finally:
                    os._exit(1)

    threading.Thread(target=watch, name="ktdiff-parent-watch", daemon=True).start()


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


def _is_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name or os.sep in name


def _import_path(path: str):
    """Import a .py file by its path, as the module named after the file (its folder joins sys.path, so its
    own sibling imports work as in `python file.py`)."""
    import importlib.util

    if not os.path.isfile(path):
        raise KtdiffError(f"--keras-import: file not found: {path}",
                          "check the path, or give a module name importable from the current directory.")
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    modname = os.path.splitext(os.path.basename(path))[0]
    if not modname.isidentifier() or modname in sys.modules:
        modname = "ktdiff_keras_import_" + "".join(c if c.isalnum() else "_" for c in modname)
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


def _import_modules(names: list[str]) -> None:
    """--keras-import: a module name or a .py path; one that is missing or raises is the user's error."""
    import importlib

    for name in names:
        set_stage("keras-import", name)
        try:
            if _is_path(name):
                _import_path(name)
            else:
                importlib.import_module(name)
        except KtdiffError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the user's module (SystemExit included)
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, ModuleNotFoundError) and exc.name and (name + ".").startswith(exc.name + "."):
                raise KtdiffError(f"--keras-import: no Python module named {name!r}",
                                  "run ktdiff from the directory that contains it, set PYTHONPATH, or pass "
                                  "the file's path (--keras-import ./custom_layers.py).") from None
            first = (str(exc).strip().splitlines() or [""])[0]
            raise KtdiffError(f"--keras-import {name} failed: {type(exc).__name__}: {first}".rstrip(": "),
                              "fix the error in that module.", traceback.format_exc()) from None
    set_stage("framework")


def main(argv: list[str]) -> int:
    side, args_path, result_path = argv
    _STAGE_FILE[:] = [result_path + ".stage"]
    _watch_parent()
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
        blame = USER_STAGES.get(_STAGE["stage"]) if isinstance(exc, SystemExit) else None
        if blame is not None:  # sys.exit() in the user's code (its forward(), say): the user's fault
            doing = blame[0].format(what=_STAGE["what"])
            error = KtdiffError(f"SystemExit({exc.code!r}) was raised (sys.exit) while {doing}",
                                "the port's code must not exit the process: raise an exception or return "
                                "instead.", detail)
        else:
            error = KtdiffError(f"internal error while loading the {SIDE_NAMES[side]} model: "
                                f"{type(exc).__name__}: {exc}", "please report this with the output of --debug.",
                                detail)
        _write_atomic(result_path, {"error": error.to_dict()})
    return 0


if __name__ == "__main__":
    # run the imported module's main, not __main__'s: set_stage, called from the loaders, lives there
    from ktdiff.comparers import workers as _worker_module

    sys.exit(_worker_module.main(sys.argv[1:]))
