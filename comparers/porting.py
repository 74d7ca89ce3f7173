"""Weight porting: one function per weight layout, Keras arrays in, torch arrays out.

Plain numpy, no framework import: the torch worker calls these to port a Keras
model's weights into the port (``ktdiff compare --verify``, ``ktdiff port``),
and the rules quote the same recipes (``recipe(...)``) when they tell a user how
to port by hand, so the text and the code cannot drift apart.

A porter gets the Keras layer's weights by their names relative to the layer
(``kernel``, ``moving_mean``, ``forward_lstm/lstm_cell/kernel``, ``query/kernel``)
and a ``PortInfo`` (both layers' hyperparameters, the torch tensor shapes), and
returns the torch tensors by their names relative to the module (``weight``,
``running_mean``, ``weight_ih_l0_reverse``, ``in_proj_weight``). A layout it
cannot port raises ``CannotPort`` with the reason: never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class CannotPort(Exception):
    """The weights cannot be ported faithfully; the message says why."""


@dataclass
class PortInfo:
    keras_hparams: dict = field(default_factory=dict)
    torch_hparams: dict = field(default_factory=dict)
    torch_type: str = ""
    torch_shapes: dict = field(default_factory=dict)  # torch tensor name -> shape (parameters and buffers)
    flatten_input: list | None = None  # (H, W, C): the Dense reads a channels-last Flatten; torch reads (C, H, W)
    bias_folded: bool = False          # a conv whose Keras bias the BatchNorm after it absorbs (CNV004)
    fold_bias: np.ndarray | None = None  # a BatchNorm: the conv bias to subtract from the moving mean


@dataclass(frozen=True)
class Porter:
    name: str
    recipe: str
    fn: Callable[[dict, PortInfo], dict]


PORTERS: dict[str, Porter] = {}


def porter(name: str, recipe: str):
    def register(fn):
        PORTERS[name] = Porter(name, recipe, fn)
        return fn
    return register


def _get(kw: dict, *names: str, required: bool = True):
    """A Keras weight by its relative name: exact first, then by the last path part."""
    for exact in (True, False):
        for key, value in kw.items():
            if (key if exact else key.rpartition("/")[2]) in names:
                return value
    if required:
        raise CannotPort(f"the Keras layer has no weight named {' or '.join(names)} (it has {', '.join(kw) or 'none'})")
    return None


def conv_permutation(rank: int) -> tuple[int, ...]:
    """Keras (*k, in, out) -> torch (out, in, *k); the same permutation takes a transposed conv's
    (*k, out, in) to torch's (in, out, *k)."""
    return (rank + 1, rank, *range(rank))


def conv_recipe(rank: int) -> str:
    return f"kernel.transpose{conv_permutation(rank)}"


def depthwise_recipe(kernel_shape) -> str:
    *k, c, m = kernel_shape
    rank = len(k)
    return (f"K.reshape({', '.join(map(str, k))}, {c * m}).transpose({rank}, {', '.join(map(str, range(rank)))})"
            "[:, None]")


def flatten_dense_recipe(spatial, channels: int, out: int) -> str:
    r = len(spatial)
    n = math.prod(spatial) * channels
    return (f"W = K.reshape({', '.join(map(str, spatial))}, {channels}, {out}).transpose{conv_permutation(r)}"
            f".reshape({out}, {n})")


def _bias(kw: dict, info: PortInfo, out: dict) -> None:
    """bias -> bias; a torch bias where Keras has none is zero (it adds nothing)."""
    b = _get(kw, "bias", required=False)
    if info.bias_folded:
        return  # the BatchNorm after it takes it (running_mean = moving_mean - bias)
    if "bias" in info.torch_shapes:
        out["bias"] = b if b is not None else np.zeros(info.torch_shapes["bias"], dtype=np.float32)
    elif b is not None and np.any(b != 0):
        raise CannotPort("the Keras layer has a bias and the torch module none")


@porter("conv", "weight = kernel.transpose(rank+1, rank, 0, ..., rank-1), bias = bias")
def port_conv(kw: dict, info: PortInfo) -> dict:
    k = _get(kw, "kernel", "pointwise_kernel")
    out = {"weight": np.transpose(k, conv_permutation(k.ndim - 2))}
    _bias(kw, info, out)
    return out


@porter("conv_transpose", "weight = kernel.transpose(rank+1, rank, 0, ..., rank-1): (*k, out, in) -> (in, out, *k)")
def port_conv_transpose(kw: dict, info: PortInfo) -> dict:
    k = _get(kw, "kernel")
    out = {"weight": np.transpose(k, conv_permutation(k.ndim - 2))}
    _bias(kw, info, out)
    return out


@porter("depthwise", "weight = K.reshape(*k, in·m).transpose(rank, 0, ..)[:, None]; output channel c·m + j")
def port_depthwise(kw: dict, info: PortInfo) -> dict:
    k = _get(kw, "depthwise_kernel", "kernel")
    *spatial, c, m = k.shape
    rank = len(spatial)
    w = k.reshape(*spatial, c * m).transpose(rank, *range(rank))[:, None]
    out = {"weight": w}
    _bias(kw, info, out)
    return out


@porter("dense", "weight = kernel.T, bias = bias (after a channels-last Flatten: the flatten permutation first)")
def port_dense(kw: dict, info: PortInfo) -> dict:
    k = _get(kw, "kernel")
    if k.ndim != 2:
        raise CannotPort(f"a Dense kernel of rank {k.ndim} (EinsumDense) has no Linear layout")
    if info.flatten_input:
        *spatial, c = info.flatten_input
        r = len(spatial)
        w = k.reshape(*spatial, c, k.shape[1]).transpose(conv_permutation(r)).reshape(k.shape[1], -1)
    else:
        w = k.T
    out = {"weight": w}
    if info.torch_hparams.get("weight_layout") == "in_out":  # transformers' Conv1D keeps (in, out), as Keras
        out["weight"] = w.T
    _bias(kw, info, out)
    return out


@porter("batchnorm", "weight = gamma, bias = beta, running_mean = moving_mean, running_var = moving_variance")
def port_batchnorm(kw: dict, info: PortInfo) -> dict:
    mean, var = _get(kw, "moving_mean"), _get(kw, "moving_variance")
    if info.fold_bias is not None:  # BN(conv(x) + b) with mean m is BN(conv(x)) with mean m - b
        mean = mean - info.fold_bias
    out = {}
    if "running_mean" in info.torch_shapes:
        out["running_mean"], out["running_var"] = mean, var
    elif info.torch_hparams.get("track_running_stats") is False:
        raise CannotPort("the torch BatchNorm keeps no running statistics (track_running_stats=False)")
    _affine(kw, info, out, mean.shape)
    return out


def _affine(kw: dict, info: PortInfo, out: dict, shape) -> None:
    gamma = _get(kw, "gamma", "scale", required=False)
    beta = _get(kw, "beta", required=False)
    if "weight" in info.torch_shapes:
        out["weight"] = gamma if gamma is not None else np.ones(shape, dtype=np.float32)
    elif gamma is not None and not np.allclose(gamma, 1):
        raise CannotPort("the Keras normalisation has a scale (gamma) and the torch module none")
    if "bias" in info.torch_shapes:
        out["bias"] = beta if beta is not None else np.zeros(shape, dtype=np.float32)
    elif beta is not None and np.any(beta != 0):
        raise CannotPort("the Keras normalisation has an offset (beta) and the torch module none")


@porter("norm", "weight = gamma (RMSNormalization: scale), bias = beta")
def port_norm(kw: dict, info: PortInfo) -> dict:
    shape = info.torch_shapes.get("weight") or info.torch_shapes.get("bias")
    if shape is None:
        some = _get(kw, "gamma", "scale", "beta", required=False)
        shape = some.shape if some is not None else ()
    out: dict = {}
    _affine(kw, info, out, shape)
    return out


@porter("embedding", "weight = embeddings")
def port_embedding(kw: dict, info: PortInfo) -> dict:
    return {"weight": _get(kw, "embeddings")}


def _recurrent(kw: dict, info: PortInfo, prefix: str, suffix: str, cell: str) -> dict:
    """One direction of a recurrent layer: kernel (F, G·U), recurrent_kernel (U, G·U), bias."""
    def pick(name):
        for key, value in kw.items():
            parts = key.split("/")
            if parts[-1] == name and (not prefix or parts[0].startswith(prefix)):
                return value
        return None

    k, rk, b = pick("kernel"), pick("recurrent_kernel"), pick("bias")
    if k is None or rk is None:
        raise CannotPort(f"no {prefix + ' ' if prefix else ''}kernel and recurrent_kernel in the Keras layer")
    out = {}
    if cell == "GRU":
        def swap(a, axis=-1):  # Keras [z, r, h] -> torch [r, z, n]
            z, r, h = np.split(a, 3, axis=axis)
            return np.concatenate([r, z, h], axis=axis)
        k, rk = swap(k), swap(rk)
        if b is not None:
            if b.ndim != 2:
                raise CannotPort("a Keras GRU with reset_after=False has no torch equivalent (RNN005)")
            b_ih, b_hh = swap(b[0]), swap(b[1])
        else:
            b_ih = b_hh = None
    else:
        b_ih = b
        b_hh = None if b is None else np.zeros_like(b)
    out[f"weight_ih_l0{suffix}"] = k.T
    out[f"weight_hh_l0{suffix}"] = rk.T
    if f"bias_ih_l0{suffix}" in info.torch_shapes:
        gates = k.shape[1]
        out[f"bias_ih_l0{suffix}"] = b_ih if b_ih is not None else np.zeros(gates, dtype=np.float32)
        out[f"bias_hh_l0{suffix}"] = b_hh if b_hh is not None else np.zeros(gates, dtype=np.float32)
    return out


@porter("rnn", "weight_ih = kernel.T, weight_hh = recurrent_kernel.T, b_ih = bias, b_hh = 0 "
               "(GRU: swap the z and r blocks; bias[0] -> b_ih, bias[1] -> b_hh)")
def port_rnn(kw: dict, info: PortInfo) -> dict:
    cell = info.keras_hparams.get("cell")
    if cell not in ("LSTM", "GRU", "SimpleRNN"):
        raise CannotPort(f"recurrent cell {cell} has no torch module layout")
    if info.torch_hparams.get("num_layers", 1) != 1:
        raise CannotPort("a torch recurrent module with num_layers > 1 stacks several Keras layers")
    if info.keras_hparams.get("bidirectional"):
        out = _recurrent(kw, info, "forward", "", cell)
        out.update(_recurrent(kw, info, "backward", "_reverse", cell))
        return out
    return _recurrent(kw, info, "", "", cell)


@porter("mha", "in_proj_weight = cat([W.reshape(E, H·d).T for q, k, v]), in_proj_bias = cat(b.reshape(-1)), "
               "out_proj.weight = attention_output.kernel.reshape(H·d, E).T")
def port_mha(kw: dict, info: PortInfo) -> dict:
    q, k, v = (_get(kw, f"{n}/kernel") for n in ("query", "key", "value"))
    o = _get(kw, "attention_output/kernel")
    e = q.shape[0]
    flat = [w.reshape(w.shape[0], -1).T for w in (q, k, v)]
    out: dict = {}
    if "in_proj_weight" in info.torch_shapes:
        out["in_proj_weight"] = np.concatenate(flat, axis=0)
    else:
        out.update(q_proj_weight=flat[0], k_proj_weight=flat[1], v_proj_weight=flat[2])
    out["out_proj.weight"] = o.reshape(-1, o.shape[-1]).T
    biases = [_get(kw, f"{n}/bias", required=False) for n in ("query", "key", "value")]
    if "in_proj_bias" in info.torch_shapes:
        out["in_proj_bias"] = np.concatenate([b.reshape(-1) if b is not None else np.zeros(e, np.float32)
                                              for b in biases])
    ob = _get(kw, "attention_output/bias", required=False)
    if "out_proj.bias" in info.torch_shapes:
        out["out_proj.bias"] = ob if ob is not None else np.zeros(o.shape[-1], np.float32)
    return out


@porter("prelu", "weight = alpha per channel (alpha.reshape(C)); one shared alpha -> PReLU(1)")
def port_prelu(kw: dict, info: PortInfo) -> dict:
    alpha = _get(kw, "alpha")
    n = int(info.torch_shapes.get("weight", [1])[0]) if info.torch_shapes.get("weight") else 1
    channels = alpha.shape[-1] if alpha.ndim else 1
    per_channel = alpha.reshape(-1, channels)
    if not np.all(per_channel == per_channel[:1]):
        raise CannotPort(f"Keras PReLU has a separate alpha per position ({tuple(alpha.shape)}); torch PReLU has one "
                         "per channel at most")
    if n == channels:
        return {"weight": per_channel[0].copy()}
    if n == 1 and np.all(alpha == alpha.flat[0]):
        return {"weight": np.array([alpha.flat[0]], dtype=np.float32)}
    raise CannotPort(f"Keras PReLU has {channels} channel alphas, the torch PReLU {n}")


# (Keras kind, torch kind) -> porter
BY_KINDS = {
    ("conv", "conv"): "conv",
    ("depthwise_conv", "conv"): "depthwise",
    ("conv_transpose", "conv_transpose"): "conv_transpose",
    ("dense", "dense"): "dense",
    ("batchnorm", "batchnorm"): "batchnorm",
    ("layernorm", "layernorm"): "norm",
    ("groupnorm", "groupnorm"): "norm",
    ("embedding", "embedding"): "embedding",
    ("rnn", "rnn"): "rnn",
    ("attention", "attention"): "mha",
}


BY_ACTIVATION = {("prelu", "prelu"): "prelu"}  # activations with weights


def choose(keras_kind: str, torch_kind: str, keras_activation: str | None = None,
           torch_activation: str | None = None) -> str | None:
    """The porter for a paired row, or None when no layout is known."""
    return BY_ACTIVATION.get((keras_activation, torch_activation)) or BY_KINDS.get((keras_kind, torch_kind))


def port(name: str, keras_weights: dict, info: PortInfo) -> dict:
    """Port one layer; checks every array against the torch tensor's shape."""
    arrays = PORTERS[name].fn(keras_weights, info)
    for key, value in arrays.items():
        want = info.torch_shapes.get(key)
        if want is None:
            raise CannotPort(f"the torch module has no tensor {key}")
        if list(value.shape) != list(want):
            raise CannotPort(f"{key}: the ported array has shape {tuple(value.shape)}, the module wants {tuple(want)}")
    return arrays
