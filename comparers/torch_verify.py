"""PyTorch side of the numeric check: port the Keras weights, run the port, compare as it runs.

Runs in the torch worker. The port is built as for the summary; the Keras
weights (``.npy`` files from the Keras worker) go into its modules through the
porting functions, or the user's own state_dict is loaded instead. One forward
pass runs with the walk's capture: each output is compared with the Keras
output of its row the moment it is produced (read memory-mapped, brought to
torch's layout) and then dropped. ``ktdiff port`` saves the ported state_dict.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import porting
from .errors import KtdiffError
from .files import write_atomically
from .torch_loader import build_module, load_weights, tensors_in, walk


def _first_tensor(value):
    found = tensors_in(value)
    return found[0] if found else None


def _rnn_value(out, rnn: dict):
    """A recurrent module's (output, h_n[, c_n]) as Keras returns it: the sequence, or the last state."""
    if not isinstance(out, (list, tuple)):
        return out
    if not rnn.get("last"):
        return out[0]
    h = out[1][0] if isinstance(out[1], (list, tuple)) else out[1]
    import torch

    if rnn.get("bidirectional"):
        return torch.cat([h[-2], h[-1]], dim=-1)
    return h[-1]


def _stats(ref: np.ndarray, got: np.ndarray) -> dict:
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    absref = np.abs(ref.astype(np.float64))
    if diff.size == 0:
        return {"max_abs": 0.0, "mean_abs": 0.0, "p99_abs": 0.0, "scale": 0.0, "mean_ref": 0.0}
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "p99_abs": float(np.quantile(diff, 0.99)), "scale": float(absref.max()), "mean_ref": float(absref.mean())}


def align_arrays(ref: np.ndarray, got: np.ndarray, hint: str, flatten_input: list | None) -> tuple[np.ndarray | None, str]:
    """The Keras output `ref` in torch's layout, to compare with `got`; (None, why) if they do not fit."""
    a = ref
    if flatten_input and a.ndim == 2:
        *spatial, c = flatten_input
        r = len(spatial)
        a = a.reshape(a.shape[0], *spatial, c).transpose(0, r + 1, *range(1, r + 1)).reshape(a.shape[0], -1)
    if a.ndim >= 3 and got.ndim == a.ndim:
        moved = np.moveaxis(a, -1, 1)
        same_fits, moved_fits = a.shape == got.shape, moved.shape == got.shape
        if moved_fits and (not same_fits or hint == "channels_last"):
            a = moved
    if a.shape != got.shape:
        if a.size == got.size and [d for d in a.shape if d != 1] == [d for d in got.shape if d != 1]:
            return a.reshape(got.shape), ""
        return None, f"outputs of shapes {tuple(ref.shape)} (Keras) and {tuple(got.shape)} (PyTorch) cannot be compared"
    return a, ""


class Comparer:
    """Takes the walk's captured outputs and compares each with its Keras row at once; keeps only numbers."""

    def __init__(self, checks: list[dict], outputs: dict[str, str], finals: list[str]):
        self.by_torch: dict[tuple[str, int], list[dict]] = {}
        for c in checks:
            self.by_torch.setdefault((c["torch"], int(c["torch_call"])), []).append(c)
        self.outputs, self.finals = outputs, finals
        self.rows: list[dict] = []
        self.final: dict | None = None

    def __setitem__(self, key, value) -> None:
        if key == ("", 0):
            self.final = self._compare_final(value)
            return
        for check in self.by_torch.get(key, []):
            self.rows.append({"row": check["row"], **self._compare(check, value)})

    def _compare(self, check: dict, value) -> dict:
        path = self.outputs.get(f"{check['keras']}#1")
        if path is None:
            return {"note": "Keras produced no output for this layer (not called by the model, or not a tensor)"}
        if check.get("rnn"):
            value = _rnn_value(value, check["rnn"])
        tensor = _first_tensor(value)
        if tensor is None:
            return {"note": "the PyTorch module returned no tensor"}
        got = tensor.detach().float().cpu().numpy()
        ref = np.load(path, mmap_mode="r")
        a, why = align_arrays(np.asarray(ref), got, check.get("layout_hint", "same"), check.get("flatten_input"))
        if a is None:
            return {"note": why}
        return _stats(a, got)

    def _compare_final(self, value) -> dict | None:
        if not self.finals:
            return None
        tensor = _first_tensor(value)
        if tensor is None:
            return {"note": "the port's forward() returned no tensor"}
        got = tensor.detach().float().cpu().numpy()
        ref = np.asarray(np.load(self.finals[0], mmap_mode="r"))
        a, why = align_arrays(ref, got, "channels_last" if ref.ndim >= 3 else "same", None)
        if a is None:
            return {"note": why}
        return _stats(a, got)


def _state_shapes(module) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in module.state_dict().items()}


def port_weights(model, ports: list[dict], weights: dict[str, dict[str, str]]) -> tuple[int, list[dict], set[str]]:
    """Write each paired Keras layer's weights into its torch module; (tensors written, failures, names set)."""
    import torch

    written, failures, done = 0, [], set()
    for item in ports:
        module = model.get_submodule(item["torch"]) if item["torch"] else model
        files = weights.get(item["keras"])
        if not files:
            failures.append({"row": item["row"], "keras": item["keras"], "torch": item["torch"],
                             "reason": "the Keras layer's weights were not saved"})
            continue
        kw = {name: np.load(path) for name, path in files.items()}
        fold = None
        if item.get("fold_bias_of"):
            conv = weights.get(item["fold_bias_of"], {})
            bias_file = next((p for n, p in conv.items() if n.rpartition("/")[2] == "bias"), None)
            fold = np.load(bias_file) if bias_file else None
        info = porting.PortInfo(keras_hparams=item.get("keras_hparams", {}), torch_hparams=item.get("torch_hparams", {}),
                                torch_type=type(module).__name__, torch_shapes=_state_shapes(module),
                                flatten_input=item.get("flatten_input"), bias_folded=item.get("bias_folded", False),
                                fold_bias=fold)
        try:
            arrays = porting.port(item["porter"], kw, info)
        except porting.CannotPort as exc:
            failures.append({"row": item["row"], "keras": item["keras"], "torch": item["torch"], "reason": str(exc)})
            continue
        state = dict(module.named_parameters())
        state.update(dict(module.named_buffers()))
        with torch.no_grad():
            for name, arr in arrays.items():
                target = state[name]
                target.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(target.dtype))
                done.add(f"{item['torch']}.{name}" if item["torch"] else name)
                written += 1
    return written, failures, done


def _inputs(specs: list[dict], files: list[str]):
    import torch

    tensors = []
    for spec, path in zip(specs, files):
        arr = np.load(path)
        if spec["layout"] == "channels_last":
            arr = np.moveaxis(arr, -1, 1)
        dtype = spec["dtype"]
        # a fresh tensor with standard strides: a moved axis of size 1 keeps odd strides that numpy calls
        # contiguous, and torch would then run the convolutions channels-last (x.view fails after them)
        t = torch.empty(arr.shape, dtype=torch.from_numpy(arr[:0].copy()).dtype)
        t.copy_(torch.from_numpy(np.array(arr)))
        t = t.long() if dtype == "int64" else t.bool() if dtype == "bool" else t.to(getattr(torch, dtype))
        tensors.append(t)
    return tensors


def run(args: dict) -> dict:
    """Port (or load the given weights), run with the comparer, optionally save the state_dict."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.manual_seed(0)  # tensors that get no Keras weights start from the same values on every run
    model, _ = build_module(args["spec"], args.get("kwargs"))
    index = args["keras_index"]
    result: dict[str, Any] = {"notes": [], "unported": []}
    if args.get("weights"):
        load_weights(model, args["weights"], unsafe=args.get("unsafe", False))
        result["ported"] = 0
    else:
        written, failures, done = port_weights(model, args["plan"]["ports"], index["weights"])
        result["ported"] = written
        result["unported"] = failures
        missing = [name for name in model.state_dict() if name not in done and not name.endswith("num_batches_tracked")]
        if missing:
            result["notes"].append(f"{len(missing)} PyTorch tensor{'s' if len(missing) != 1 else ''} kept their initial "
                                   f"values (no Keras weights for them): " + ", ".join(missing[:6])
                                   + (", ..." if len(missing) > 6 else ""))
        result["missing"] = missing
    if args.get("save") and (args.get("save_partial") or not (result["unported"] or result.get("missing"))):
        save_state_dict(model, args["save"])
        result["saved"] = True
    tensors = _inputs(args["plan"]["inputs"], index["inputs"])
    comparer = Comparer(args["plan"]["checks"], index["outputs"], index["final"])
    try:
        walk(model, tensors, capture=comparer)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed
        from .torch_loader import _user_error

        raise _user_error("the forward pass of the port failed on the verification input", exc,
                          "check --verify-input, or that the port runs on the input ktdiff derived.") from None
    result["rows"], result["final"] = comparer.rows, comparer.final
    return result


def save_state_dict(model, path: str) -> None:
    """torch.save of the state_dict, atomically, with the permissions of any program's output."""
    import torch

    try:
        write_atomically(path, lambda tmp: torch.save(model.state_dict(), tmp), suffix=".pt")
    except OSError as exc:
        raise KtdiffError(f"cannot write {path}: {exc.strerror or exc}", "pick another path with -o.") from None
