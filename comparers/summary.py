"""The neutral summary: one framework-independent description of a model.

Plain, serializable data only (dataclasses of str/int/float/bool/None, lists and
dicts of those): no framework objects and no pre-formatted strings. A summary
crosses a process boundary as JSON and goes into the JSON report unchanged.

Shapes are kept in each framework's own layout (Keras NHWC with ``None`` for the
batch, PyTorch NCHW with the concrete batch used for the forward pass); comparing
them is the aligner's and the rules' business, not the loaders'.

Hyperparameters use one normalised vocabulary on both sides (see ``HPARAMS``), so
rules compare ``hparams["epsilon"]`` without knowing which framework set it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Layer families. A Keras layer and a torch module can only be aligned as a pair
# when their kinds are equal.
KINDS = (
    "input",          # Keras InputLayer
    "container",      # torch module with children (Sequential, the root, ...)
    "conv",           # Conv1D/2D/3D <-> Conv1d/2d/3d (groups included)
    "conv_transpose",
    "depthwise_conv",
    "separable_conv",
    "dense",          # Dense <-> Linear
    "batchnorm",
    "layernorm",
    "groupnorm",
    "embedding",
    "rnn",            # SimpleRNN/LSTM/GRU <-> RNN/LSTM/GRU
    "attention",
    "activation",     # ReLU, Softmax, Activation('relu'), F.relu, ...
    "flatten",
    "reshape",
    "permute",
    "dropout",
    "pool",
    "global_pool",
    "upsample",
    "pad",
    "crop",           # Cropping2D <-> a slice y[:, :, a:-b, c:-d]
    "merge",          # Add, Concatenate, torch.cat, ...
    "select",         # out[:, -1], h_n[-1]: the port picking a recurrent module's result
    "identity",
    "other",
)

# Parameter-free kinds: they fall in between the parameter-bearing anchors.
PARAMETER_FREE_KINDS = frozenset(
    {"input", "container", "activation", "flatten", "reshape", "permute", "dropout",
     "pool", "global_pool", "upsample", "pad", "crop", "merge", "select", "identity"}
)

# The normalised hyperparameter vocabulary (documentation; loaders may add keys).
HPARAMS = {
    "activation": "canonical activation name: relu, softmax, sigmoid, tanh, gelu, gelu_tanh, silu, "
                  "elu, selu, softplus, leaky_relu, relu6, hard_sigmoid, hard_silu, log_softmax, linear",
    "axis": "activation (softmax) or normalisation axis, in the framework's own layout",
    "negative_slope": "leaky_relu slope",
    "rank": "spatial rank of a convolution or pooling (1, 2, 3)",
    "filters": "output channels / units of a conv",
    "in_channels": "input channels of a conv",
    "kernel_size": "list of ints",
    "strides": "list of ints",
    "padding": "'same' | 'valid' | 'causal' | list of ints per spatial dim (torch symmetric padding)",
    "padding_mode": "torch padding_mode ('zeros', 'reflect', ...)",
    "dilation": "list of ints",
    "groups": "int",
    "use_bias": "bool",
    "units": "Dense units / Linear out_features / RNN hidden size",
    "in_features": "Dense input features / Linear in_features",
    "epsilon": "normalisation epsilon",
    "momentum": "the framework's own raw BatchNorm momentum value",
    "moving_average_decay": "BatchNorm momentum in the Keras convention: weight kept on the old "
                            "running statistic (Keras m, torch 1 - p); None = cumulative average",
    "center": "normalisation has a beta/bias", "scale": "normalisation has a gamma/weight",
    "track_running_stats": "BatchNorm keeps running statistics",
    "num_features": "normalised channels",
    "rate": "dropout rate",
    "pool_type": "'max' | 'avg'",
    "pool_size": "list of ints",
    "data_format": "'channels_last' | 'channels_first'",
}


@dataclass
class Weight:
    """One parameter (torch) or weight variable (Keras) owned directly by a layer."""

    name: str
    shape: list[int]
    numel: int
    trainable: bool
    dtype: str = "float32"


@dataclass
class Buffer:
    """A torch buffer (running statistics, masks, counters). Keras has none."""

    name: str
    shape: list[int]
    numel: int
    dtype: str
    persistent: bool = True


@dataclass
class Layer:
    """One row of a model: a Keras layer, a torch module call or a functional op."""

    id: str                    # unique in its summary: keras path / torch module path / forward:relu#1
    name: str                  # short display name
    type: str                  # framework class or function name: Conv2D, Conv2d, relu
    kind: str                  # one of KINDS
    origin: str = "layer"      # layer (Keras) | module (torch leaf) | container | function
    depth: int = 0
    parent: str | None = None  # enclosing container / nested model, if any
    output_shapes: list[list[int | None]] = field(default_factory=list)
    input_shapes: list[list[int | None]] = field(default_factory=list)
    inbound: list[str] = field(default_factory=list)  # ids of the layers that feed this one
    trainable_params: int = 0
    non_trainable_params: int = 0  # Keras non-trainable weights; torch frozen parameters
    weights: list[Weight] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)
    hparams: dict[str, Any] = field(default_factory=dict)
    executed: bool = True      # torch: False for a module never called by forward
    call_index: int = 0        # torch: 1, 2, ... for the calls of a shared module (its params on call 1)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def buffer_numel(self) -> int:
        return sum(b.numel for b in self.buffers)

    @property
    def has_params(self) -> bool:
        return self.total_params > 0


@dataclass
class InputSpec:
    name: str
    shape: list[int | None]
    dtype: str


@dataclass
class Totals:
    trainable: int = 0
    non_trainable: int = 0
    buffers: int = 0             # torch buffer elements (persistent or not)
    persistent_buffers: int = 0  # of which in state_dict

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


@dataclass
class ModelSummary:
    framework: str               # "keras" | "torch"
    source: str                  # file path or module spec as the user gave it
    name: str
    class_name: str
    layout: str                  # "channels_last" | "channels_first"
    framework_version: str
    inputs: list[InputSpec] = field(default_factory=list)
    output_shapes: list[list[int | None]] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    suppressions: dict[str, str] = field(default_factory=dict)  # code -> reason, from the source
    notes: list[str] = field(default_factory=list)

    def layer(self, layer_id: str) -> Layer:
        for layer in self.layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(layer_id)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["totals"]["total"] = self.totals.total
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSummary":
        data = dict(data)
        totals = dict(data.pop("totals", {}))
        totals.pop("total", None)
        layers = [_layer_from_dict(x) for x in data.pop("layers", [])]
        inputs = [InputSpec(**x) for x in data.pop("inputs", [])]
        return cls(layers=layers, inputs=inputs, totals=Totals(**totals), **data)


def _layer_from_dict(data: dict[str, Any]) -> Layer:
    data = dict(data)
    weights = [Weight(**w) for w in data.pop("weights", [])]
    buffers = [Buffer(**b) for b in data.pop("buffers", [])]
    return Layer(weights=weights, buffers=buffers, **data)


def compute_totals(layers: list[Layer]) -> Totals:
    """Totals over rows. Loaders put a shared module's parameters on its first call only."""
    totals = Totals()
    for layer in layers:
        totals.trainable += layer.trainable_params
        totals.non_trainable += layer.non_trainable_params
        totals.buffers += layer.buffer_numel
        totals.persistent_buffers += sum(b.numel for b in layer.buffers if b.persistent)
    return totals
