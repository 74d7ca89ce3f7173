"""PyTorch side: a module spec -> ModelSummary.

The walk runs one forward pass in ``eval()`` mode under ``no_grad`` with global
module hooks (execution order, shapes) and a ``TorchFunctionMode`` that records
the functional ops a container's ``forward`` calls between its modules
(``F.relu``, ``torch.flatten``, ``x.softmax(...)``): forward hooks never see
those, and a missing or extra activation is exactly what a port gets wrong.
Parameters and buffers are read from the modules themselves. Runs in the torch
worker process only.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import sys
from typing import Any

from .errors import KtdiffError
from .summary import Buffer, InputSpec, Layer, ModelSummary, Weight, compute_totals

SPEC_FORMS = "package.module:Name or path/to/file.py:Name"
SUPPRESSION = re.compile(r"ktdiff:\s*ignore\[([A-Za-z0-9_, ]+)\]\s*(.*)")


# --------------------------------------------------------------------------- the user's object

def parse_spec(spec: str) -> tuple[str, str]:
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        raise KtdiffError(f"bad PyTorch module spec {spec!r}: expected {SPEC_FORMS}",
                          "e.g. mypkg.models:Net or models/port.py:Net (Name: an nn.Module subclass, "
                          "a factory function or a module instance).")
    return target, name


def check_spec(spec: str) -> None:
    """The spec's form and, for a .py path, that the file exists: no import, so the CLI checks it first."""
    target, _ = parse_spec(spec)
    if _is_file_target(target):
        _require_file(target)


def _require_file(target: str) -> None:
    if not os.path.isfile(target):
        raise KtdiffError(f"PyTorch module file not found: {target}",
                          f"check the path; the spec form is {SPEC_FORMS}.")


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def import_target(target: str):
    """Import the user's module from a dotted name or a .py path."""
    from .workers import set_stage

    set_stage("user-import", target)  # a worker that dies from here on is blamed on the user's module
    if _is_file_target(target):
        _require_file(target)
        path = os.path.abspath(target)
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # sibling imports work as in `python file.py`
        modname = "ktdiff_user_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        runner = lambda: spec.loader.exec_module(module)  # noqa: E731
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would
        module = None
        runner = lambda: importlib.import_module(target)  # noqa: E731
    try:
        result = runner()
    except KtdiffError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == target or (exc.name and target.startswith(exc.name + ".")) and module is None:
            raise KtdiffError(f"no Python module named {target!r}",
                              "run ktdiff from the directory that contains the package, set PYTHONPATH, "
                              f"or pass a file path ({SPEC_FORMS}).") from None
        raise _user_error(f"importing {target} failed", exc,
                          "fix the import in your module or install what it needs.") from None
    except BaseException as exc:  # noqa: BLE001 - the user's module raised while importing
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _user_error(f"importing {target} failed", exc, "fix the error in your module.") from None
    return module if module is not None else result


def _user_error(what: str, exc: BaseException, hint: str) -> KtdiffError:
    import traceback

    text = str(exc).strip().splitlines()
    frame = None if isinstance(exc, SyntaxError) else _user_frame(traceback.extract_tb(exc.__traceback__))
    where = f" ({os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""  # a SyntaxError names its own
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return KtdiffError(f"{what}: {type(exc).__name__}: {text[0] if text else ''}{where}".rstrip(": "),
                       hint, detail)


def _user_frame(frames):
    """The innermost frame in the user's code: not ktdiff's, torch's, the standard library's or importlib's."""
    import sysconfig

    skip = [os.path.dirname(os.path.abspath(__file__)), sysconfig.get_paths()["stdlib"]]
    if "torch" in sys.modules:
        skip.append(os.path.dirname(sys.modules["torch"].__file__))
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if not frame.filename.startswith("<") and not any(path.startswith(d + os.sep) for d in skip):
            return frame
    return None


def build_module(spec: str, kwargs: dict[str, Any] | None = None):
    import torch.nn as nn

    from .workers import set_stage

    target, name = parse_spec(spec)
    module = import_target(target)
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            found = [k for k, v in vars(module).items()
                     if not k.startswith("_") and (isinstance(v, nn.Module) or
                                                   (inspect.isclass(v) and issubclass(v, nn.Module)
                                                    and v.__module__ == getattr(module, "__name__", None)))]
            hint = ("it defines: " + ", ".join(sorted(found)) + "." if found
                    else "check the name after the colon.")
            raise KtdiffError(f"{target} has no attribute {name!r}", hint)
        obj = getattr(obj, part)
    kwargs = kwargs or {}
    if isinstance(obj, nn.Module):
        if kwargs:
            raise KtdiffError(f"{spec} is a module instance; --torch-kwargs applies to a class or a factory",
                              "drop --torch-kwargs, or point the spec at the class.")
        set_stage("user-forward", spec)
        return obj, type(obj)
    if not callable(obj):
        what = type(obj).__name__
        raise KtdiffError(f"{spec} is {'an' if what[0] in 'aeiouAEIOU' else 'a'} {what}, "
                          "not an nn.Module subclass, factory or instance",
                          f"point the spec at the model ({SPEC_FORMS}).")
    is_class = inspect.isclass(obj)
    if is_class and not issubclass(obj, nn.Module):
        raise KtdiffError(f"{spec} is the class {obj.__name__}, which is not an nn.Module subclass",
                          "point the spec at the model class.")
    try:
        inspect.signature(obj).bind(**kwargs)
    except TypeError as exc:
        missing = _required_params(obj, kwargs)
        accepted = _keyword_params(obj)
        unknown = [k for k in kwargs if accepted is not None and k not in accepted]
        if missing:
            what = "needs arguments: " + ", ".join(missing)
            if unknown:
                what += "; it does not take " + ", ".join(unknown)
            example = json.dumps({**{k: v for k, v in kwargs.items() if k not in unknown},
                                  **{m: "..." for m in missing}})
            hint = f"pass them as JSON with --torch-kwargs '{example}'."
        elif unknown:
            what = "does not take " + ", ".join(unknown)
            hint = ("its arguments are " + ", ".join(accepted) if accepted else "it takes no arguments") + \
                   "; fix --torch-kwargs."
        else:
            what, hint = f"does not accept these arguments ({exc})", "fix --torch-kwargs."
        raise KtdiffError(f"{name}() {what}", hint) from None
    except ValueError:
        pass  # no signature (a builtin): just try it
    set_stage("user-construct", f"{name}()")
    try:
        built = obj(**kwargs)
    except BaseException as exc:  # noqa: BLE001 - the user's constructor (a SystemExit too)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _user_error(f"{name}(**{kwargs}) raised" if kwargs else f"{name}() raised", exc,
                          "fix the constructor, or pass its arguments with --torch-kwargs '{...}'.") from None
    if not isinstance(built, nn.Module):
        raise KtdiffError(f"{name}() returned a {type(built).__name__}, not an nn.Module",
                          "point the spec at a function that returns the model.")
    set_stage("user-forward", spec)  # what runs the user's code next: forward() (loading weights is torch's)
    return built, obj


def _required_params(obj, kwargs) -> list[str]:
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.default is inspect.Parameter.empty and p.name not in kwargs
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _keyword_params(obj) -> list[str] | None:
    """The names a call accepts as keywords; None when it takes **kwargs (or has no signature)."""
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def find_suppressions(*objs) -> dict[str, str]:
    """`ktdiff: ignore[CODE, ...] reason` comments in the class or factory source."""
    found: dict[str, str] = {}
    for obj in objs:
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):
            continue
        for match in SUPPRESSION.finditer(source):
            reason = match.group(2).strip().strip('"').strip()
            for code in match.group(1).split(","):
                if code.strip():
                    found[code.strip().upper()] = reason
    return found


def _user_classes(cls) -> list:
    """The model's class and the user's base classes (a subclass keeps its base's documented suppressions)."""
    return [c for c in cls.__mro__ if c is not object and not c.__module__.startswith("torch.")]


def load_weights(model, path: str, unsafe: bool = False) -> None:
    import pickle

    import torch

    if not os.path.isfile(path):
        raise KtdiffError(f"PyTorch weights file not found: {path}", "check the --torch-weights path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as exc:
        if unsafe or not _is_torch_file(path):
            raise KtdiffError(f"cannot read {path} as a PyTorch file (not a torch.save archive or pickle)",
                              "pass a file written by torch.save(model.state_dict(), path).") from None
        raise KtdiffError(f"{path} holds pickled objects that torch.load(weights_only=True) refuses "
                          f"({_refusal_reason(exc)})",
                          "save a plain state_dict (torch.save(model.state_dict(), path)), or, if you "
                          "trust the file, pass --unsafe-torch-load.") from None
    except Exception as exc:  # noqa: BLE001
        raise KtdiffError(f"cannot read {path} as a PyTorch file: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                          "pass a file written by torch.save(model.state_dict(), path).") from None
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise KtdiffError(f"{path} is not a state_dict (a dict of tensors)",
                          "save it with torch.save(model.state_dict(), path).")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip().rstrip(".") for ln in str(exc).splitlines()[1:] if ln.strip()]
        raise KtdiffError(f"{path} does not fit the module: " + ("; ".join(lines)[:400] or str(exc)[:400]),
                          "pass the weights saved from this same module class (and --torch-kwargs).") from None


def _is_torch_file(path: str) -> bool:
    """torch.save writes a zip archive (or, legacy, a pickle: protocol 2+ starts with 0x80)."""
    import zipfile

    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80" or zipfile.is_zipfile(path)


def _refusal_reason(exc: Exception) -> str:
    """The one sentence of torch's long weights_only message that names what was refused."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    _, _, after = text.partition("WeightsUnpickler error:")
    lines = [ln.strip() for ln in (after or text).splitlines() if ln.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else "an object that is not a tensor"
    return first[:160]


# --------------------------------------------------------------------------- inputs

FIRST_LAYER_CHANNELS_FIRST = ("conv", "conv_transpose", "batchnorm", "pool", "global_pool", "upsample", "pad",
                              "groupnorm")


def derive_inputs(model, keras_inputs: list[dict], shapes: list[list[int]] | None,
                  dtype: str | None) -> tuple[list[list[int]], list[str], str]:
    """The torch input shapes and dtypes, and a sentence saying where they came from."""
    from .errors import check_input_size

    if shapes:
        for shape in shapes:
            check_input_size(shape, "--input-shape " + ",".join(map(str, shape)))
        # a shape given by hand keeps the Keras input's dtype (int32 token ids stay integers)
        dtypes = [dtype or (keras_inputs[i]["dtype"] if i < len(keras_inputs) else "float32")
                  for i in range(len(shapes))]
        return [list(s) for s in shapes], [_torch_dtype_name(d) for d in dtypes], "given with --input-shape"
    if not keras_inputs:
        raise KtdiffError("cannot infer the PyTorch input: the Keras model declares no input shape",
                          "pass it with --input-shape, e.g. --input-shape 1,3,224,224.")
    first_kind = None
    for mod in model.modules():
        if not any(True for _ in mod.children()):
            kind = module_kind(mod)
            if kind not in ("activation", "dropout", "identity", "flatten", "other") or any(
                    True for _ in mod.parameters(recurse=False)):
                first_kind = kind
                break
    channels_first = first_kind in FIRST_LAYER_CHANNELS_FIRST
    out_shapes, out_dtypes, notes = [], [], []
    for spec in keras_inputs:
        shape = list(spec["shape"])
        keras_shape = "(" + ", ".join("None" if d is None else str(d) for d in spec["shape"]) + ")"
        chosen = representative_shape(shape, spec.get("dtype", "float32"))
        if chosen is None:
            raise KtdiffError(f"cannot infer the PyTorch input: the Keras input {spec['name']} has unknown "
                              f"dimensions {tuple(shape)}", f"pass it with --input-shape, e.g. "
                              f"{_shape_hint(shape, spec.get('dtype', 'float32'), channels_first)}.")
        sized = ""
        if chosen != shape[1:]:
            sized = (f", its unknown dimensions set to {'×'.join(str(d) for d, k in zip(chosen, shape[1:]) if k is None)}"
                     " (a representative size; --input-shape chooses another),")
        shape = [1] + [int(d) for d in chosen]
        check_input_size(shape, f"the input derived from the Keras input {spec['name']} {keras_shape}")
        if channels_first and len(shape) >= 3:
            shape = [shape[0], shape[-1]] + shape[1:-1]
            notes.append(f"Keras input {keras_shape}{sized} moved channels-last to channels-first")
        else:
            notes.append(f"Keras input {keras_shape}{sized} with batch 1")
        out_shapes.append(shape)
        out_dtypes.append(_torch_dtype_name(spec["dtype"]))
    return out_shapes, out_dtypes, "derived from the " + "; ".join(notes)


def representative_shape(shape: list, dtype: str) -> list[int] | None:
    """The Keras input's dimensions after the batch, unknown ones given a representative size: 224 for the
    spatial dimensions of an image (N, H, W, C), 16 for the steps of a sequence or a batch of tokens; None
    when a feature or channel dimension is unknown (nothing to guess it from)."""
    dims = list(shape[1:])
    if None not in dims:
        return [int(d) for d in dims]
    if dims[-1] is None and not (len(dims) == 1 and str(dtype).startswith(("int", "uint"))):
        return None  # the features/channels: the port's first layer decides them
    size = 224 if len(dims) == 3 else 16
    return [size if d is None else int(d) for d in dims]


def _shape_hint(shape: list, dtype: str, channels_first: bool) -> str:
    """--input-shape for this kind of input: token ids (1,16), a sequence (1,16,F), an image (1,3,224,224)."""
    dims = shape[1:]
    if len(dims) == 1:
        return "--input-shape 1,16" if str(dtype).startswith(("int", "uint")) else "--input-shape 1,64"
    if len(dims) == 2:
        return "--input-shape 1,16,64 (batch, steps, features)"
    return "--input-shape 1,3,224,224" if channels_first else "--input-shape 1,224,224,3"


def _torch_dtype_name(dtype: str) -> str:
    d = str(dtype).replace("torch.", "")
    if d.startswith(("int", "uint")):
        return "int64"  # token ids: torch embeddings want long tensors
    if d == "bool":
        return "bool"
    return d if d in ("float16", "bfloat16", "float64") else "float32"


def _make_input(shape: list[int], dtype: str):
    import torch

    from .errors import check_input_size

    check_input_size(shape, "the input " + ",".join(map(str, shape)))
    try:
        if dtype == "int64":
            return torch.zeros(shape, dtype=torch.long)
        if dtype == "bool":
            return torch.ones(shape, dtype=torch.bool)
        gen = torch.Generator().manual_seed(0)
        return torch.rand(shape, generator=gen, dtype=getattr(torch, dtype))
    except (RuntimeError, MemoryError) as exc:  # the machine cannot hold it
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise KtdiffError(f"cannot allocate the PyTorch input {tuple(shape)} {dtype}: {first}",
                          "pass a smaller --input-shape (batch 1 is enough for a summary).") from None


# --------------------------------------------------------------------------- module vocabulary

ACTIVATION_MODULES = {
    "ReLU": "relu", "ReLU6": "relu6", "LeakyReLU": "leaky_relu", "GELU": "gelu", "Sigmoid": "sigmoid",
    "Tanh": "tanh", "Softmax": "softmax", "LogSoftmax": "log_softmax", "SiLU": "silu", "ELU": "elu",
    "SELU": "selu", "Softplus": "softplus", "Hardsigmoid": "hard_sigmoid", "Hardswish": "hard_silu",
    "Mish": "mish", "PReLU": "prelu", "Softsign": "softsign", "Hardtanh": "hard_tanh", "Threshold": "threshold",
}


CONTAINER_CLASSES = ("Module", "Sequential", "ModuleList", "ModuleDict")


def torch_class(mod) -> str:
    """The nearest torch.nn class the module is: its own, or a base class (timm's BatchNormAct2d is a
    BatchNorm2d, timm's Conv2dSame a Conv2d, a user's `class MyConv(nn.Conv2d)` a Conv2d)."""
    for cls in type(mod).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module == "torch.nn" or module.startswith("torch.nn."):
            return cls.__name__
    return type(mod).__name__


def module_kind(mod) -> str:
    """The layer family, recognised by what the module is (its torch.nn class hierarchy), not its name."""
    cls = torch_class(mod)
    if cls in ACTIVATION_MODULES:
        return "activation"
    if re.fullmatch(r"Conv[123]d", cls):
        return "conv"
    if re.fullmatch(r"ConvTranspose[123]d", cls):
        return "conv_transpose"
    if cls in ("Linear", "LazyLinear"):
        return "dense"
    if re.fullmatch(r"(Lazy)?BatchNorm[123]d|SyncBatchNorm", cls):
        return "batchnorm"
    if cls in ("LayerNorm", "RMSNorm"):
        return "layernorm"
    if cls == "GroupNorm":
        return "groupnorm"
    if cls in ("Embedding", "EmbeddingBag"):
        return "embedding"
    if cls in ("LSTM", "GRU", "RNN"):
        return "rnn"
    if cls == "MultiheadAttention":
        return "attention"
    if cls == "Flatten":
        return "flatten"
    if cls == "Unflatten":
        return "reshape"
    if "Dropout" in cls:
        return "dropout"
    if re.fullmatch(r"Adaptive(Avg|Max)Pool[123]d", cls):
        size = mod.output_size
        sizes = size if isinstance(size, (tuple, list)) else [size]
        return "global_pool" if all(s == 1 for s in sizes) else "pool"
    if re.fullmatch(r"(Max|Avg|LP)Pool[123]d", cls):
        return "pool"
    if cls in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"):
        return "upsample"
    if re.fullmatch(r"(Zero|Constant|Reflection|Replication|Circular)Pad[123]d", cls):
        return "pad"
    if cls == "Identity":
        return "identity"
    if type(mod).__name__ in ("DropPath", "StochasticDepth"):  # timm, torchvision: dropout of whole samples
        return "dropout"
    return "other"


def _ints(value, rank: int) -> list[int]:
    if isinstance(value, (tuple, list)):
        return [int(v) for v in value]
    return [int(value)] * rank


def pad_pairs(amounts) -> list[list[int]]:
    """torch pad amounts (last dimension first: left, right, top, bottom) -> [[before, after], ...]
    per spatial dimension, first dimension first (top/bottom, then left/right), as Keras orders them."""
    flat = [int(a) for a in (amounts if isinstance(amounts, (tuple, list)) else [amounts])]
    pairs = [flat[i:i + 2] for i in range(0, len(flat), 2)]
    return [list(p) for p in reversed(pairs)]


def module_hparams(mod, kind: str) -> dict[str, Any]:
    cls = torch_class(mod)
    if kind in ("conv", "conv_transpose"):
        rank = len(mod.kernel_size)
        padding = mod.padding if isinstance(mod.padding, str) else _ints(mod.padding, rank)
        hp = dict(rank=rank, filters=mod.out_channels, in_channels=mod.in_channels,
                  kernel_size=_ints(mod.kernel_size, rank), strides=_ints(mod.stride, rank), padding=padding,
                  padding_mode=mod.padding_mode, dilation=_ints(mod.dilation, rank), groups=mod.groups,
                  use_bias=mod.bias is not None, data_format="channels_first")
        if kind == "conv_transpose":
            hp["output_padding"] = _ints(mod.output_padding, rank)
        return hp
    if kind == "dense":
        return dict(units=mod.out_features, in_features=mod.in_features, use_bias=mod.bias is not None)
    if kind == "batchnorm":
        p = mod.momentum
        return dict(axis=1, epsilon=float(mod.eps), momentum=p,
                    moving_average_decay=None if p is None else round(1.0 - float(p), 12),
                    center=mod.bias is not None, scale=mod.weight is not None,
                    track_running_stats=bool(mod.track_running_stats), num_features=mod.num_features)
    if kind == "layernorm":
        eps = getattr(mod, "eps", None)
        return dict(epsilon=None if eps is None else float(eps), normalized_shape=list(mod.normalized_shape),
                    center=getattr(mod, "bias", None) is not None, scale=getattr(mod, "weight", None) is not None,
                    rms=cls == "RMSNorm")
    if kind == "groupnorm":
        return dict(epsilon=float(mod.eps), groups=mod.num_groups, center=mod.affine, scale=mod.affine)
    if kind == "activation":
        hp: dict[str, Any] = {"activation": ACTIVATION_MODULES[cls]}
        if cls == "GELU" and getattr(mod, "approximate", "none") == "tanh":
            hp["activation"] = "gelu_tanh"
        if cls == "LeakyReLU":
            hp["negative_slope"] = float(mod.negative_slope)
        if cls in ("Softmax", "LogSoftmax"):
            hp["axis"] = mod.dim
        if cls == "ELU":
            hp["alpha"] = float(mod.alpha)
        return hp
    if kind == "upsample":
        return _upsample_hparams(getattr(mod, "mode", "nearest"), getattr(mod, "align_corners", None),
                                 getattr(mod, "scale_factor", None), getattr(mod, "size", None))
    if kind == "dropout":
        rate = getattr(mod, "p", getattr(mod, "drop_prob", 0.0))
        return {"rate": float(rate or 0.0), "per_sample": type(mod).__name__ in ("DropPath", "StochasticDepth")}
    if kind == "flatten":
        return {"start_dim": mod.start_dim, "end_dim": mod.end_dim}
    if kind == "pool":
        rank = int(cls[-2]) if cls[-2].isdigit() else 2
        if cls.startswith("Adaptive"):
            return {"pool_type": "max" if "Max" in cls else "avg", "rank": rank,
                    "output_size": _ints(mod.output_size, rank)}
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        hp = {"pool_type": "max" if "Max" in cls else "avg", "rank": rank,
              "pool_size": _ints(mod.kernel_size, rank), "strides": _ints(stride, rank),
              "padding": _ints(mod.padding, rank), "ceil_mode": bool(mod.ceil_mode)}
        if hasattr(mod, "count_include_pad"):
            hp["count_include_pad"] = bool(mod.count_include_pad)
        return hp
    if kind == "global_pool":
        return {"pool_type": "max" if "Max" in cls else "avg", "keepdims": True}
    if kind == "pad":
        mode = {"Zero": "constant", "Constant": "constant", "Reflection": "reflect", "Replication": "replicate",
                "Circular": "circular"}[re.match(r"[A-Z][a-z]+", cls).group(0)]
        return {"padding": pad_pairs(mod.padding), "mode": mode, "value": float(getattr(mod, "value", 0.0) or 0.0)}
    if kind == "embedding":
        return {"input_dim": mod.num_embeddings, "output_dim": mod.embedding_dim, "padding_idx": mod.padding_idx}
    if kind == "rnn":
        return {"cell": {"RNN": "SimpleRNN"}.get(cls, cls), "units": mod.hidden_size, "num_layers": mod.num_layers,
                "bidirectional": bool(mod.bidirectional), "use_bias": bool(mod.bias),
                "batch_first": bool(mod.batch_first)}
    if kind == "attention":
        return {"embed_dim": mod.embed_dim, "num_heads": mod.num_heads, "batch_first": bool(mod.batch_first),
                "use_bias": mod.in_proj_bias is not None, "key_dim": mod.head_dim, "value_dim": mod.head_dim,
                "separate_projections": not mod._qkv_same_embed_dim}  # noqa: SLF001
    return {}


# Functional ops that a container's forward may call between modules.
FUNCTION_KINDS: dict[str, tuple[str, str | None]] = {
    # name: (kind, activation)
    "relu": ("activation", "relu"), "relu_": ("activation", "relu"), "relu6": ("activation", "relu6"),
    "leaky_relu": ("activation", "leaky_relu"), "leaky_relu_": ("activation", "leaky_relu"),
    "gelu": ("activation", "gelu"), "sigmoid": ("activation", "sigmoid"), "tanh": ("activation", "tanh"),
    "softmax": ("activation", "softmax"), "log_softmax": ("activation", "log_softmax"),
    "silu": ("activation", "silu"), "elu": ("activation", "elu"), "selu": ("activation", "selu"),
    "softplus": ("activation", "softplus"), "hardswish": ("activation", "hard_silu"),
    "hardsigmoid": ("activation", "hard_sigmoid"), "mish": ("activation", "mish"),
    "flatten": ("flatten", None), "dropout": ("dropout", None), "dropout2d": ("dropout", None),
    "max_pool1d": ("pool", None), "max_pool2d": ("pool", None), "max_pool3d": ("pool", None),
    "avg_pool1d": ("pool", None), "avg_pool2d": ("pool", None), "avg_pool3d": ("pool", None),
    "adaptive_avg_pool1d": ("pool", None), "adaptive_avg_pool2d": ("pool", None),
    "adaptive_max_pool2d": ("pool", None), "interpolate": ("upsample", None), "pad": ("pad", None),
    "mul": ("merge", None), "__mul__": ("merge", None), "multiply": ("merge", None), "mul_": ("merge", None),
    "__imul__": ("merge", None),
    "cat": ("merge", None), "concat": ("merge", None), "add": ("merge", None), "__add__": ("merge", None),
    "__iadd__": ("merge", None), "add_": ("merge", None), "mean": ("global_pool", None),
    "view": ("reshape", None), "reshape": ("reshape", None), "__getitem__": ("crop", None),
}


# positional parameters after the input, as torch.nn.functional declares them
_POOL_PARAMS = {
    "max": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
}


def _functional_pool_args(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    """F.max_pool2d(x, 2) / F.avg_pool2d(x, 3, 2, 1) -> the same hyperparameters as the modules'."""
    given = dict(zip(_POOL_PARAMS["avg" if name.startswith("avg") else "max"], args[1:]))
    given.update(kwargs)
    rank = int(name[-2]) if name[-2].isdigit() else 2
    if "kernel_size" not in given:
        return {}
    stride = given.get("stride") or given["kernel_size"]
    hp: dict[str, Any] = {"rank": rank, "pool_size": _ints(given["kernel_size"], rank), "strides": _ints(stride, rank),
                          "padding": _ints(given.get("padding", 0), rank), "ceil_mode": bool(given.get("ceil_mode"))}
    if name.startswith("avg"):
        hp["count_include_pad"] = bool(given.get("count_include_pad", True))
    return hp


def _upsample_hparams(mode, align_corners, scale_factor, size) -> dict[str, Any]:
    hp: dict[str, Any] = {"mode": str(mode), "align_corners": bool(align_corners)}
    if scale_factor is not None:
        sf = scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor]
        hp["scale_factor"] = [float(f) for f in sf]
    if size is not None:
        hp["size"] = list(size) if isinstance(size, (tuple, list)) else [size]
    return hp


def _index_text(index) -> str:
    """[:, -1] for (slice(None), -1), as it was written."""
    def one(i):
        if isinstance(i, slice):
            return ":".join("" if v is None else str(v) for v in (i.start, i.stop)) + \
                (f":{i.step}" if i.step is not None else "")
        return "..." if i is Ellipsis else str(i)
    items = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(one(i) for i in items) + "]"


def _is_last_step(index) -> bool:
    """out[:, -1] (or out[:, -1, :]): the last time step of a batch-first sequence."""
    items = index if isinstance(index, tuple) else (index,)
    return len(items) >= 2 and items[0] == slice(None) and items[1] == -1 and \
        all(i == slice(None) for i in items[2:])


def _spatial_crop(args: tuple, in_shapes: list, out_shapes: list) -> list[list[int]] | None:
    """[[start, end], ...] per spatial dimension (after N, C) when x[index] only trims them; else None."""
    if len(args) < 2 or not in_shapes or not out_shapes or len(in_shapes[0]) < 3:
        return None
    shape, index = in_shapes[0], args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis for i in index):
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    if len(index) > len(shape) or not all(isinstance(i, slice) for i in index):
        return None
    index = index + (slice(None),) * (len(shape) - len(index))
    crops = []
    for dim, (size, sl) in enumerate(zip(shape, index)):
        if sl.step not in (None, 1):
            return None
        start, stop, _ = sl.indices(size)
        before, after = start, size - max(stop, start)
        if dim < 2 and (before or after):
            return None
        if dim >= 2:
            crops.append([before, after])
    if not any(b or a for b, a in crops) or len(out_shapes[0]) != len(shape):
        return None
    return crops


def _global_mean(args: tuple, kwargs: dict, in_shapes: list) -> str | None:
    """'channels_first' / 'channels_last' when x.mean(dims) averages every axis but the batch and one
    feature axis (the channels after the batch, or the last axis); None otherwise."""
    if not in_shapes or len(in_shapes[0]) < 3:
        return None
    rank = len(in_shapes[0])
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dims is None:
        return None
    dims = [dims] if isinstance(dims, int) else list(dims)
    reduced = sorted({d % rank for d in dims if isinstance(d, int)})
    if 0 in reduced or len(reduced) != rank - 2:
        return None
    kept = [d for d in range(1, rank) if d not in reduced]
    return "channels_first" if kept == [1] else "channels_last" if kept == [rank - 1] else None


def _function_name(func) -> str:
    return getattr(func, "__name__", None) or str(func)


def _function_label(func, name: str) -> str:
    """F.relu, torch.softmax or x.view, as the user wrote it."""
    module = getattr(func, "__module__", None) or ""
    if "Tensor" in (getattr(func, "__qualname__", "") or "") or module.startswith("torch._tensor"):
        return f"x.{name}"
    if module.startswith("torch.nn.functional"):
        return f"F.{name}"
    return f"torch.{name}"


# --------------------------------------------------------------------------- the walk

def tensors_in(obj) -> list:
    """The tensors in a module's or op's arguments or results, in order: nested lists, tuples and dicts
    (transformers' ModelOutput is a dict) are opened."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in tensors_in(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in tensors_in(item)]
    return []


def _tensor_shapes(obj) -> list[list[int]]:
    return [list(t.shape) for t in tensors_in(obj)]


def _is_opaque_leaf(mod) -> bool:
    return not any(True for _ in mod.children()) or torch_class(mod) in ("MultiheadAttention",)


def _computes_itself(mod) -> bool:
    """A known layer that also has children: timm's BatchNormAct2d is a BatchNorm2d whose forward
    normalises with its own weights, then calls its `drop` and `act` children. It gets a row for its
    own computation (its own tensors), and its children get rows after it, as Keras's
    BatchNormalization + Activation do."""
    if _is_opaque_leaf(mod) or module_kind(mod) in ("other", "container", "identity"):
        return False
    return any(True for _ in mod.parameters(recurse=False)) or any(True for _ in mod.buffers(recurse=False))


def _recognise_by_signature(mod, row: Layer) -> None:
    """A module of an unknown class that holds exactly a 2-D weight (and a 1-D bias) mapping the input's
    last dimension to the output's is a linear layer: torch's (out, in) layout, or (in, out) as
    transformers' Conv1D keeps it."""
    params = dict(mod.named_parameters(recurse=False))
    if any(True for _ in mod.children()) or not row.input_shapes or not row.output_shapes:
        return
    w, b = params.get("weight"), params.get("bias")
    if w is None or w.dim() != 2 or set(params) - {"weight", "bias"} or (b is not None and b.dim() != 1):
        return
    n_in, n_out = row.input_shapes[0][-1], row.output_shapes[0][-1]
    if list(w.shape) == [n_out, n_in]:
        layout = "out_in"
    elif list(w.shape) == [n_in, n_out]:
        layout = "in_out"
    else:
        return
    if b is not None and b.shape[0] != n_out:
        return
    row.kind = "dense"
    row.hparams.update(units=n_out, in_features=n_in, use_bias=b is not None, weight_layout=layout,
                       recognised="by its parameters")


class _Recorder:
    """Module calls and functional ops of one forward pass, in execution order."""

    def __init__(self, model, capture: dict | None = None):
        self.model = model
        self.capture = capture         # (row id, n-th call) -> cloned outputs, when the caller wants values
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.stack: list = []          # modules being executed
        self.rows: list[Layer] = []
        self.calls: dict[int, int] = {}
        self.containers_seen: set[int] = set()
        self.function_counts: dict[str, int] = {}
        self.pending: dict[int, list[Layer]] = {}
        self.runtime: dict[int, dict] = {}  # what a leaf did inside its forward (the padding it computed)
        self.produced: dict[int, tuple] = {}  # id(tensor) -> (weakref, row id, part)

    # hooks
    def pre_hook(self, mod, args, kwargs=None):
        inside_leaf = any(_is_opaque_leaf(m) for m in self.stack)
        self.stack.append(mod)
        if inside_leaf or id(mod) not in self.paths:
            return
        path = self.paths[id(mod)]
        parent = self._parent_path(path)
        if _is_opaque_leaf(mod) or _computes_itself(mod):
            n = self.calls.get(id(mod), 0) + 1
            self.calls[id(mod)] = n
            row = _module_row(mod, path, parent, first_call=False)  # tensors once it has run (lazy modules)
            row.call_index = n
            if n > 1:  # a shared module's later calls: rows of their own, with their own shapes
                row.id, row.name = f"{path}#{n}", f"{path} (call {n})"
            row.input_shapes = _tensor_shapes(args)
            row.inbound = self.sources(args, kwargs or {})
            self.rows.append(row)
            self.pending.setdefault(id(mod), []).append(row)
        elif id(mod) not in self.containers_seen:
            self.containers_seen.add(id(mod))
            self.rows.append(_container_row(mod, path, parent))

    def hook(self, mod, args, output):
        if self.stack:
            self.stack.pop()
        rows = self.pending.get(id(mod))
        if rows:
            row = rows.pop()
            row.output_shapes = _tensor_shapes(output)
            runtime = self.runtime.pop(id(row), {})
            if row.call_index == 1:  # a shared module's parameters count on its first call only
                done = _module_row(mod, row.id, row.parent, first_call=True)
                row.weights, row.buffers, row.hparams = done.weights, done.buffers, done.hparams
                row.trainable_params, row.non_trainable_params = done.trainable_params, done.non_trainable_params
            row.hparams.update(runtime)
            if not _computes_itself(mod):  # (a layer with a tail: its children produced the output)
                self.mark(output, row.id, parts=row.kind == "rnn")
            if row.kind == "other" and row.call_index <= 1:
                _recognise_by_signature(mod, row)
            if _computes_itself(mod):  # its output is after its children's (the act): not its own
                row.hparams["has_tail"] = True
            if self.capture is not None:
                # clone now: an in-place op later in forward (ReLU(inplace=True)) overwrites this tensor
                self.capture[(row.id, row.call_index)] = _clone_tensors(output)

    def _parent_path(self, path: str) -> str | None:
        if not path:
            return None
        return path.rpartition(".")[0]

    # data flow: which recorded row produced each tensor (ops that are no row pass it on unchanged)
    def producer(self, tensor) -> tuple[str, str] | None:
        entry = self.produced.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1], entry[2]
        return None

    def sources(self, *objs) -> list[str]:
        out: list[str] = []
        for obj in objs:
            for t in tensors_in(obj):
                found = self.producer(t)
                if found is not None and found[0] not in out:
                    out.append(found[0])
        return out

    def mark(self, obj, row_id: str, parts: bool = False) -> None:
        """Tensors of `obj` come from `row_id`; with parts, a recurrent module's (output, (h_n, c_n))."""
        import weakref

        if parts and isinstance(obj, (list, tuple)) and len(obj) == 2:
            states = obj[1] if isinstance(obj[1], (list, tuple)) else [obj[1]]
            named = [(obj[0], "output")] + list(zip(states, ("h_n", "c_n")))
        else:
            named = [(t, "output") for t in tensors_in(obj)]
        for t, part in named:
            for tensor in tensors_in(t):
                try:
                    self.produced[id(tensor)] = (weakref.ref(tensor), row_id, part)
                except TypeError:
                    pass

    def record_function(self, func, args, kwargs, result):
        """A functional op: a row of its own (with the rows that fed it), or a pass-through of its input's
        producer (x.view, x * 2, indexing) so that the data flow stays connected."""
        if any(_is_opaque_leaf(m) for m in self.stack):
            self._record_function(func, args, kwargs, result)  # run-time padding inside a layer
            return
        inbound = self.sources(args, kwargs)
        first = next((self.producer(t) for t in tensors_in(args) if self.producer(t)), None)
        owner = self.stack[-1] if self.stack else None
        if owner is not None and _computes_itself(owner) and self.pending.get(id(owner)):
            # the layer's own computation (F.batch_norm in BatchNormAct2d.forward): its result is the layer's
            self.mark(result, self.pending[id(owner)][-1].id)
            return
        row = self._record_function(func, args, kwargs, result)
        if row is not None:
            row.inbound = inbound
            self.mark(result, row.id)
        elif first is not None:
            import weakref

            for tensor in tensors_in(result):
                if self.producer(tensor) is None:
                    self.produced[id(tensor)] = (weakref.ref(tensor), first[0], first[1])

    def _record_function(self, func, args, kwargs, result):
        name = _function_name(func)
        leaves = [m for m in self.stack if _is_opaque_leaf(m)]
        if leaves:
            # inside a layer: not a row of its own; but padding computed at run time (timm's Conv2dSame
            # pads TF-style, then convolves with padding 0) is the layer's padding
            pending = self.pending.get(id(leaves[0]))
            if name == "pad" and pending and module_kind(leaves[0]) in ("conv", "pool"):
                amounts = kwargs.get("pad", args[1] if len(args) > 1 else ())
                value = kwargs.get("value", args[3] if len(args) > 3 else None)
                mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
                self.runtime.setdefault(id(pending[-1]), {}).update(
                    runtime_padding=pad_pairs(amounts), runtime_padding_mode=mode,
                    runtime_padding_value=float(value or 0.0))
            return
        if self.stack and _computes_itself(self.stack[-1]):
            return  # the layer's own computation (F.batch_norm in BatchNormAct2d.forward)
        if name not in FUNCTION_KINDS:
            return
        kind, activation = FUNCTION_KINDS[name]
        out_shapes = _tensor_shapes(result)
        in_shapes = _tensor_shapes(args[:1]) if args else []
        if kind == "merge" and name in ("add", "__add__", "__iadd__", "add_"):
            # only tensor + tensor of the same shape is a merge (residual); x + 1 is not a layer
            tensors = _tensor_shapes(list(args[:2]))
            if len(tensors) < 2 or tensors[0] != tensors[1]:
                return
        if kind == "merge" and name in ("mul", "__mul__", "multiply", "mul_", "__imul__"):
            # tensor * tensor of the same rank is a Multiply (x * gate of a squeeze-excitation, broadcast over
            # the positions); x * 0.5 is not a layer
            tensors = _tensor_shapes(list(args[:2]))
            if len(tensors) < 2 or len(tensors[0]) != len(tensors[1]) or len(tensors[0]) < 2:
                return
        crop = select = None
        if kind == "crop":
            # y[:, :, :-1, :-1]: a slice that keeps the batch and the channels and trims spatial ends (the crop
            # after a transposed convolution); out[:, -1] or h_n[-1] of a recurrent module's outputs: the port
            # picking what the Keras layer returns; any other indexing is no row
            crop = _spatial_crop(args, in_shapes, out_shapes)
            source = self.producer(args[0]) if args else None
            source_row = next((r for r in reversed(self.rows) if source and r.id == source[0]), None)
            if crop is None and source_row is not None and source_row.kind == "rnn" and len(args) > 1:
                kind, select = "select", {"index": _index_text(args[1]), "of": source_row.id, "part": source[1],
                                          "bidirectional": bool(source_row.hparams.get("bidirectional")),
                                          "last_step": _is_last_step(args[1])}
            elif crop is None:
                return
        if kind == "reshape" and in_shapes and out_shapes:
            # x.view(x.size(0), -1) on a >=3-D tensor is a flatten
            if len(out_shapes[0]) == 2 and len(in_shapes[0]) >= 3 and out_shapes[0][0] == in_shapes[0][0]:
                kind = "flatten"
            else:
                return
        pooled_layout = None
        if name == "mean":
            # a mean over every dimension but the batch and one feature axis is a global average pooling:
            # x.mean((2, 3)) of (N, C, H, W) channels-first, x.mean(dim=1) of (N, T, C) channels-last
            pooled_layout = _global_mean(args, kwargs, in_shapes)
            if pooled_layout is None:
                return
        owner = self.paths.get(id(self.stack[-1]), "") if self.stack else ""
        count = self.function_counts.get(name, 0) + 1
        self.function_counts[name] = count
        prefix = (owner + ".") if owner else ""
        label = _function_label(func, name)
        hp: dict[str, Any] = {}
        if activation:
            hp["activation"] = activation
            if name in ("softmax", "log_softmax"):
                dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
                hp["axis"] = dim
            if name.startswith("leaky_relu"):
                hp["negative_slope"] = float(kwargs.get("negative_slope", args[1] if len(args) > 1 else 0.01))
            if name == "gelu" and kwargs.get("approximate", "none") == "tanh":
                hp["activation"] = "gelu_tanh"
        if crop is not None:
            hp["cropping"] = crop
            label = "x[...]"
        if select is not None:
            hp.update(select)
            label = f"{select['part']}{select['index']}"
        if name == "mean":
            hp.update(pool_type="avg", keepdims=len(out_shapes[0]) == len(in_shapes[0]), data_format=pooled_layout)
        elif kind == "pool" and name.startswith("adaptive") and out_shapes and all(d == 1 for d in out_shapes[0][2:]):
            kind = "global_pool"
            hp.update(pool_type="avg" if "avg" in name else "max", keepdims=True)
        elif kind == "pool":
            hp["pool_type"] = "avg" if "avg" in name else "max"
            if not name.startswith("adaptive"):
                hp.update(_functional_pool_args(name, args, kwargs))
        if kind == "dropout":
            p = kwargs.get("p", args[1] if len(args) > 1 and isinstance(args[1], float) else 0.5)
            hp.update(rate=float(p), per_sample=False)
        if kind == "merge" and name in ("cat", "concat") and args and isinstance(args[0], (list, tuple)):
            hp["operands"] = len(args[0])
        if kind == "merge":
            hp["op"] = "concat" if name in ("cat", "concat") else "multiply" if "mul" in name else "add"
        if kind == "upsample":  # F.interpolate(input, size=None, scale_factor=None, mode='nearest', align_corners=None)
            given = dict(zip(("size", "scale_factor", "mode", "align_corners"), args[1:]))
            given.update(kwargs)
            hp.update(_upsample_hparams(given.get("mode", "nearest"), given.get("align_corners"),
                                        given.get("scale_factor"), given.get("size")))
        if kind == "pad":
            amounts = kwargs.get("pad", args[1] if len(args) > 1 else ())
            mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
            value = kwargs.get("value", args[3] if len(args) > 3 else None)
            hp.update(padding=pad_pairs(amounts), mode=mode, value=float(value or 0.0))
        row = Layer(id=f"{prefix}{label}#{count}", name=f"{label}", type=label, kind=kind, origin="function",
                    depth=owner.count(".") + 1 if owner else 1, parent=owner,
                    output_shapes=out_shapes, input_shapes=in_shapes, hparams=hp)
        self.rows.append(row)
        if self.capture is not None:
            self.capture[(row.id, 1)] = _clone_tensors(result)
        return row


def _own_tensors(mod, recurse: bool) -> tuple[list[Weight], list[Buffer]]:
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

    weights = [Weight(name=n, shape=list(p.shape), numel=p.numel(), trainable=bool(p.requires_grad),
                      dtype=str(p.dtype).replace("torch.", ""))
               for n, p in mod.named_parameters(recurse=recurse)
               if not isinstance(p, UninitializedParameter)]  # a lazy module that never ran has no size yet
    buffers = []
    for sub_path, sub in (mod.named_modules() if recurse else [("", mod)]):
        non_persistent = getattr(sub, "_non_persistent_buffers_set", set())
        for n, b in sub.named_buffers(recurse=False):
            if isinstance(b, UninitializedBuffer):
                continue
            buffers.append(Buffer(name=f"{sub_path}.{n}" if sub_path else n, shape=list(b.shape), numel=b.numel(),
                                  dtype=str(b.dtype).replace("torch.", ""), persistent=n not in non_persistent))
    return weights, buffers


def _row(mod, path: str, parent: str | None, kind: str, origin: str, weights, buffers) -> Layer:
    return Layer(
        id=path, name=path or type(mod).__name__, type=type(mod).__name__, kind=kind, origin=origin,
        depth=path.count(".") + 1 if path else 0, parent=parent,
        trainable_params=sum(w.numel for w in weights if w.trainable),
        non_trainable_params=sum(w.numel for w in weights if not w.trainable),
        weights=weights, buffers=buffers, hparams=module_hparams(mod, kind) if origin == "module" else {},
    )


def _module_row(mod, path: str, parent: str | None, first_call: bool) -> Layer:
    """A leaf module call; a shared module's parameters count on its first call only."""
    weights, buffers = _own_tensors(mod, recurse=not _computes_itself(mod)) if first_call else ([], [])
    return _row(mod, path, parent, module_kind(mod), "module", weights, buffers)


def _container_row(mod, path: str, parent: str | None) -> Layer:
    """A container; its own direct parameters and buffers (an nn.Parameter on the root) count here."""
    weights, buffers = _own_tensors(mod, recurse=False)
    return _row(mod, path, parent, "container", "container", weights, buffers)


def _clone_tensors(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tensors(x) for x in obj) if not hasattr(obj, "_fields") else \
            type(obj)(*(_clone_tensors(x) for x in obj))
    if isinstance(obj, dict):
        return {k: _clone_tensors(v) for k, v in obj.items()}
    return obj


def walk(model, inputs: list, capture: dict | None = None) -> tuple[list[Layer], list[list[int]], list[str]]:
    """Run one forward pass; return the rows, the output shapes and notes.

    With ``capture`` (a dict, or an object that takes items), each module call's and functional op's
    outputs are cloned into it, keyed by (row id, n) for the n-th call of the module (1 for the first),
    for checks that compare values; the model's output goes under ("", 0).
    """
    import torch
    from torch.nn.modules import module as module_mod
    from torch.overrides import TorchFunctionMode

    recorder = _Recorder(model, capture)

    class _Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            try:
                recorder.record_function(func, args, kwargs, result)
            except Exception:  # noqa: BLE001 - recording must never break the user's forward
                pass
            return result

    for i, tensor in enumerate(inputs):
        recorder.mark(tensor, "input" if len(inputs) == 1 else f"input_{i}")
    notes: list[str] = []
    before = {n: b.detach().clone() for n, b in model.named_buffers()}
    handles = [module_mod.register_module_forward_pre_hook(recorder.pre_hook),
               module_mod.register_module_forward_hook(recorder.hook)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _Mode():
            output = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if capture is not None:
        capture[("", 0)] = output
    changed = []
    for name, buf in model.named_buffers():
        old = before.get(name)
        if old is not None and (old.shape != buf.shape or not torch.equal(old, buf)):
            changed.append(name)
            with torch.no_grad():
                buf.copy_(old)
    if changed:
        notes.append("the forward pass changed buffers " + ", ".join(changed[:5]) +
                     ("..." if len(changed) > 5 else "") + " in eval() mode; ktdiff restored them")
    rows = recorder.rows
    calls: dict[str, int] = {}
    for row in rows:
        if row.origin == "module":
            calls[row.id.split("#")[0]] = calls.get(row.id.split("#")[0], 0) + 1
    for row in rows:  # call_index numbers the calls of a shared module; 0 for a module called once
        if row.origin == "module" and calls[row.id.split("#")[0]] == 1:
            row.call_index = 0
    # modules never called by forward: their parameters still count
    called = {r.id for r in rows}
    for path, mod in model.named_modules():
        if path in called:
            continue
        leaf = _is_opaque_leaf(mod) or _computes_itself(mod)
        inside_leaf = any(path.startswith(p + ".") for p, m in model.named_modules() if p and _is_opaque_leaf(m)
                          and p != path)
        if inside_leaf:
            continue
        if leaf:
            row = _module_row(mod, path, recorder._parent_path(path), first_call=True)  # noqa: SLF001
        else:
            row = _container_row(mod, path, recorder._parent_path(path))  # noqa: SLF001
            if not row.has_params and not row.buffers:
                continue
        row.executed = False
        rows.append(row)
    return rows, _tensor_shapes(output), notes


def load_torch_summary(spec: str, *, kwargs: dict | None = None, weights: str | None = None,
                       keras_inputs: list[dict] | None = None, input_shapes: list[list[int]] | None = None,
                       input_dtype: str | None = None, unsafe: bool = False) -> ModelSummary:
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model, factory = build_module(spec, kwargs)
    if weights:
        load_weights(model, weights, unsafe=unsafe)
    if type(model).forward is torch.nn.Module.forward:
        raise KtdiffError(f"{type(model).__name__} from {spec} has no forward() method",
                          "define forward(self, x) in the class, or point the spec at the model.")
    shapes, dtypes, how = derive_inputs(model, keras_inputs or [], input_shapes, input_dtype)
    tensors = [_make_input(s, d) for s, d in zip(shapes, dtypes)]
    described = ", ".join(f"({', '.join(map(str, s))}) {d}" for s, d in zip(shapes, dtypes))
    try:
        rows, outputs, notes = walk(model, tensors)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed
        raise _user_error(f"the forward pass of {spec} failed on input {described} ({how})", exc,
                          "pass the PyTorch input shape with --input-shape N,C,H,W (and --input-dtype).") from None
    summary = ModelSummary(
        framework="torch", source=spec, name=type(model).__name__, class_name=type(model).__name__,
        layout="channels_first", framework_version=f"torch {torch.__version__}",
        inputs=[InputSpec(f"input_{i}" if len(shapes) > 1 else "input", s, d)
                for i, (s, d) in enumerate(zip(shapes, dtypes))],
        output_shapes=outputs, layers=rows,
        suppressions=find_suppressions(*_user_classes(type(model)), *([factory] if factory is not type(model) else [])),
        notes=[f"input {described}: {how}"] + notes,
    )
    summary.totals = compute_totals(rows)
    expected = sum(p.numel() for p in model.parameters())
    if summary.totals.total != expected:  # never silently lose a parameter
        summary.notes.append(f"row parameters ({summary.totals.total}) differ from model.parameters() ({expected})")
    summary.notes.append(_torchinfo_note(model))
    return summary


def _torchinfo_note(model) -> str:
    """What torchinfo reports for the module (no forward pass), the figure users know from its summary."""
    try:
        import torchinfo

        info = torchinfo.summary(model, verbose=0)
        return (f"torchinfo: {info.total_params:,} parameters, {info.trainable_params:,} trainable; "
                "buffers are not counted")
    except Exception as exc:  # noqa: BLE001 - a cross-check only
        return f"torchinfo could not summarize the module ({type(exc).__name__})"
