"""Keras side: a .keras / .h5 file -> ModelSummary.

``inspect_keras_file`` checks the file and reads its input specs from the saved
config without importing Keras or TensorFlow (the torch worker needs the input
shape while the Keras worker is still importing TensorFlow).
``load_keras_summary`` imports Keras; it runs in the Keras worker process only.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any

from .errors import KtdiffError
from .summary import InputSpec, Layer, ModelSummary, Weight, compute_totals

KERAS_SUFFIXES = (".keras",)
H5_SUFFIXES = (".h5", ".hdf5")
SUPPORTED = "a Keras 3 .keras file or a legacy .h5/.hdf5 file"


# --------------------------------------------------------------------------- file checks

def check_keras_path(path: str) -> str:
    """Validate the file's existence and format; return 'keras' or 'h5'."""
    if not os.path.exists(path):
        raise KtdiffError(f"Keras model file not found: {path}",
                          "check the path; ktdiff reads " + SUPPORTED + ".")
    if os.path.isdir(path):
        hint = ("re-save it with model.save('model.keras') and compare that file"
                if os.path.exists(os.path.join(path, "saved_model.pb")) else
                "pass the model file itself, not a directory")
        kind = "a TensorFlow SavedModel directory" if "re-save" in hint else "a directory"
        raise KtdiffError(f"{path} is {kind}; ktdiff reads {SUPPORTED}", hint + ".")
    lower = path.lower()
    if lower.endswith(KERAS_SUFFIXES):
        if not zipfile.is_zipfile(path):
            raise KtdiffError(f"{path} is not a valid .keras file (not a zip archive; corrupt or truncated?)",
                              "re-save the model with model.save('model.keras').")
        try:
            with zipfile.ZipFile(path) as zf:
                _check_member_sizes(path, zf.infolist())  # before testzip(), which inflates every member
                bad = zf.testzip()
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise KtdiffError(f"{path} is a corrupt .keras archive ({exc})",
                              "re-save the model with model.save('model.keras').") from None
        if bad is not None or "config.json" not in names:
            what = f"member {bad} is corrupt" if bad else "it has no config.json"
            raise KtdiffError(f"{path} is not a valid .keras file ({what})",
                              "re-save the model with model.save('model.keras').")
        return "keras"
    if lower.endswith(H5_SUFFIXES):
        with open(path, "rb") as fh:
            magic = fh.read(8)
        if magic != b"\x89HDF\r\n\x1a\n":
            raise KtdiffError(f"{path} is not an HDF5 file (corrupt, or not saved by Keras)",
                              "re-save the model with model.save('model.keras').")
        return "h5"
    suffix = os.path.splitext(path)[1] or "(no extension)"
    hint = "re-save the model with model.save('model.keras')."
    if lower.endswith((".pt", ".pth", ".bin", ".safetensors")):
        hint = ("that looks like a PyTorch file: pass it as --torch-weights, and the Keras model "
                "file as the first argument.")
    raise KtdiffError(f"unsupported Keras model format {suffix} for {path}; ktdiff reads {SUPPORTED}", hint)


# What ktdiff inflates from a .keras archive: a real model's config.json is a few MB at most (a large
# transformer's is well under 1 MB), so anything above is refused before it is read, never inflated.
MAX_CONFIG_BYTES = 64 * 2 ** 20  # 64 MiB
MAX_COMPRESSION_RATIO = 1000  # a member this compressed and over MAX_CONFIG_BYTES is a zip bomb, not weights


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n:,} bytes"


def _config_too_large(path: str, size: str) -> KtdiffError:
    return KtdiffError(f"{path}'s config.json is {size} uncompressed (over the 64 MiB ktdiff reads)",
                       "a model saved by Keras has a config of a few MB at most: re-save it with "
                       "model.save('model.keras'), or check where the file came from.")


def _check_member_sizes(path: str, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive whose config.json, or any absurdly compressed member, is too large to read, from
    the sizes the zip's directory declares (nothing is inflated)."""
    for info in infos:
        if info.filename == "config.json" and info.file_size > MAX_CONFIG_BYTES:
            raise _config_too_large(path, _mb(info.file_size))
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > MAX_CONFIG_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise KtdiffError(f"{path}'s member {info.filename} is {_mb(info.file_size)} uncompressed from "
                              f"{_mb(info.compress_size)} (a compression ratio over {MAX_COMPRESSION_RATIO}:1; "
                              "ktdiff does not inflate it)",
                              "Keras does not save such members: re-save the model with model.save('model.keras'), "
                              "or check where the file came from.")


def read_keras_config(path: str) -> dict | None:
    """The saved model config (no Keras import), or None if it cannot be read. config.json is read only
    up to MAX_CONFIG_BYTES (check_keras_path refuses a larger one from the zip's directory)."""
    try:
        if check_keras_path(path) == "keras":
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("config.json")
                _check_member_sizes(path, [info])
                with zf.open(info) as fh:
                    raw = fh.read(MAX_CONFIG_BYTES + 1)
                if len(raw) > MAX_CONFIG_BYTES:  # a zip directory that understates the size
                    raise _config_too_large(path, f"over {_mb(MAX_CONFIG_BYTES)}")
                return json.loads(raw)
        import h5py  # light; no TensorFlow

        with h5py.File(path, "r") as fh:
            raw = fh.attrs.get("model_config")
        if raw is None:
            return None
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except KtdiffError:
        raise
    except Exception:
        return None


def input_specs_from_config(config: dict | None) -> list[InputSpec]:
    """Input shapes and dtypes from a saved config; [] if they cannot be found."""
    if not config:
        return []
    cfg = config.get("config", {})
    layers = cfg.get("layers", []) if isinstance(cfg, dict) else []
    specs: list[InputSpec] = []
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            lc = layer.get("config", {})
            shape = lc.get("batch_shape") or lc.get("batch_input_shape")
            if shape is not None:
                specs.append(InputSpec(lc.get("name", "input"), list(shape), _dtype_name(lc.get("dtype"))))
    if not specs and config.get("class_name") == "Sequential":
        # A Sequential built from a first layer with input_shape= (legacy h5)
        first = (layers[0].get("config", {}) if layers else {}) or {}
        shape = first.get("batch_input_shape") or first.get("batch_shape")
        if shape is not None:
            specs.append(InputSpec("input", list(shape), _dtype_name(first.get("dtype"))))
    order = cfg.get("input_layers") if isinstance(cfg, dict) else None
    if order and specs and config.get("class_name") != "Sequential":
        names = [entry[0] if isinstance(entry, list) else entry for entry in _as_list(order)]
        by_name = {s.name: s for s in specs}
        if all(isinstance(n, str) and n in by_name for n in names):
            specs = [by_name[n] for n in names]
    return specs


def _as_list(value: Any) -> list:
    # Keras 3 stores a single input as ["name", 0, 0], several as [["a", 0, 0], ...]
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value]
    return list(value)


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, dict):  # DTypePolicy
        dtype = dtype.get("config", {}).get("name", "float32")
    if not isinstance(dtype, str) or not dtype:
        return "float32"
    return "float32" if dtype in ("mixed_float16", "mixed_bfloat16") else dtype


# --------------------------------------------------------------------------- loading

def load_keras_model(path: str, *, unsafe: bool = False):
    """The Keras model in the file, loaded with compile=False and safe_mode on unless asked otherwise."""
    check_keras_path(path)
    import keras  # noqa: PLC0415 - imported only in the Keras worker

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - every load failure becomes one clear message
        raise _load_error(path, exc) from None
    if not isinstance(model, keras.Model):
        raise KtdiffError(f"{path} holds a {type(model).__name__}, not a Keras model",
                          "save a keras.Model (Sequential or Functional).")
    if not model.built:
        raise KtdiffError(f"the Keras model in {path} was saved unbuilt (no input shape)",
                          "build it (call it once or give it an Input) before saving.")
    return model


def load_keras_summary(path: str, *, unsafe: bool = False, model=None) -> ModelSummary:
    import keras  # noqa: PLC0415 - imported only in the Keras worker

    model = model if model is not None else load_keras_model(path, unsafe=unsafe)

    layers: list[Layer] = []
    inputs = [InputSpec(getattr(t, "name", f"input_{i}") or f"input_{i}",
                        _shape(t.shape), _dtype_name(str(t.dtype)))
              for i, t in enumerate(_listify(model.inputs))]
    if not any(type(lyr).__name__ == "InputLayer" for lyr in model.layers):
        for spec in inputs:  # Sequential: Keras hides the InputLayer; show the input anyway
            layers.append(Layer(id=spec.name, name=spec.name, type="InputLayer", kind="input",
                                output_shapes=[spec.shape]))
    _walk(model, layers, prefix="", parent=None, depth=0, keras=keras)
    layers = _split_separable(layers)

    summary = ModelSummary(
        framework="keras", source=path, name=model.name, class_name=type(model).__name__,
        layout="channels_last", framework_version=f"keras {keras.__version__} ({keras.backend.backend()})",
        inputs=inputs, output_shapes=[_shape(t.shape) for t in _listify(model.outputs)], layers=layers,
    )
    summary.totals = compute_totals(layers)
    return summary


def _load_error(path: str, exc: Exception) -> KtdiffError:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    if "safe_mode" in low or "lambda" in low and "unsafe" in low:
        return KtdiffError(f"Keras refused to load {path} in safe mode (it contains a Lambda layer or "
                           "other arbitrary code)",
                           "if you trust the file, pass --unsafe-keras-load.")
    missing = _missing_custom_classes(path, text)
    hint = "pass the module that defines it with --keras-import (a module name or a .py file)."
    if missing:
        named = ", ".join(name + (f" (registered as {registered})" if registered else "")
                          for name, registered in missing)
        if len(missing) > 1:
            return KtdiffError(f"{path} uses the custom Keras classes {named} that ktdiff cannot find",
                               hint.replace("defines it", "defines them"))
        return KtdiffError(f"{path} uses the custom Keras class {named} that ktdiff cannot find", hint)
    if "could not locate class" in low or "unknown layer" in low or "custom" in low and "object" in low:
        return KtdiffError(f"{path} uses a custom Keras class that ktdiff cannot find: {first}",
                           "register it with @keras.saving.register_keras_serializable and " + hint)
    return KtdiffError(f"Keras could not load {path}: {first}",
                       "check that the file was saved by Keras 3 (model.save('model.keras')) and is complete.")


_MISSING_PATTERNS = (  # Keras 3's "Could not locate class 'X'"; legacy .h5 loading's "Unknown layer: 'X'"
    r"could not locate (?:class|function) '([\w.>]+)'",
    r"unknown (?:layer|object|activation)[^'\"]*['\"]([\w.>]+)['\"]")


def _missing_custom_classes(path: str, text: str) -> list[tuple[str, str | None]]:
    """The custom classes a failed load could not find, as (class name, registered name or None): named in
    Keras's exception text (which, nested in a model's deserialisation, leads with `Functional`), then
    looked up in the saved config for their registered names; with no name in the text, the config's
    entries registered under a package (`package>Name`) that Keras does not know."""
    import re

    names, in_text = [], {}
    for pattern in _MISSING_PATTERNS:
        for found in re.findall(pattern, text, flags=re.IGNORECASE):
            name = found.rpartition(">")[2]  # legacy .h5 names the class by its registered name
            if name not in names and name not in ("Functional", "Sequential", "Model"):
                names.append(name)
                in_text[name] = found if ">" in found else None
    try:
        config = read_keras_config(path)
    except Exception:  # noqa: BLE001 - the config only adds registered names
        config = None
    entries: dict[str, str | None] = {}

    def walk(node):
        if isinstance(node, dict):
            cls, registered = node.get("class_name"), node.get("registered_name")
            if isinstance(cls, str) and isinstance(node.get("config"), dict) and entries.get(cls) is None:
                entries[cls] = registered if isinstance(registered, str) and ">" in registered else None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    if not names and entries:
        try:
            import keras  # noqa: PLC0415 - already imported in the Keras worker

            names = [cls for cls, registered in entries.items()
                     if registered and keras.saving.get_registered_object(registered) is None]
        except Exception:  # noqa: BLE001
            names = []
    return [(name, entries.get(name) or in_text.get(name)) for name in names]


def iter_layers(model, keras, prefix: str = "", parent: str | None = None, depth: int = 0):
    """(layer, row id, parent id, depth, prefix) for every row-making layer, in summary order."""
    for layer in model.layers:
        lid = prefix + layer.name
        if isinstance(layer, keras.Model):  # a nested model: its leaves are the rows
            yield from iter_layers(layer, keras, prefix=lid + "/", parent=lid, depth=depth + 1)
            continue
        if type(layer).__name__ == "InputLayer" and parent is not None:
            continue  # a nested model's own input is the outer layer's output
        yield layer, lid, parent, depth, prefix


def _walk(model, layers: list[Layer], prefix: str, parent: str | None, depth: int, keras) -> None:
    for layer, lid, parent_id, layer_depth, layer_prefix in iter_layers(model, keras, prefix, parent, depth):
        layers.append(_layer_row(layer, lid, parent_id, layer_depth, layer_prefix))


def _split_separable(layers: list[Layer]) -> list[Layer]:
    """A SeparableConv is two computations, a depthwise and a pointwise convolution, and a port writes
    it as two modules: give each its row (ids `name/depthwise`, `name/pointwise`), with its own weights,
    so that each pairs with its own torch module. The totals are unchanged."""
    out: list[Layer] = []
    renamed: dict[str, str] = {}
    for row in layers:
        dw_w = next((w for w in row.weights if w.name == "depthwise_kernel"), None)
        pw_w = next((w for w in row.weights if w.name == "pointwise_kernel"), None)
        if row.kind != "separable_conv" or dw_w is None or pw_w is None:
            out.append(row)
            continue
        hp = row.hparams
        rank, in_c, dm = hp.get("rank", 2), dw_w.shape[-2], dw_w.shape[-1]
        mid = in_c * dm
        mid_shapes = [s[:-1] + [mid] for s in row.output_shapes[:1]]
        common = dict(type=row.type, origin="layer", depth=row.depth, parent=row.parent)
        ones = [1] * rank
        dw = Layer(id=row.id + "/depthwise", name=row.name + "/depthwise", kind="depthwise_conv",
                   output_shapes=mid_shapes, input_shapes=row.input_shapes, inbound=row.inbound,
                   trainable_params=dw_w.numel if dw_w.trainable else 0,
                   non_trainable_params=0 if dw_w.trainable else dw_w.numel, weights=[dw_w],
                   hparams=dict(rank=rank, kernel_size=hp["kernel_size"], strides=hp["strides"],
                                padding=hp["padding"], dilation=hp["dilation"], groups=in_c, use_bias=False,
                                filters=mid, in_channels=in_c, depth_multiplier=dm, data_format=hp["data_format"],
                                separable_part="depthwise"), **common)
        rest = [w for w in row.weights if w is not dw_w]
        pw = Layer(id=row.id + "/pointwise", name=row.name + "/pointwise", kind="conv",
                   output_shapes=row.output_shapes, input_shapes=mid_shapes, inbound=[dw.id],
                   trainable_params=sum(w.numel for w in rest if w.trainable),
                   non_trainable_params=sum(w.numel for w in rest if not w.trainable), weights=rest,
                   hparams=dict(rank=rank, kernel_size=ones, strides=ones, padding="valid", dilation=ones, groups=1,
                                use_bias=hp["use_bias"], filters=hp.get("filters"), in_channels=mid,
                                activation=hp.get("activation", "linear"), data_format=hp["data_format"],
                                separable_part="pointwise"), **common)
        out += [dw, pw]
        renamed[row.id] = pw.id
    for row in out:  # the layers after a separable conv read its pointwise output
        row.inbound = [renamed.get(i, i) for i in row.inbound]
    return out


def keras_class(layer) -> str:
    """The nearest Keras class the layer is, by its class hierarchy: keras_hub's ReversibleEmbedding is an
    Embedding, a user's `class MyDense(keras.layers.Dense)` a Dense. Its own name when none is known."""
    for cls in type(layer).__mro__:
        if (getattr(cls, "__module__", "") or "").split(".")[0] == "keras" and _kind(cls.__name__) != "other":
            return cls.__name__
    return type(layer).__name__


def _layer_row(layer, lid: str, parent: str | None, depth: int, prefix: str) -> Layer:
    cls = keras_class(layer)
    weights = [Weight(name=name, shape=[int(d) for d in w.shape],
                      numel=int(math.prod(int(d) for d in w.shape)), trainable=bool(w.trainable),
                      dtype=str(getattr(w, "dtype", "float32")))
               for w, name in zip(layer.weights, weight_names(layer))]
    try:
        config = layer.get_config()
    except Exception:  # noqa: BLE001 - a custom layer without get_config
        config = {}
    kind = _kind(cls)
    row = Layer(
        id=lid, name=layer.name, type=type(layer).__name__, kind=kind, origin="layer", depth=depth, parent=parent,
        output_shapes=_tensor_shapes(layer, "output"), input_shapes=_tensor_shapes(layer, "input"),
        inbound=[prefix + n for n in _inbound(layer)],
        trainable_params=sum(w.numel for w in weights if w.trainable),
        non_trainable_params=sum(w.numel for w in weights if not w.trainable),
        weights=weights, hparams=_hparams(cls, kind, config, weights),
    )
    return row


def weight_names(layer) -> list[str]:
    """Each weight's path inside its layer: kernel, moving_mean, query/kernel (MultiHeadAttention),
    forward_lstm/lstm_cell/kernel (a Bidirectional's inner layers keep their own paths)."""
    names = []
    for w in layer.weights:
        path = getattr(w, "path", None) or w.name
        name = None
        for prefix in (getattr(layer, "path", None), layer.name):
            if prefix and path.startswith(prefix + "/"):
                name = path[len(prefix) + 1:]
                break
        names.append((name, path))
    short = [n if n is not None else p.split("/")[-1] for n, p in names]
    return [s if short.count(s) == 1 or n is not None else p for s, (n, p) in zip(short, names)]


def _listify(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _shape(shape) -> list[int | None]:
    return [None if d is None else int(d) for d in shape]


def _tensor_shapes(layer, attr: str) -> list[list[int | None]]:
    try:
        tensors = getattr(layer, attr)
    except Exception:  # noqa: BLE001 - a layer used several times or never called
        return []
    out = []
    for t in _listify(tensors):
        if hasattr(t, "shape"):
            out.append(_shape(t.shape))
    return out


def _inbound(layer) -> list[str]:
    names: list[str] = []
    try:
        nodes = layer._inbound_nodes  # noqa: SLF001 - Keras keeps the graph there
        for node in nodes[:1]:
            for t in getattr(node, "input_tensors", []) or []:
                hist = getattr(t, "_keras_history", None)
                op = getattr(hist, "operation", None) or (hist[0] if hist else None)
                if op is not None and op.name not in names:
                    names.append(op.name)
    except Exception:  # noqa: BLE001
        return []
    return names


KIND_BY_CLASS = {
    "InputLayer": "input",
    "Dense": "dense",
    "BatchNormalization": "batchnorm",
    "LayerNormalization": "layernorm",
    "GroupNormalization": "groupnorm",
    "Embedding": "embedding",
    "MultiHeadAttention": "attention",
    "Flatten": "flatten",
    "Reshape": "reshape",
    "Permute": "permute",
    "Identity": "identity",
    "Activation": "activation", "ReLU": "activation", "Softmax": "activation", "LeakyReLU": "activation",
    "ELU": "activation", "PReLU": "activation",
    "Add": "merge", "Concatenate": "merge", "Multiply": "merge", "Subtract": "merge", "Average": "merge",
    "Maximum": "merge", "Minimum": "merge",
}


def _kind(cls: str) -> str:
    if cls in KIND_BY_CLASS:
        return KIND_BY_CLASS[cls]
    if cls.startswith("SeparableConv"):
        return "separable_conv"
    if cls.startswith("DepthwiseConv"):
        return "depthwise_conv"
    if cls.startswith("Conv") and cls.endswith("Transpose"):
        return "conv_transpose"
    if cls.startswith("Conv"):
        return "conv"
    if cls in ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN"):
        return "rnn"
    if cls.startswith("Global") and "Pooling" in cls:
        return "global_pool"
    if "Pooling" in cls:
        return "pool"
    if "Dropout" in cls or cls in ("GaussianNoise", "GaussianDropout", "AlphaDropout"):
        return "dropout"
    if cls.startswith("UpSampling"):
        return "upsample"
    if cls.startswith("ZeroPadding"):
        return "pad"
    if cls.startswith("Cropping"):
        return "crop"
    return "other"


# Keras activation names -> the neutral vocabulary
ACTIVATION_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", "softmax_v2": "softmax"}


def canonical_activation(value: Any) -> str:
    if value is None:
        return "linear"
    if isinstance(value, dict):  # a serialized function
        value = value.get("config", value.get("class_name", "custom"))
        if isinstance(value, dict):
            value = value.get("name", "custom")
    name = str(value).lower()
    return ACTIVATION_ALIASES.get(name, name)


def _tuple(value: Any, rank: int) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)] * rank


def _hparams(cls: str, kind: str, cfg: dict, weights: list[Weight]) -> dict[str, Any]:
    hp: dict[str, Any] = {}
    shapes = {w.name: w.shape for w in weights}
    if "activation" in cfg and kind != "activation":
        hp["activation"] = canonical_activation(cfg["activation"])
    if kind in ("conv", "conv_transpose", "depthwise_conv", "separable_conv"):
        rank = len(cfg.get("kernel_size", ()) or ()) or 2
        hp.update(rank=rank, kernel_size=_tuple(cfg.get("kernel_size"), rank),
                  strides=_tuple(cfg.get("strides", 1), rank), padding=str(cfg.get("padding", "valid")).lower(),
                  dilation=_tuple(cfg.get("dilation_rate", 1), rank), groups=int(cfg.get("groups", 1) or 1),
                  use_bias=bool(cfg.get("use_bias", True)),
                  data_format=cfg.get("data_format") or "channels_last")
        if "filters" in cfg and cfg["filters"] is not None:
            hp["filters"] = int(cfg["filters"])
        if "depth_multiplier" in cfg:
            hp["depth_multiplier"] = int(cfg["depth_multiplier"])
        if kind == "conv_transpose":
            op = cfg.get("output_padding")
            hp["output_padding"] = None if op is None else _tuple(op, rank)
        kernel = shapes.get("kernel") or shapes.get("depthwise_kernel")
        if kernel and kind == "conv":
            hp["in_channels"] = kernel[-2] * hp["groups"]
        elif kernel and kind == "depthwise_conv":
            hp["in_channels"] = kernel[-2]
            hp["filters"] = kernel[-2] * kernel[-1]
    elif kind == "dense":
        hp.update(units=int(cfg.get("units", 0)), use_bias=bool(cfg.get("use_bias", True)))
        if "kernel" in shapes:
            hp["in_features"] = shapes["kernel"][0]
    elif kind == "batchnorm":
        axis = cfg.get("axis", -1)
        m = float(cfg.get("momentum", 0.99))
        hp.update(axis=axis[0] if isinstance(axis, list) and len(axis) == 1 else axis,
                  epsilon=float(cfg.get("epsilon", 1e-3)), momentum=m, moving_average_decay=m,
                  center=bool(cfg.get("center", True)), scale=bool(cfg.get("scale", True)),
                  track_running_stats=True, renorm=bool(cfg.get("renorm", False)))
        stats = shapes.get("moving_mean") or shapes.get("gamma") or shapes.get("beta")
        if stats:
            hp["num_features"] = stats[0]
    elif kind in ("layernorm", "groupnorm"):
        hp.update(epsilon=float(cfg.get("epsilon", 1e-3)), axis=cfg.get("axis", -1),
                  center=bool(cfg.get("center", True)), scale=bool(cfg.get("scale", True)))
        if "groups" in cfg:
            hp["groups"] = int(cfg["groups"])
    elif kind == "activation":
        hp.update(_activation_layer(cls, cfg))
    elif kind == "dropout":
        hp["rate"] = float(cfg.get("rate", cfg.get("stddev", 0.0)) or 0.0)
        noise = cfg.get("noise_shape")  # Dropout(noise_shape=(None, 1, 1, 1)) drops whole samples: stochastic depth
        hp["per_sample"] = isinstance(noise, (list, tuple)) and len(noise) > 1 and all(d == 1 for d in noise[1:])
    elif kind in ("pool", "global_pool"):
        hp["pool_type"] = "max" if "Max" in cls else "avg"
        if kind == "pool":
            rank = len(cfg.get("pool_size", ()) or ()) or 2
            hp.update(rank=rank, pool_size=_tuple(cfg.get("pool_size"), rank),
                      strides=_tuple(cfg.get("strides") or cfg.get("pool_size"), rank),
                      padding=str(cfg.get("padding", "valid")).lower())
        else:
            hp["keepdims"] = bool(cfg.get("keepdims", False))
        hp["data_format"] = cfg.get("data_format") or "channels_last"
    elif kind == "flatten":
        hp["data_format"] = cfg.get("data_format") or "channels_last"
    elif kind == "pad":
        hp.update(padding=_pad_pairs(cfg.get("padding", 1), int(cls[-2]) if cls[-2].isdigit() else 2),
                  mode="constant", value=0.0)
    elif kind == "merge":
        hp["op"] = {"Add": "add", "Concatenate": "concat", "Multiply": "multiply", "Subtract": "subtract",
                    "Average": "average", "Maximum": "maximum", "Minimum": "minimum"}.get(cls, cls.lower())
    elif kind == "upsample":
        rank = int(cls[-2]) if cls[-2].isdigit() else 2
        hp.update(size=_tuple(cfg.get("size", 2), rank), interpolation=str(cfg.get("interpolation", "nearest")))
    elif kind == "crop":
        hp["cropping"] = _pad_pairs(cfg.get("cropping", 0), int(cls[-2]) if cls[-2].isdigit() else 2)
    elif kind == "attention":
        hp.update(num_heads=int(cfg.get("num_heads", 1)), key_dim=int(cfg.get("key_dim", 0)),
                  value_dim=int(cfg.get("value_dim") or cfg.get("key_dim", 0)),
                  use_bias=bool(cfg.get("use_bias", True)))
        q = shapes.get("query/kernel")  # (E, H, key_dim)
        if q:
            hp["embed_dim"] = q[0]
    elif kind == "embedding":
        hp.update(input_dim=int(cfg.get("input_dim", 0)), output_dim=int(cfg.get("output_dim", 0)),
                  mask_zero=bool(cfg.get("mask_zero", False)))
    elif kind == "rnn":
        inner = cfg.get("layer", {}).get("config", {}) if cls == "Bidirectional" else cfg
        hp.update(cell=cls if cls != "Bidirectional" else cfg.get("layer", {}).get("class_name", "RNN"),
                  units=int(inner.get("units", 0)), use_bias=bool(inner.get("use_bias", True)),
                  return_sequences=bool(inner.get("return_sequences", False)),
                  bidirectional=cls == "Bidirectional", num_layers=1)
        if cls == "Bidirectional":
            hp["merge_mode"] = cfg.get("merge_mode", "concat")
        if "reset_after" in inner:
            hp["reset_after"] = bool(inner["reset_after"])
    return hp


def _pad_pairs(padding: Any, rank: int) -> list[list[int]]:
    """ZeroPadding's padding -> [[before, after], ...] per spatial dimension."""
    if isinstance(padding, int):
        return [[padding, padding]] * rank
    if rank == 1 and len(padding) == 2 and all(isinstance(p, int) for p in padding):
        return [[int(padding[0]), int(padding[1])]]
    return [[int(p), int(p)] if isinstance(p, int) else [int(p[0]), int(p[1])] for p in padding]


def _activation_layer(cls: str, cfg: dict) -> dict[str, Any]:
    if cls == "Activation":
        hp = {"activation": canonical_activation(cfg.get("activation"))}
        if hp["activation"] == "leaky_relu":
            hp["negative_slope"] = 0.2  # keras.activations.leaky_relu default
        return hp
    if cls == "ReLU":
        max_value = cfg.get("max_value")
        slope = float(cfg.get("negative_slope", 0.0) or 0.0)
        threshold = float(cfg.get("threshold", 0.0) or 0.0)
        if max_value is not None and float(max_value) == 6.0 and not slope and not threshold:
            return {"activation": "relu6"}
        if max_value is None and not threshold:
            return {"activation": "leaky_relu", "negative_slope": slope} if slope else {"activation": "relu"}
        return {"activation": "relu", "max_value": max_value, "negative_slope": slope, "threshold": threshold}
    if cls == "Softmax":
        return {"activation": "softmax", "axis": cfg.get("axis", -1)}
    if cls == "LeakyReLU":
        return {"activation": "leaky_relu", "negative_slope": float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))}
    if cls == "ELU":
        return {"activation": "elu", "alpha": float(cfg.get("alpha", 1.0))}
    if cls == "PReLU":
        return {"activation": "prelu"}
    return {"activation": cls.lower()}
