"""LAY, CNV, DNS, FLT, RNN, HP: tensor layout, weight layouts, padding and hyperparameters."""

from __future__ import annotations

import math

from ..layout import format_shape, to_channels_first
from ..porting import conv_recipe, depthwise_recipe, flatten_dense_recipe
from ..summary import Layer
from . import Hit, rule
from ._text import label, num, pads, shape, tup

CONV_KINDS = ("conv", "conv_transpose", "depthwise_conv", "separable_conv")


def _weight(layer, *names):
    """A layer's weight by name; exact first (query/kernel), then by last part (a cell's lstm_cell/bias)."""
    for exact in (True, False):
        for w in layer.weights:
            if (w.name if exact else w.name.rpartition("/")[2]) in names:
                return w
    return None


@rule("LAY001", "layout-nhwc-nchw", "convention", "Same tensor, channels-last in Keras and channels-first in PyTorch",
      what="Keras shows (None, H, W, C), torch (N, C, H, W): the same tensor in two layouts. Keras shows the "
           "batch as None, torch the batch of the forward pass.",
      why="Keras defaults to channels_last (and the TensorFlow CPU backend cannot run channels_first "
          "convolutions); torch convolutions are channels-first.",
      fix="Nothing to fix in the models. Feed the port x.permute(0, 3, 1, 2) of a Keras input, and permute "
          "weights when porting them.")
def layout(ctx, index, row):
    k, t = ctx.pair(row)
    if k is None or not k.output_shapes or not t.output_shapes:
        return
    relation = ctx.shapes(row)
    ks, ts = k.output_shapes[0], t.output_shapes[0]
    # (None, 8, 8, 8) vs (1, 8, 8, 8): equal numbers, but an image tensor of a port fed NCHW is channels-first
    ambiguous = (relation == "equal" and len(ks) >= 3 and len(ks) == len(ts) and ctx.channels_moved
                 and len(ks) == len(ctx.keras.inputs[0].shape) and to_channels_first(ks)[1:] == list(ts[1:]))
    if relation == "layout" or ambiguous:
        same = " (the same numbers in another order)" if ambiguous else ""
        yield Hit(f"{format_shape(ks)} channels-last ≡ {format_shape(ts)} channels-first{same}.")


def _keras_pads(padding, k, s, d, size):
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return d * (k - 1), 0
    if padding == "same":
        if size is None:
            if s != 1:
                return None
            total = d * (k - 1)
        else:
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        return total // 2, total - total // 2
    return None


def _torch_pads(padding, k, d, i):
    if padding == "valid":
        return 0, 0
    if padding == "same":
        total = d * (k - 1)
        return total // 2, total - total // 2
    p = padding[i] if isinstance(padding, list) else int(padding)
    return p, p


def padding_check(k, t, k_pad=None, t_pad=None) -> tuple[bool, list[str]]:
    """(equivalent, per-dimension descriptions) for a conv pair.

    k_pad / t_pad: a separate zero-padding row that feeds the conv (Keras ZeroPadding2D before a
    'valid' conv, torch F.pad / nn.ZeroPad2d before padding=0); its amounts count as the conv's.
    """
    hp_k, hp_t = k.hparams, t.hparams
    sizes = k.input_shapes[0][1:-1] if k.input_shapes else []
    extra_k = k_pad.hparams.get("padding") if k_pad is not None else None
    extra_t = t_pad.hparams.get("padding") if t_pad is not None else None
    same, notes = True, []
    for i, (ks, s, d) in enumerate(zip(hp_k.get("kernel_size", []), hp_k.get("strides", []),
                                       hp_k.get("dilation", []))):
        size = sizes[i] if i < len(sizes) else None
        kp = _keras_pads(hp_k.get("padding"), ks, s, d, size)
        tp = _torch_pads(hp_t.get("padding"), ks, d, i)
        if kp is not None and extra_k and i < len(extra_k):
            kp = (kp[0] + extra_k[i][0], kp[1] + extra_k[i][1])
        if extra_t and i < len(extra_t):
            tp = (tp[0] + extra_t[i][0], tp[1] + extra_t[i][1])
        notes.append(f"{kp[0]}/{kp[1]}" if kp else "?")
        if kp is not None and kp != tp:
            same = False
            where = f" on size {size}" if size is not None else ""
            notes[-1] = (f"dim {i}: Keras pads {kp[0]} before and {kp[1]} after (kernel {ks}, stride {s}{where}); "
                         f"the port pads {tp[0]}/{tp[1]}")
    return same, notes


def _zero_pad(layer) -> bool:
    return (layer is not None and layer.kind == "pad" and bool(layer.hparams.get("padding"))
            and layer.hparams.get("mode", "constant") == "constant" and not layer.hparams.get("value"))


def keras_pad_before(ctx, k):
    """The Keras ZeroPadding layer that feeds conv k, if any."""
    p = ctx.keras_layer(k.inbound[0]) if k.inbound else None
    return p if _zero_pad(p) else None


def torch_pad_before(ctx, index, t):
    """The torch zero pad (F.pad, nn.ZeroPad2d) run just before conv t on the same tensor, if any; or the
    padding the conv computed at run time inside its own forward (timm's Conv2dSame)."""
    runtime = t.hparams.get("runtime_padding")
    if runtime is not None:
        pad = Layer(id=t.id + "/pad", name=f"{t.name} (its run-time padding)", type="F.pad", kind="pad",
                    origin="function", hparams={"padding": runtime, "mode": t.hparams.get("runtime_padding_mode"),
                                                "value": t.hparams.get("runtime_padding_value", 0.0)})
        return pad if _zero_pad(pad) else None
    p = ctx.neighbour_torch(index, -1)
    if _zero_pad(p) and p.output_shapes and t.input_shapes and p.output_shapes[0] == t.input_shapes[0]:
        return p
    return None


def conv_padding_equivalent(ctx, index, row) -> tuple[bool, list[str]] | None:
    """padding_check for a conv row, separate zero pads included; None when the row is not a conv pair."""
    k, t = ctx.pair(row, "conv", "depthwise_conv", torch=("conv",))
    if k is None:
        return None
    return padding_check(k, t, keras_pad_before(ctx, k), torch_pad_before(ctx, index, t))


def absorbed_pad(ctx, index, row) -> str | None:
    """For an unpaired zero-pad row: how the other side pads inside the conv it feeds, or None."""
    k, t = ctx.k(row), ctx.t(row)
    if k is not None and row.torch is None and _zero_pad(k):
        for j, other in enumerate(ctx.rows):
            ck = ctx.k(other)
            if ck is not None and other.keras_part == "layer" and ck.inbound[:1] == [k.id]:
                ok = conv_padding_equivalent(ctx, j, other)
                if ok and ok[0]:
                    tc = ctx.t(other)
                    return (f"{label(k)} pads {pads(k.hparams['padding'])} (before/after per dimension) before {label(ck)}; the port pads "
                            f"inside {label(tc)} (padding={tup(tc.hparams.get('padding'))}): same values.")
                windows = pool_windows(ctx, j, other)
                if windows is not None and not windows[0]:
                    tc = ctx.t(other)
                    same = ("same values: the input comes from a ReLU, so the zeros never win a max"
                            if _non_negative(ctx, k) or ck.hparams.get("pool_type") != "max"
                            else "same windows (the padded values differ: PL001)")
                    return (f"{label(k)} pads {pads(k.hparams['padding'])} (before/after per dimension) before {label(ck)}; the port pads "
                            f"inside {label(tc)} (padding={tup(tc.hparams.get('padding'))}): {same}.")
    if t is not None and row.keras is None and t.kind == "crop":  # y[..., :-1, :-1] after a transposed conv
        conv = ctx.neighbour_torch(index, -1)
        for j, other in enumerate(ctx.rows):
            if conv is not None and other.torch == conv.id and transpose_problems(ctx, j, other) == []:
                ck = ctx.k(other)
                return (f"{label(t)} crops {pads(t.hparams['cropping'])} (start/end per dimension) after "
                        f"{label(conv)}; Keras crops inside {label(ck)} (padding='{ck.hparams.get('padding')}'): "
                        "same values.")
    if t is not None and row.keras is None and _zero_pad(t):
        j = index + 1
        while j < len(ctx.rows) and ctx.rows[j].torch is None:
            j += 1
        if j < len(ctx.rows):
            ok = conv_padding_equivalent(ctx, j, ctx.rows[j])
            if ok and ok[0]:
                ck = ctx.k(ctx.rows[j])
                return (f"{label(t)} pads {pads(t.hparams['padding'])} (before/after per dimension) before the conv; Keras pads "
                        f"inside {label(ck)} (padding='{ck.hparams.get('padding')}'): same values.")
            windows = pool_windows(ctx, j, ctx.rows[j])
            if windows is not None and not windows[0]:
                ck = ctx.k(ctx.rows[j])
                return (f"{label(t)} pads {pads(t.hparams['padding'])} (before/after per dimension) before the pooling; "
                        f"Keras places {label(ck)}'s windows the same way (padding='{ck.hparams.get('padding')}').")
    return None


@rule("CNV001", "conv-weight-layout", "convention", "Convolution kernels are stored in different layouts",
      what="Keras stores a Conv kernel as (*kernel, in/groups, out), torch as (out, in/groups, *kernel); "
           "Conv*Transpose as (*kernel, out, in) vs (in, out/groups, *kernel); DepthwiseConv2D as "
           "(kh, kw, in, multiplier) vs (in·multiplier, 1, kh, kw). Counts are equal.",
      why="Each framework's convolution kernels expect their own layout.",
      fix="Port with kernel.transpose(3, 2, 0, 1) in 2-D ((2, 1, 0) in 1-D, (4, 3, 0, 1, 2) in 3-D). Depthwise: "
          "K.reshape(kh, kw, in·m).transpose(2, 0, 1)[:, None]; a plain transpose scrambles channels when m > 1.")
def conv_weight_layout(ctx, index, row):
    k, t = ctx.pair(row, *CONV_KINDS, torch=("conv", "conv_transpose"))
    if k is None:
        return
    kw, tw = _weight(k, "kernel", "depthwise_kernel", "pointwise_kernel"), _weight(t, "weight")
    if kw is None or tw is None:
        return
    rank = len(kw.shape) - 2
    recipe = depthwise_recipe(kw.shape) if k.kind == "depthwise_conv" else conv_recipe(rank)
    pad = ""
    check = conv_padding_equivalent(ctx, index, row)
    tp = t.hparams.get("padding")
    if check and check[0] and k.hparams.get("padding") != tp and not keras_pad_before(ctx, k) \
            and not torch_pad_before(ctx, index, t):
        pad = f"; padding '{k.hparams.get('padding')}' ≡ padding={tup(tp) if isinstance(tp, list) else repr(tp)}"
    yield Hit(f"kernel {tup(kw.shape)} vs weight {tup(tw.shape)}: port with {recipe}{pad}.")


@rule("CNV002", "conv-padding", "behaviour", "The convolution pads differently",
      what="Keras padding='same' pads TF-style: total = max((ceil(in/s)−1)·s + (k−1)·d + 1 − in, 0), the smaller "
           "half before. torch pads the same amount on both sides. With stride 1 and an odd kernel they agree; "
           "with an even kernel, or stride > 1 on an even input, they do not: the output shape may even match "
           "while the values differ. padding='causal' pads only before. A torch padding_mode other than 'zeros' "
           "has no Keras Conv counterpart.",
      why="torch rejects padding='same' with stride > 1 and takes one symmetric padding per dimension.",
      fix="Pad explicitly in forward(): x = F.pad(x, (left, right, top, bottom)) with Keras's amounts, then "
          "padding=0.")
def conv_padding(ctx, index, row):
    k, t = ctx.pair(row, "conv", "depthwise_conv", torch=("conv",))
    if k is None:
        return
    mode = t.hparams.get("padding_mode", "zeros")
    if mode != "zeros":
        yield Hit(f"{label(t)} uses padding_mode='{mode}'; Keras convolutions pad with zeros.")
    same, notes = conv_padding_equivalent(ctx, index, row)
    if not same:
        bad = "; ".join(n for n in notes if n.startswith("dim"))
        yield Hit(f"padding='{k.hparams.get('padding')}' vs padding={tup(t.hparams.get('padding'))}: {bad}.")


@rule("DNS001", "dense-weight-layout", "convention", "Dense kernels are transposed in PyTorch",
      what="Keras stores a Dense kernel as (in, out), torch Linear's weight as (out, in). Counts are equal.",
      why="Keras computes x @ kernel, torch x @ weight.T.",
      fix="Port with weight = kernel.T (a reshape instead of a transpose runs silently with wrong outputs).")
def dense_weight_layout(ctx, index, row):
    k, t = ctx.pair(row, "dense")
    if k is None:
        return
    kw, tw = _weight(k, "kernel"), _weight(t, "weight")
    if t.hparams.get("weight_layout") == "in_out":
        return  # the port keeps (in, out) as Keras does (transformers' Conv1D): nothing to transpose
    if kw is not None and tw is not None and len(kw.shape) == 2:
        see = " (after the flatten permutation, FLT001)" if flatten_order(ctx, k, t) else ""
        yield Hit(f"kernel {tup(kw.shape)} vs weight {tup(tw.shape)}: port with kernel.T{see}.")


def flatten_order(ctx, k, t):
    """(keras flatten, its input shape, torch input shape) when the Dense reads a channels-last flatten."""
    if not k.inbound:
        return None
    f = ctx.keras_layer(k.inbound[0])
    if f is None or f.kind != "flatten" or not f.input_shapes or len(f.input_shapes[0]) < 3:
        return None
    f_in = f.input_shapes[0]
    dims = f_in[1:]
    if f_in[-1] == 1 or math.prod(d or 1 for d in dims[:-1]) == 1:
        return None  # (h, w, 1) or (1, 1, c): both orders agree
    for row in ctx.rows:
        if row.keras == f.id and row.torch is not None:
            tf = ctx.t(row)
            if tf.input_shapes and list(tf.input_shapes[0][1:]) == list(to_channels_first(f_in)[1:]) \
                    and tf.output_shapes and f.output_shapes and tf.output_shapes[0][1:] == f.output_shapes[0][1:]:
                return f, f_in, tf  # both flatten the same tensor into the same features, in another order
    return None


@rule("FLT001", "flatten-order", "convention", "Flatten orders the features differently: (h, w, c) vs (c, h, w)",
      what="A Keras Flatten of a channels-last tensor orders the features (h, w, c); torch flattens NCHW in "
           "(c, h, w) order. Counts and shapes agree, so the Dense that follows loads kernel.T without an error "
           "and computes something else.",
      why="Keras's Flatten keeps (h, w, c) order even with data_format='channels_first'.",
      fix="Port that Dense's kernel K with W = K.reshape(H, W, C, out).transpose(3, 2, 0, 1).reshape(out, C·H·W), "
          "or flatten x.permute(0, 2, 3, 1) in the port.")
def flatten_order_rule(ctx, index, row):
    k, t = ctx.pair(row, "dense")
    if k is None:
        return
    found = flatten_order(ctx, k, t)
    if not found:
        return
    f, f_in, tf = found
    spatial = [d for d in f_in[1:-1]]
    c, out = f_in[-1], k.hparams.get("units")
    n = math.prod(f_in[1:])
    r = len(spatial)
    order = {1: "(l, c) vs (c, l)", 2: "(h, w, c) vs (c, h, w)", 3: "(d, h, w, c) vs (c, d, h, w)"}.get(r, "")
    yield Hit(f"Keras {label(f)} flattens {tup(f_in[1:])} into {num(n)} features in channels-last order; "
              f"the port's {label(tf)} flattens {tup(tf.input_shapes[0][1:])} channels-first, {order}. Port {k.name}'s kernel K "
              f"as {flatten_dense_recipe(spatial, c, out)}.")


RNN_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


@rule("RNN001", "rnn-double-bias", "bookkeeping", "PyTorch recurrent layers have two bias vectors; Keras has one",
      what="Keras LSTM/SimpleRNN have one bias per gate (G·U); torch has b_ih and b_hh (2·G·U). LSTM: 4U(F+U+1) "
           "vs 4U(F+U+2). Keras GRU with reset_after=True (the default) has two biases like torch: equal counts.",
      why="cuDNN's formulation keeps separate input and recurrent biases; only their sum matters.",
      fix="Nothing to fix. When porting: weight_ih = kernel.T, weight_hh = recurrent_kernel.T, b_ih = bias, "
          "b_hh = 0 (LSTM gate order i, f, c/g, o agrees).")
def rnn_double_bias(ctx, index, row):
    k, t = ctx.pair(row, "rnn")
    if k is None:
        return
    cell = k.hparams.get("cell")
    if cell != t.hparams.get("cell") or cell not in ("LSTM", "SimpleRNN") or t.hparams.get("num_layers", 1) != 1:
        return
    if not (k.hparams.get("use_bias") and t.hparams.get("use_bias")):
        return
    dirs = 2 if t.hparams.get("bidirectional") else 1
    units = k.hparams.get("units", 0)
    extra = RNN_GATES[cell] * units * dirs
    if t.total_params - k.total_params == extra:
        yield Hit(f"Keras {label(k)} {num(k.total_params)} vs the port's {label(t)} {num(t.total_params)}: torch's second bias "
                  f"b_hh adds {RNN_GATES[cell]}·{units}{'·2' if dirs == 2 else ''} = {num(extra)}.", params=-extra)


def reads_batch_as_sequence(k, t) -> bool:
    """A sequence-first torch module (batch_first=False) fed the Keras layer's batch-first (N, T, F) data."""
    if t.hparams.get("batch_first", True) or not k.input_shapes or not t.input_shapes:
        return False
    return len(t.input_shapes[0]) == 3 and list(t.input_shapes[0][1:]) == list(k.input_shapes[0][1:])


@rule("RNN002", "rnn-batch-first", "behaviour", "The PyTorch recurrent layer reads the batch as the time axis",
      what="torch RNN/LSTM/GRU default to batch_first=False and read (T, N, F); Keras reads (N, T, F). Fed "
           "batch-first data, the port runs over the wrong axis without an error.",
      why="torch's default follows cuDNN's sequence-first layout.",
      fix="Construct the torch layer with batch_first=True (or transpose the input).")
def rnn_batch_first(ctx, index, row):
    k, t = ctx.pair(row, "rnn")
    if k is not None and reads_batch_as_sequence(k, t):
        yield Hit(f"{label(t)} has batch_first=False and receives {tup(t.input_shapes[0])}: it reads "
                  f"{t.input_shapes[0][0]} as the time axis; Keras reads {tup(k.input_shapes[0][1:])} per sample.")


HP_KEYS = {
    "conv": ("filters", "kernel_size", "strides", "dilation", "groups", "use_bias"),
    "conv_transpose": ("filters", "kernel_size", "strides", "dilation", "use_bias"),
    "depthwise_conv": ("filters", "kernel_size", "strides", "dilation", "use_bias"),
    "dense": ("units", "in_features", "use_bias"),
    "pool": ("pool_type", "pool_size", "strides"),
    "global_pool": ("pool_type",),
    "dropout": ("rate", "per_sample"),
    "embedding": ("input_dim", "output_dim"),
    "rnn": ("cell", "units", "bidirectional", "use_bias"),
}
HP_NAMES = {"strides": "stride", "filters": "out channels", "units": "units/out_features",
            "per_sample": "drops whole samples (stochastic depth)"}
# Hyperparameters that size the weights: a difference in one accounts for the row's parameter difference.
HP_SIZES = frozenset({"filters", "kernel_size", "groups", "units", "in_features", "input_dim", "output_dim",
                      "cell", "bidirectional"})


@rule("HP001", "hyperparameter-differs", "behaviour", "A layer hyperparameter differs",
      what="The paired layers differ in a hyperparameter that changes what they compute: kernel size, stride, "
           "dilation, groups, filters/units, bias, pooling size or type, dropout rate, embedding size, "
           "recurrent units.",
      why="A porting slip, or a default that differs between the frameworks.",
      fix="Make the PyTorch module's argument match the Keras layer's config.")
def hyperparameter_differs(ctx, index, row):
    k, t = ctx.pair(row)
    if k is None:
        return
    keys = HP_KEYS.get(k.kind, ())
    if k.kind == "depthwise_conv" and t.kind == "conv":
        keys = tuple(x for x in keys if x != "groups")
    differing = []
    for key in keys:
        kv, tv = k.hparams.get(key), t.hparams.get(key)
        if kv is None or tv is None:
            continue
        if isinstance(kv, float) or isinstance(tv, float):
            equal = abs(float(kv) - float(tv)) <= 1e-9
        else:
            equal = kv == tv
        if not equal and not (key == "use_bias" and (separable_depthwise_bias(k, t)  # CNV003 has that one
                                                      or bias_folds_into_bn(ctx, index, row))):  # CNV004
            differing.append((key, kv, tv))
    bias_params = 0
    for key, kv, tv in differing:
        if key == "use_bias":
            bias = _weight(k, "bias") or _weight(t, "bias")
            bias_params = (bias.numel if bias else 0) * (1 if kv else -1)
    size_key = next((key for key, _, _ in differing if key in HP_SIZES), None)
    for key, kv, tv in differing:
        params = 0
        if key == "use_bias":
            params = bias_params
        elif key == size_key:  # the rest of the row's difference comes from the weights' sizes
            params = ctx.keras_delta(row) - ctx.torch_delta(row) - bias_params
        extra = " (training only)" if key in ("rate", "per_sample") else ""
        yield Hit(f"{HP_NAMES.get(key, key)}: Keras {tup(kv)} vs PyTorch {tup(tv)}{extra}.", params=params,
                  training_only=key in ("rate", "per_sample"))


@rule("RNN003", "rnn-returns-sequences", "structure", "PyTorch returns the whole sequence where Keras returns the last step",
      what="A Keras recurrent layer with return_sequences=False returns (N, U); a torch RNN/LSTM/GRU always "
           "returns the sequence (N, T, U) and the final states, and forward() picks what it needs.",
      why="torch modules return every output; Keras layers are configured to return one.",
      fix="In forward(), take out[:, -1] (one direction) or torch.cat([h_n[-2], h_n[-1]], 1) for a "
          "bidirectional layer (not out[:, -1]).")
def rnn_returns_sequences(ctx, index, row):
    k, t = ctx.pair(row, "rnn")
    if k is None or k.hparams.get("return_sequences", True):
        return
    if k.output_shapes and t.output_shapes and len(k.output_shapes[0]) == 2 and len(t.output_shapes[0]) == 3:
        pick = ("concatenate both directions' final states, torch.cat([h_n[-2], h_n[-1]], dim=1) (not out[:, -1])"
                if t.hparams.get("bidirectional") else "pick the last step (out[:, -1] or h_n[-1])")
        yield Hit(f"Keras {label(k)} returns {shape(k)}; the port's {label(t)} returns {shape(t)} and its final "
                  f"states, and forward() must {pick}.")


def _keras_windows(padding: str, size: int, k: int, s: int) -> tuple[int, int]:
    """(padding before, number of windows) of a Keras pooling along one dimension."""
    if padding == "same":
        out = math.ceil(size / s)
        return max((out - 1) * s + k - size, 0) // 2, out
    return 0, (size - k) // s + 1


def _torch_windows(size: int, k: int, s: int, p: int, ceil_mode: bool) -> tuple[int, int]:
    """(padding before, number of windows) of a torch MaxPool/AvgPool along one dimension."""
    span = size + 2 * p - k
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # torch: the last window must start inside the input
        out -= 1
    return p, out


NON_NEGATIVE = frozenset({"relu", "relu6", "sigmoid", "softmax", "hard_sigmoid"})


def pool_windows(ctx, index, row):
    """For a pooling pair, separate zero pads before it included (Keras ZeroPadding2D + MaxPooling2D against
    MaxPool2d(padding=1), or F.pad + MaxPool2d): (problems per dimension, Keras pad layer, torch pad layer,
    padded-cell kinds) or None. A cell padded by a pad layer holds 0; a pool's own padding holds −inf (max)
    or is left out of the average (Keras) / counted as 0 (torch count_include_pad=True)."""
    k, t = ctx.pair(row, "pool")
    if k is None or "pool_size" not in t.hparams or not k.input_shapes:
        return None
    kp, tp = k.hparams, t.hparams
    k_pad, t_pad = keras_pad_before(ctx, k), torch_pad_before(ctx, index, t)
    source = k_pad if k_pad is not None else k
    sizes = source.input_shapes[0][1:-1] if source.input_shapes else []
    problems, zero_cells = [], {"keras": False, "torch": False}
    for i, size in enumerate(sizes):
        if size is None or i >= len(kp.get("pool_size", [])) or i >= len(tp.get("pool_size", [])):
            continue
        kx = k_pad.hparams["padding"][i] if k_pad is not None else [0, 0]
        tx = t_pad.hparams["padding"][i] if t_pad is not None else [0, 0]
        ks, ss = kp["pool_size"][i], kp["strides"][i]
        kb, kn = _keras_windows(kp.get("padding", "valid"), size + sum(kx), ks, ss)
        tb, tn = _torch_windows(size + sum(tx), tp["pool_size"][i], tp["strides"][i], tp["padding"][i],
                                tp.get("ceil_mode"))
        zero_cells["keras"] |= any(kx)
        zero_cells["torch"] |= any(tx)
        if (kb + kx[0], kn) != (tb + tx[0], tn):
            problems.append(f"dim {i} (size {size}): Keras {kn} windows from {-(kb + kx[0])}, "
                            f"the port {tn} from {-(tb + tx[0])}")
    return problems, k_pad, t_pad, zero_cells


def _non_negative(ctx, layer) -> bool:
    """The Keras layer's input comes straight from a ReLU (or another non-negative activation)."""
    src = ctx.keras_layer(layer.inbound[0]) if layer is not None and layer.inbound else None
    if src is None:
        return False
    act = src.hparams.get("activation")
    return act in NON_NEGATIVE


@rule("PL001", "pool-padding", "behaviour", "The pooling windows are placed differently",
      what="Keras padding='same' pools ceil(in/s) windows, padding TF-style (the smaller half before), and an "
           "average ignores the padded cells; 'valid' pools floor((in−k)/s)+1 windows. torch pads p on both "
           "sides, ceil_mode=True adds a partial last window, and AvgPool counts padded zeros unless "
           "count_include_pad=False.",
      why="The output shape can match while the windows are shifted by one (k=3, s=2 on an even input with "
          "padding=1), or the average divides by padded zeros. A separate zero padding (Keras ZeroPadding2D, "
          "torch F.pad) counts as the pooling's, but its cells hold 0 where a max pooling's own padding holds "
          "−inf: the same after a ReLU, different where a window holds only negative values.",
      fix="TF pads 0 before: padding=0, ceil_mode=True. TF pads p on both sides: padding=p (and "
          "count_include_pad=False for an average).")
def pool_padding(ctx, index, row):
    found = pool_windows(ctx, index, row)
    if found is None:
        return
    problems, k_pad, t_pad, zeros = found
    k, t = ctx.pair(row, "pool")
    kp, tp = k.hparams, t.hparams
    mode = kp.get("padding", "valid")
    before = (f"{label(k_pad)} + " if k_pad is not None else "")
    if problems:
        yield Hit(f"{before}padding='{mode}' vs padding={tup(tp['padding'])}, ceil_mode={tp.get('ceil_mode')}: "
                  + "; ".join(problems) + ".")
    elif kp.get("pool_type") == "avg" and any(tp.get("padding", [])) and tp.get("count_include_pad", True) \
            and not zeros["keras"]:
        yield Hit(f"Keras averages over the cells inside the input; {label(t)} has padding={tup(tp['padding'])} "
                  "and count_include_pad=True, so border windows divide by padded zeros.")
    elif kp.get("pool_type") == "max" and zeros["keras"] != zeros["torch"] and \
            not _non_negative(ctx, k_pad if k_pad is not None else k):
        zero_side = "Keras" if zeros["keras"] else "the port"
        yield Hit(f"the windows agree, but {zero_side} pads with zeros ({label(k_pad or t_pad)}) where the other "
                  "side's max pooling ignores the border (−inf): a window over only negative values gives 0 on one "
                  "side; the input is not known to be non-negative (it does not come from a ReLU).")


@rule("RNN004", "gru-gate-order", "convention", "GRU gates are stored in another order",
      what="Keras stores a GRU's gates as [z, r, h] (update, reset, candidate), torch as [r, z, n]. Counts are "
           "equal with Keras's default reset_after=True.",
      why="Each framework concatenates the three gates' weights in its own order.",
      fix="When porting: swap the first two U-wide blocks of kernel, recurrent_kernel and both bias rows, then "
          "weight_ih = kernel.T, weight_hh = recurrent_kernel.T, bias_ih = bias[0], bias_hh = bias[1].")
def gru_gate_order(ctx, index, row):
    k, t = ctx.pair(row, "rnn")
    if k is None or k.hparams.get("cell") != "GRU" or t.hparams.get("cell") != "GRU":
        return
    if k.hparams.get("reset_after", True):
        units = k.hparams.get("units")
        yield Hit(f"Keras [z, r, h] vs torch [r, z, n]: swap the first two {units}-wide blocks of each weight "
                  "and bias when porting.")


@rule("RNN005", "gru-reset-before", "behaviour", "A Keras GRU with reset_after=False has no torch equivalent",
      what="With reset_after=False, Keras applies the reset gate before the recurrent matrix product and keeps one "
           "bias (3U fewer parameters); torch's GRU always applies it after (Keras's reset_after=True).",
      why="Keras 2's default; models trained with it compute a different function.",
      fix="Rebuild the Keras model with reset_after=True (Keras 3's default), or write the cell by hand in torch.")
def gru_reset_before(ctx, index, row):
    k, t = ctx.pair(row, "rnn")
    if k is None or k.hparams.get("cell") != "GRU" or t.hparams.get("cell") != "GRU":
        return
    if k.hparams.get("reset_after", True):
        return
    dirs = 2 if t.hparams.get("bidirectional") else 1
    extra = 3 * k.hparams.get("units", 0) * dirs if k.hparams.get("use_bias") and t.hparams.get("use_bias") else 0
    yield Hit(f"Keras {label(k)} has reset_after=False ({num(k.total_params)} parameters); torch's GRU resets "
              f"after the product, with a second bias ({num(t.total_params)}).",
              params=-extra if k.total_params - t.total_params == -extra else 0)


@rule("EMB001", "embedding-padding", "behaviour", "Id 0 is treated differently by the two embeddings",
      what="Keras Embedding(mask_zero=True) emits a mask, and the layers after it (an LSTM, a pooling) skip the "
           "padded steps; torch has no masks, so the port computes over them. torch padding_idx keeps that row at "
           "zero with a zero gradient, which Keras's embedding does not.",
      why="Keras propagates masks between layers; torch leaves padding to the user (pack_padded_sequence, "
          "attention masks).",
      fix="Handle the padding in the port (pack the sequences, mask the pooling), or drop mask_zero; match "
          "padding_idx with how the Keras model was trained.")
def embedding_padding(ctx, index, row):
    k, t = ctx.pair(row, "embedding")
    if k is None:
        return
    if k.hparams.get("mask_zero"):
        yield Hit(f"Keras {label(k)} has mask_zero=True: the layers after it skip id-0 steps; the port's "
                  f"{label(t)} passes them on (padding_idx={t.hparams.get('padding_idx')}).")
    elif t.hparams.get("padding_idx") is not None:
        yield Hit(f"the port's {label(t)} has padding_idx={t.hparams['padding_idx']} (a zero row with a zero "
                  f"gradient); Keras {label(k)} trains that row like any other (training only).",
                  training_only=True)


@rule("ATT001", "mha-head-size", "behaviour", "The attention heads have another size",
      what="Keras MultiHeadAttention projects queries and keys to key_dim per head (values to value_dim); torch "
           "MultiheadAttention(E, H) always uses E / H per head. Counts agree only when key_dim = value_dim = E / H "
           "(4E² + 4E with biases). key_dim=E is a common mistake.",
      why="Keras's key_dim is the size of one head, not of the model.",
      fix="Use key_dim = E // num_heads in Keras, or write the projections by hand in torch.")
def mha_head_size(ctx, index, row):
    k, t = ctx.pair(row, "attention")
    if k is None:
        return
    kd, vd, head = k.hparams.get("key_dim"), k.hparams.get("value_dim"), t.hparams.get("key_dim")
    if (kd, vd) != (head, head) or k.hparams.get("num_heads") != t.hparams.get("num_heads"):
        yield Hit(f"Keras {label(k)}: {k.hparams.get('num_heads')} heads of key_dim={kd}, value_dim={vd}; the port's "
                  f"{label(t)}: {t.hparams.get('num_heads')} heads of {head} (embed_dim {t.hparams.get('embed_dim')}).",
                  params=k.total_params - t.total_params)


@rule("ATT002", "mha-weight-layout", "convention", "Attention projections are stored in different layouts",
      what="Keras keeps query/key/value kernels of shape (E, H, head) with biases (H, head) and an output kernel "
           "(H, head, E); torch packs q, k and v into in_proj_weight (3E, E) and in_proj_bias (3E), with "
           "out_proj a Linear(E, E).",
      why="torch fuses the three input projections into one matrix.",
      fix="in_proj_weight = cat([W.reshape(E, H·head).T for W in (query, key, value)]); in_proj_bias = "
          "cat([b.reshape(-1) ...]); out_proj.weight = attention_output.kernel.reshape(H·head, E).T.")
def mha_weight_layout(ctx, index, row):
    k, t = ctx.pair(row, "attention")
    q, w = (_weight(k, "query/kernel"), _weight(t, "in_proj_weight")) if k is not None else (None, None)
    if q is not None and w is not None:
        yield Hit(f"query/key/value kernels {tup(q.shape)} each vs in_proj_weight {tup(w.shape)}: reshape to "
                  f"({q.shape[0]}, {math.prod(q.shape[1:])}), transpose and concatenate when porting.")


@rule("ATT003", "mha-batch-first", "behaviour", "The PyTorch attention reads the batch as the sequence axis",
      what="torch MultiheadAttention defaults to batch_first=False and reads (T, N, E); Keras reads (N, T, E). "
           "Self-attention on batch-first data runs without an error and attends across the batch instead.",
      why="torch's default follows the original Transformer implementation's layout.",
      fix="Construct it with batch_first=True (or transpose the input).")
def mha_batch_first(ctx, index, row):
    k, t = ctx.pair(row, "attention")
    if k is not None and reads_batch_as_sequence(k, t):
        yield Hit(f"{label(t)} has batch_first=False and receives {tup(t.input_shapes[0])}: it attends across "
                  f"{t.input_shapes[0][0]} as the sequence; Keras attends over the {k.input_shapes[0][1]} steps "
                  "of each sample.")


def separable_depthwise_bias(k, t) -> bool:
    """The port's depthwise half of a SeparableConv has a bias that Keras's does not."""
    return k.hparams.get("separable_part") == "depthwise" and not k.hparams.get("use_bias") \
        and bool(t.hparams.get("use_bias"))


@rule("CNV003", "separable-depthwise-bias", "bookkeeping", "The port's depthwise convolution has a redundant bias",
      what="Keras's SeparableConv2D has one bias, after the pointwise convolution. A port written as "
           "Conv2d(groups=in) + Conv2d(1x1) with torch's default bias=True adds in·multiplier parameters.",
      why="The pointwise convolution is linear, so a bias before it folds into the pointwise bias: the port "
          "computes the same functions, with more parameters.",
      fix="Nothing changes the outputs; pass bias=False to the depthwise Conv2d to make the counts agree, and "
          "set it to zero when porting weights.")
def separable_bias(ctx, index, row):
    k, t = ctx.pair(row, "depthwise_conv", torch=("conv",))
    if k is not None and separable_depthwise_bias(k, t):
        bias = _weight(t, "bias")
        n = bias.numel if bias else 0
        yield Hit(f"Keras {k.name.rpartition('/')[0]} ({k.type}) has no depthwise bias; the port's {label(t)} has "
                  f"{num(n)}, which the pointwise bias absorbs.", params=-n)


def bias_folds_into_bn(ctx, index, row):
    """(Keras BatchNormalization, torch BatchNorm) when a conv pair differs only in a bias that feeds
    nothing but a BatchNorm (on the side that has it): that bias folds exactly into the running mean."""
    k, t = ctx.pair(row, *CONV_KINDS, torch=("conv", "conv_transpose"))
    if k is None or bool(k.hparams.get("use_bias")) == bool(t.hparams.get("use_bias")):
        return None
    consumers = [layer for layer in ctx.keras.layers if k.id in layer.inbound]
    if len(consumers) != 1 or consumers[0].kind != "batchnorm" or k.hparams.get("activation", "linear") != "linear":
        return None
    kb = consumers[0]
    tb = ctx.neighbour_torch(index, 1)
    if tb is None or tb.kind != "batchnorm" or not tb.input_shapes or tb.input_shapes[0] != (t.output_shapes or [None])[0]:
        return None
    for other in ctx.rows:
        if other.keras == kb.id and other.torch == tb.id:
            return kb, tb
    return None


@rule("CNV004", "conv-bias-before-bn", "bookkeeping", "A convolution bias that the BatchNorm after it cancels",
      what="One side's convolution has a bias, the other's none, and the convolution feeds nothing but a "
           "BatchNorm. The normalisation subtracts the mean, so the bias changes nothing: in training the "
           "batch mean cancels it, at inference it folds into the running mean.",
      why="Keras applications and torch ports choose use_bias/bias differently before BatchNorm; a port that "
          "copies the default keeps a bias that does nothing.",
      fix="Nothing changes the outputs. When porting weights, fold the bias b into the BatchNorm: running_mean "
          "= moving_mean − b (Keras bias, torch conv without one); or set the port's extra bias to 0. Pass "
          "bias=False to make the counts agree.")
def conv_bias_before_bn(ctx, index, row):
    found = bias_folds_into_bn(ctx, index, row)
    if not found:
        return
    k, t = ctx.k(row), ctx.t(row)
    kb, tb = found
    bias = _weight(k, "bias") or _weight(t, "bias")
    n = bias.numel if bias else 0
    if k.hparams.get("use_bias"):
        yield Hit(f"Keras {label(k)} has a bias ({num(n)}) that only feeds {label(kb)}; the port's {label(t)} has "
                  f"none: port with running_mean = moving_mean − bias.", params=n)
    else:
        yield Hit(f"the port's {label(t)} has a bias ({num(n)}) that only feeds {label(tb)}; Keras {label(k)} has "
                  "none: set it to 0 when porting.", params=-n)


def transpose_crops(size: int, k: int, s: int, d: int, padding, output_padding) -> tuple[int, int]:
    """(start, end) that a transposed convolution crops from its full output of (size−1)·s + d·(k−1) + 1
    values (a negative end: values added, from the bias alone). Keras: padding 'valid'/'same' and its
    output_padding; torch: padding=p, output_padding=op crop p and p − op."""
    full = (size - 1) * s + d * (k - 1) + 1
    if isinstance(padding, int):  # torch
        return padding, padding - (output_padding or 0)
    ke = d * (k - 1) + 1
    if output_padding is None:
        length = size * s + max(ke - s, 0) if padding == "valid" else size * s
    else:
        pad = ke // 2 if padding == "same" else 0
        length = (size - 1) * s + ke - 2 * pad + output_padding
    if padding == "same":
        start = max(full - length, 0) // 2
    else:
        start = 0
    return start, full - length - start


@rule("CNV005", "conv-transpose-padding", "behaviour", "The transposed convolution crops its output differently",
      what="A transposed convolution computes a full output of (in−1)·s + d·(k−1) + 1 values per dimension and "
           "crops it. Keras 'same' crops (k−s)//2 at the start and the rest at the end ('valid' crops nothing, "
           "and with k < s adds s − k values at the end); torch crops padding at the start and padding − "
           "output_padding at the end. Shapes can agree while the values are shifted (k=3, s=2, 'same' against "
           "padding=1, output_padding=1).",
      why="torch has no 'same' for transposed convolutions; its padding is symmetric, so an odd k − s has no "
          "torch setting at all.",
      fix="Use torch padding = Keras's start crop and output_padding = padding − end crop; where that is "
          "impossible (negative, or ≥ stride), use padding=0 and crop the output in forward(), e.g. "
          "y[..., :-1, :-1].")
def conv_transpose_padding(ctx, index, row):
    problems = transpose_problems(ctx, index, row)
    if problems:
        k, t = ctx.pair(row, "conv_transpose")
        kp, tp = k.hparams, t.hparams
        yield Hit(f"padding='{kp.get('padding')}'" + (f", output_padding={tup(kp['output_padding'])}"
                                                     if kp.get("output_padding") else "")
                  + f" vs padding={tup(tp.get('padding'))}, output_padding={tup(tp.get('output_padding'))}: "
                  + "; ".join(problems) + ".")


def transpose_problems(ctx, index, row) -> list[str] | None:
    """Per-dimension differences in where a transposed-conv pair crops (a torch crop right after the conv
    included); [] when they agree, None when the row is not such a pair."""
    k, t = ctx.pair(row, "conv_transpose")
    if k is None or not k.input_shapes:
        return None
    kp, tp = k.hparams, t.hparams
    sizes = k.input_shapes[0][1:-1]
    after = ctx.neighbour_torch(index, 1)
    crop = after.hparams.get("cropping") if after is not None and after.kind == "crop" and after.input_shapes \
        and after.input_shapes[0] == (t.output_shapes or [None])[0] else None
    problems = []
    for i, size in enumerate(sizes):
        if size is None or i >= len(kp.get("kernel_size", [])):
            continue
        ks, st, dl = kp["kernel_size"][i], kp["strides"][i], kp.get("dilation", [1] * len(sizes))[i]
        kop = kp.get("output_padding")
        want = transpose_crops(size, ks, st, dl, kp.get("padding"), None if kop is None else kop[i])
        tpad = tp.get("padding")
        if isinstance(tpad, str):
            continue
        got = transpose_crops(size, ks, st, dl, tpad[i], (tp.get("output_padding") or [0] * len(sizes))[i])
        if crop is not None and i < len(crop):  # the port crops the rest itself: y[..., :-1, :-1]
            got = (got[0] + crop[i][0], got[1] + crop[i][1])
        if want != got:
            how = (f"padding={want[0]}, output_padding={want[0] - want[1]}" if 0 <= want[0] - want[1] < max(st, dl)
                   else "padding=0 and a crop in forward()")
            problems.append(f"dim {i} (size {size}, kernel {ks}, stride {st}): Keras crops {want[0]} at the start and "
                            f"{want[1]} at the end, the port {got[0]} and {got[1]}; use {how}")
    return problems


def _upsample_problem(k, t) -> str | None:
    kp, tp = k.hparams, t.hparams
    interp, mode, corners = kp.get("interpolation", "nearest"), tp.get("mode", "nearest"), tp.get("align_corners")
    sizes = kp.get("size")
    factors = tp.get("scale_factor")
    if sizes and factors and [float(x) for x in sizes] != [float(f) for f in (factors * len(sizes))[:len(sizes)]]:
        return f"Keras scales by {tup(sizes)}, the port by scale_factor={tup(factors)}"
    if interp == "nearest" and mode in ("nearest", "nearest-exact"):
        return None
    if interp == "bilinear" and mode == "bilinear":
        if corners:
            return ("Keras's bilinear samples at pixel centres (torch align_corners=False); the port has "
                    "align_corners=True")
        return None
    if interp == "bicubic" and mode == "bicubic":
        return ("both are bicubic, but TensorFlow's kernel (Keys a = −0.5) is not torch's (a = −0.75): the values "
                "differ on the TensorFlow backend")
    return f"Keras interpolates '{interp}', the port mode='{mode}'"


@rule("UPS001", "upsample-interpolation", "behaviour", "The upsampling interpolates differently",
      what="Keras UpSampling2D(interpolation=...) against torch nn.Upsample / F.interpolate(mode=..., "
           "align_corners=...): nearest agrees with nearest; Keras bilinear is torch bilinear with "
           "align_corners=False; bicubic differs on the TensorFlow backend (another cubic kernel); any other "
           "pairing, or another scale factor, computes other values.",
      why="nearest is the default on both sides, so a port that leaves the mode out of a bilinear Keras "
          "upsampling runs with the same shapes and other values.",
      fix="Use the same mode (F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False) for Keras "
          "'bilinear').")
def upsample_interpolation(ctx, index, row):
    k, t = ctx.pair(row, "upsample")
    if k is None:
        return
    problem = _upsample_problem(k, t)
    if problem:
        yield Hit(f"{label(k)} vs {label(t)}: {problem}.")


def rnn_readout(ctx, t):
    """For a torch select (out[:, -1], h_n[-1]) or a cat of selects that reads a recurrent module's outputs:
    (right, text) against what the paired Keras layer returns; None for any other row."""
    if t is None:
        return None
    selects = [t] if t.kind == "select" else []
    if t.kind == "merge" and t.inbound:
        parts = [ctx.torch_layer(i) for i in t.inbound]
        if parts and all(p is not None and p.kind == "select" for p in parts) \
                and len({p.hparams.get("of") for p in parts}) == 1:
            selects = parts
    if not selects:
        return None
    rnn_id = selects[0].hparams.get("of")
    k = next((ctx.k(r) for r in ctx.rows if r.torch == rnn_id and r.keras is not None), None)
    tr = ctx.torch_layer(rnn_id)
    if k is None or k.kind != "rnn" or tr is None:
        return None
    if k.hparams.get("return_sequences", False):
        return (t.kind == "select" and selects[0].hparams.get("part") == "output"
                and selects[0].hparams.get("index") in ("[0]",)), "the whole sequence"
    picked = " and ".join(f"{p.hparams.get('part')}{p.hparams.get('index')}" for p in selects)
    bidirectional = bool(tr.hparams.get("bidirectional"))
    if not bidirectional:
        ok = len(selects) == 1 and (selects[0].hparams.get("last_step") and selects[0].hparams.get("part") == "output"
                                    or (selects[0].hparams.get("part") == "h_n"
                                        and selects[0].hparams.get("index") == "[-1]"))
        return ok, f"the port takes {picked}: the last step, as Keras returns"
    if t.kind == "merge" and [p.hparams.get("part") for p in selects] == ["h_n", "h_n"] \
            and [p.hparams.get("index") for p in selects] == ["[-2]", "[-1]"]:
        mode = k.hparams.get("merge_mode", "concat")
        if mode == "concat":
            return True, ("the port concatenates the final states of both directions, h_n[-2] (forward) and "
                          "h_n[-1] (backward), as Keras's Bidirectional returns them")
        return False, f"the port concatenates both directions where Keras merges them with merge_mode='{mode}'"
    if t.kind == "merge":
        return False, f"the port concatenates {picked}: not [forward, backward] final states"
    if selects[0].hparams.get("last_step"):
        return False, (f"the port takes {picked}, the last step of the sequence output: the backward direction has "
                       "seen only the last token there; Keras returns each direction's final state, "
                       "torch.cat([h_n[-2], h_n[-1]], dim=1)")
    return None  # h_n[-2] / h_n[-1] on their way into a cat: judged on the cat


@rule("RNN006", "rnn-readout", "structure", "The port picks the recurrent layer's output from the module's results",
      what="A torch LSTM/GRU/RNN returns the whole sequence and the final states; forward() picks what the Keras "
           "layer returns: out[:, -1] or h_n[-1] for one direction, torch.cat([h_n[-2], h_n[-1]], dim=1) for a "
           "bidirectional layer (Keras's merge_mode='concat').",
      why="Keras layers return what they are configured to return; torch modules return everything.",
      fix="Nothing to fix.")
def rnn_readout_right(ctx, index, row):
    t = ctx.t(row)
    if row.keras is None and t is not None:
        found = rnn_readout(ctx, t)
        if found and found[0]:
            yield Hit(f"{label(t)}: {found[1]}.")
        elif found is None and t.kind == "select":
            yield Hit(f"{label(t)} picks {t.hparams.get('part')}{t.hparams.get('index')} of {t.hparams.get('of')} "
                      "for the row that uses it.")


@rule("RNN007", "rnn-readout-differs", "behaviour", "The port reads another output of the recurrent layer",
      what="forward() picks something other than what the Keras layer returns: out[:, -1] of a bidirectional "
           "layer (its backward half has seen only the last token), the two directions in the other order, or "
           "a concatenation where Keras's merge_mode sums, multiplies or averages.",
      why="out[:, -1] is right for one direction, and tutorials use it for both.",
      fix="For a bidirectional layer take torch.cat([h_n[-2], h_n[-1]], dim=1) (merge_mode='concat'), or "
          "(h_n[-2] + h_n[-1]) for 'sum', and so on.")
def rnn_readout_wrong(ctx, index, row):
    t = ctx.t(row)
    if row.keras is None and t is not None:
        found = rnn_readout(ctx, t)
        if found and not found[0]:
            yield Hit(f"{label(t)}: {found[1]}.")
