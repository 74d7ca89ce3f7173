"""Keras side of the numeric check: run the model once and keep what the port needs.

Runs in the Keras worker. Every row-making layer's call is wrapped, so each
output (nested models included, and every call of a shared layer) is written to
disk as it is produced, as float32 ``.npy`` files that the torch worker reads
memory-mapped: neither process holds all the outputs at once. Each layer's
weights are written the same way, named relative to the layer (``kernel``,
``moving_mean``, ``forward_lstm/lstm_cell/kernel``) as the porting functions
expect. The inputs are made here (seeded) or read from ``--verify-input``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import KtdiffError
from .keras_loader import iter_layers, load_keras_model, weight_names


def make_inputs(specs: list[dict], seed: int, npz: str | None) -> list[np.ndarray]:
    """The Keras-layout input arrays: seeded (floats N(0, 1), token ids 1..high, masks of ones), or from a file."""
    if npz:
        try:
            data = np.load(npz, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - the user's file
            raise KtdiffError(f"cannot read --verify-input {npz}: {type(exc).__name__}: {exc}",
                              "pass an .npz file written by numpy.savez with one array per model input.") from None
        names = list(data.files)
        arrays = []
        for i, spec in enumerate(specs):
            key = spec["name"] if spec["name"] in names else (f"input_{i}" if f"input_{i}" in names else None)
            if key is None and len(specs) == 1 and len(names) == 1:
                key = names[0]
            if key is None:
                raise KtdiffError(f"--verify-input {npz} has no array named {spec['name']!r} (it has "
                                  f"{', '.join(names) or 'none'})", "name the arrays like the Keras model's inputs.")
            arr = np.asarray(data[key])
            want = [d for d in spec["keras_shape"][1:]]
            if list(arr.shape[1:]) != want:
                raise KtdiffError(f"--verify-input array {key!r} has shape {tuple(arr.shape)}; the Keras model "
                                  f"takes (N, {', '.join(map(str, want))})",
                                  "give it in the Keras model's own layout (channels-last), with the batch first.")
            arrays.append(arr)
        return arrays
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        shape, dtype = [int(d) for d in spec["keras_shape"]], spec["keras_dtype"]
        kind = spec["kind"]  # verify.input_values
        if kind == "ones":
            arrays.append(np.ones(shape, dtype=dtype))
        elif kind == "zeros":
            arrays.append(np.zeros(shape, dtype=dtype))
        elif kind == "tokens":
            arrays.append(rng.integers(1, int(spec.get("high", 10)) + 1, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def _first(value: Any):
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, dict) and value:
        value = next(iter(value.values()))
    return value


def _to_numpy(value) -> np.ndarray | None:
    value = _first(value)
    if value is None or not hasattr(value, "shape"):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - a symbolic tensor or another type
        return None
    return arr.astype(np.float32) if arr.dtype != np.float32 else arr


def dump(request: dict) -> dict:
    """Run the Keras model; write inputs, every row's outputs, the final outputs and the weights.

    request: path, unsafe, inputs (verify.plan_inputs), seed, npz (or None), out_dir."""
    import keras  # noqa: PLC0415 - the Keras worker only

    inputs, seed, npz, out_dir = request["inputs"], request.get("seed", 0), request.get("npz"), request["out_dir"]
    model = request.get("model") or load_keras_model(request["path"], unsafe=request.get("unsafe", False))
    os.makedirs(out_dir, exist_ok=True)
    arrays = make_inputs(inputs, seed, npz)
    index: dict[str, Any] = {"inputs": [], "outputs": {}, "weights": {}, "final": [],
                             "made_from": {"inputs": inputs, "seed": seed, "npz": npz}}
    for i, arr in enumerate(arrays):
        name = os.path.join(out_dir, f"input_{i}.npy")
        np.save(name, arr)
        index["inputs"].append(name)

    counter = [0]

    def save(arr: np.ndarray) -> str:
        counter[0] += 1
        name = os.path.join(out_dir, f"a{counter[0]}.npy")
        np.save(name, np.ascontiguousarray(arr))
        return name

    calls: dict[str, int] = {}

    def wrap(layer, lid: str) -> None:
        original = layer.call
        separable = type(layer).__name__.startswith("SeparableConv")

        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            n = calls.get(lid, 0) + 1
            calls[lid] = n
            if separable:  # the depthwise half's output, as the port computes it in its own module
                mid = keras.ops.depthwise_conv(_first(args), layer.depthwise_kernel, strides=layer.strides,
                                               padding=layer.padding, data_format=layer.data_format,
                                               dilation_rate=layer.dilation_rate)
                arr = _to_numpy(mid)
                if arr is not None:
                    index["outputs"][f"{lid}/depthwise#{n}"] = save(arr)
                key = f"{lid}/pointwise#{n}"
            else:
                key = f"{lid}#{n}"
            arr = _to_numpy(out)
            if arr is not None:
                index["outputs"][key] = save(arr)
            return out

        layer.call = call

    for layer, lid, _parent, _depth, _prefix in iter_layers(model, keras):
        if type(layer).__name__ == "InputLayer":
            continue
        wrap(layer, lid)
        if layer.weights:
            weights = {name: save(np.asarray(w.numpy(), dtype=np.float32))
                       for w, name in zip(layer.weights, weight_names(layer))}
            if type(layer).__name__.startswith("SeparableConv"):
                index["weights"][lid + "/depthwise"] = {k: v for k, v in weights.items() if "depthwise" in k}
                index["weights"][lid + "/pointwise"] = {k: v for k, v in weights.items() if "depthwise" not in k}
            else:
                index["weights"][lid] = weights
    feed = arrays[0] if len(arrays) == 1 else arrays
    try:
        result = model(feed, training=False)
    except Exception as exc:  # noqa: BLE001 - the model does not run on this input
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise KtdiffError(f"the Keras model did not run on the verification input "
                          f"{', '.join(str(tuple(a.shape)) for a in arrays)}: {type(exc).__name__}: {first}",
                          "pass the input with --verify-input FILE.npz (Keras layout).") from None
    outs = result if isinstance(result, (list, tuple)) else list(result.values()) if isinstance(result, dict) \
        else [result]
    for out in outs:
        arr = _to_numpy(out)
        if arr is not None:
            index["final"].append(save(arr))
    return index
