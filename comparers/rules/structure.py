"""ROW: how the two models lay out their rows (input rows, containers, unmatched layers)."""

from __future__ import annotations

from . import Hit, rule
from ._text import label, num, shape
from .layers import absorbed_pad


@rule("ROW001", "keras-input-row", "structure", "Keras shows the model input as a row",
      what="A Keras Functional model lists its input as an InputLayer row (0 parameters). PyTorch has no input row.",
      why="Keras models are graphs that start from Input tensors; a torch module receives its input as the "
          "argument of forward().",
      fix="Nothing to fix. ktdiff derives the PyTorch input from this row's shape unless --input-shape is given.")
def keras_input_row(ctx, index, row):
    k = ctx.k(row)
    if k is not None and k.kind == "input" and row.torch is None:
        yield Hit(f"{label(k)} {shape(k)} is the model input; PyTorch takes it as forward()'s argument.")


@rule("ROW002", "torch-container-row", "structure", "PyTorch shows container modules as rows",
      what="A torch module that holds other modules (the root module, an nn.Sequential, a block) appears as "
           "a row of its own; its children's parameters are counted on their own rows.",
      why="torch summaries follow the module tree; a Keras model's layers are flat (nested models aside).",
      fix="Nothing to fix.")
def torch_container_row(ctx, index, row):
    t = ctx.t(row)
    if t is not None and t.kind == "container" and row.keras is None and t.executed and not t.has_params:
        yield Hit(f"{label(t)} groups modules; Keras has no row for it.")


@rule("ROW003", "keras-only-layer", "behaviour", "A Keras layer has no counterpart in the PyTorch model",
      what="A Keras layer has no PyTorch module or functional op in the same place.",
      why="The port leaves the layer out, or does its work in a way ktdiff cannot see (inside another module).",
      fix="Add the missing module (or functional call) to the port, or confirm the layer is a no-op at "
          "inference (Dropout) and suppress this code for it.")
def keras_only_layer(ctx, index, row):
    k = ctx.k(row)
    if k is None or row.torch is not None or row.keras_part != "layer" or k.kind in ("input", "activation"):
        return
    if absorbed_pad(ctx, index, row) or identity_op(k):
        return  # ROW007, ROW008
    extra = ""
    if k.kind == "dropout":
        extra = " Dropout only acts in training: inference outputs are unaffected, training is not."
    yield Hit(f"{label(k)} {shape(k)}, {num(k.total_params)} parameters, has no counterpart in the port.{extra}",
              params=k.total_params, training_only=k.kind == "dropout")


@rule("ROW004", "torch-only-module", "behaviour", "A PyTorch module has no counterpart in the Keras model",
      what="A PyTorch module or functional op (or a container's own parameters) has no Keras layer in the "
           "same place.",
      why="The port adds a layer the Keras model does not have, or keeps parameters directly on a container.",
      fix="Remove the extra module from the port, or add the matching layer to the Keras model.")
def torch_only_module(ctx, index, row):
    t = ctx.t(row)
    if t is None or row.keras is not None or not t.executed or t.kind == "activation":
        return
    if t.kind == "container":
        if t.has_params:
            names = ", ".join(w.name for w in t.weights)
            yield Hit(f"{label(t)} holds {num(t.total_params)} parameters of its own ({names}) that no Keras "
                      "layer matches.", params=-t.total_params)
        return
    if _shape_only(t) or absorbed_pad(ctx, index, row) or identity_op(t) or _readout(ctx, t):
        return  # ROW006, ROW007, ROW008, RNN006/RNN007
    extra = " Dropout only acts in training." if t.kind == "dropout" else ""
    yield Hit(f"{label(t)} {shape(t)}, {num(t.total_params)} parameters, has no counterpart in the Keras "
              f"model.{extra}", params=-t.total_params, training_only=t.kind == "dropout")


def _readout(ctx, t) -> bool:
    from .layers import rnn_readout

    return t.kind == "select" or (t.kind == "merge" and rnn_readout(ctx, t) is not None)


def identity_op(layer) -> str | None:
    """Why a parameter-free row passes its input on unchanged at inference, or None."""
    if layer is None or layer.has_params:
        return None
    hp = layer.hparams
    if layer.kind == "identity":
        return "an identity"
    if layer.kind == "dropout" and not hp.get("rate"):
        return "a dropout of rate 0"
    if layer.kind == "merge" and hp.get("operands") == 1:
        return "a concatenation of one tensor"
    if layer.kind in ("pool", "global_pool") and hp.get("output_size") and layer.input_shapes and layer.output_shapes \
            and layer.input_shapes[0] == layer.output_shapes[0]:
        return f"an adaptive pooling to its input's own size {tuple(hp['output_size'])}"
    return None


def _shape_only(t) -> bool:
    """A torch flatten/reshape that only drops singleton dimensions: no effect on the values."""
    if t.kind in ("flatten", "reshape") and t.input_shapes and t.output_shapes:
        inp, out = t.input_shapes[0], t.output_shapes[0]
        return [d for d in inp[1:] if d != 1] == [d for d in out[1:] if d != 1]
    return False


@rule("ROW005", "torch-module-unused", "bookkeeping", "A PyTorch module is never called by forward()",
      what="A module is registered (its parameters count in the totals) but forward() never calls it.",
      why="Often a leftover attribute, or a layer the port forgot to call. torchinfo counts such parameters "
          "on the parent row.",
      fix="Call the module in forward(), or delete it so that the parameter counts agree.")
def torch_module_unused(ctx, index, row):
    t = ctx.t(row)
    if t is not None and not t.executed and row.keras is None:
        yield Hit(f"{label(t)} holds {num(t.total_params)} parameters but forward() never calls it.",
                  params=-t.total_params)


@rule("ROW006", "torch-shape-only-op", "structure", "A PyTorch reshape that Keras does in the layer before",
      what="A torch Flatten/Identity that only drops singleton dimensions, e.g. the Flatten after "
           "AdaptiveAvgPool2d(1) (N, C, 1, 1) -> (N, C). Keras's GlobalAveragePooling2D returns (N, C) itself.",
      why="The values and their order are unchanged; only the row structure differs.",
      fix="Nothing to fix.")
def torch_shape_only(ctx, index, row):
    t = ctx.t(row)
    if t is not None and row.keras is None and t.executed and t.kind not in ("container", "activation") \
            and _shape_only(t):
        yield Hit(f"{label(t)} {shape(t, 'input')} -> {shape(t)} only drops singleton dimensions.")


@rule("ROW007", "padding-as-separate-op", "structure", "One side pads in a layer of its own, the other inside the conv",
      what="A zero-padding layer (Keras ZeroPadding2D, torch F.pad or nn.ZeroPad2d) feeds a convolution whose "
           "counterpart pads by the same amounts itself: ZeroPadding2D(1) + Conv2D(padding='valid') against "
           "Conv2d(padding=1), or Conv2D(padding='same', strides=2) against F.pad(x, (0, 1, 0, 1)) + Conv2d(padding=0). "
           "Likewise a crop after a transposed convolution (y[..., :-1, :-1]) that Keras's 'same' does inside it.",
      why="Keras applications pad explicitly before strided 'valid' convolutions; torch pads inside the conv, "
          "except where TF-style asymmetric 'same' padding has to be reproduced with F.pad.",
      fix="Nothing to fix: the convolution sees the same padded input. ktdiff counts the separate padding as the "
          "conv's when it checks CNV002.")
def padding_as_separate_op(ctx, index, row):
    how = absorbed_pad(ctx, index, row)
    if how:
        yield Hit(how)


@rule("ROW008", "identity-op", "structure", "A row that passes its input on unchanged",
      what="A layer or op without a counterpart that changes nothing at inference: an Identity module, a "
           "dropout of rate 0, a concatenation of one tensor, an adaptive pooling to its input's own size "
           "(torchvision VGG's AdaptiveAvgPool2d((7, 7)) on a 7×7 map).",
      why="Libraries keep such rows for generality (a configurable drop rate, an input size other than the "
          "default); the other side simply has no row.",
      fix="Nothing to fix.")
def identity_row(ctx, index, row):
    k, t = ctx.k(row), ctx.t(row)
    layer = t if row.keras is None else k if row.torch is None and row.keras_part == "layer" else None
    if layer is None or (layer is t and (not t.executed or t.kind == "container")):
        return
    why = identity_op(layer)
    if why:
        yield Hit(f"{label(layer)} {shape(layer, 'input')} -> {shape(layer)} is {why}.")


def _keras_output_partner(ctx, keras_id: str) -> str | None:
    """The torch row that holds a Keras layer's output: its fused activation's partner, else its own."""
    found = None
    for row in ctx.rows:
        if row.keras == keras_id and row.torch is not None:
            if row.keras_part == "activation":
                return row.torch
            found = row.torch
    return found


def _nearest_paired(ctx, torch_id: str, paired: set[str]) -> str | None:
    """torch_id itself if it is paired, else the nearest paired row it reads through unpaired rows."""
    seen: set[str] = set()
    while torch_id is not None and torch_id not in paired and torch_id not in seen:
        seen.add(torch_id)
        layer = ctx.torch_layer(torch_id)
        torch_id = layer.inbound[0] if layer is not None and len(layer.inbound) == 1 else None
    return torch_id


@rule("MRG001", "merge-operand-order", "behaviour", "The concatenation takes its inputs in another order",
      what="A Keras Concatenate and the port's torch.cat join the same tensors, paired row by row, but in "
           "another order: the channels of the result are permuted, so everything after it reads the wrong "
           "branch's features (the shapes agree when the branches have the same width).",
      why="Ports written branch by branch, or with the branches listed in another order than Keras's "
          "Concatenate([...]) call.",
      fix="List the tensors in torch.cat([...]) in the order of the Keras Concatenate's inputs.")
def merge_operand_order(ctx, index, row):
    k, t = ctx.pair(row, "merge")
    if k is None or k.hparams.get("op") != "concat" or t.hparams.get("op") != "concat":
        return
    if len(k.inbound) < 2 or len(k.inbound) != len(t.inbound):
        return
    paired = {r.torch for r in ctx.rows if r.is_pair}
    want = [_keras_output_partner(ctx, p) for p in k.inbound]
    have = [_nearest_paired(ctx, p, paired) for p in t.inbound]
    if None in want or None in have or sorted(want) != sorted(have) or want == have:
        return
    yield Hit(f"Keras {label(k)} joins {', '.join(k.inbound)} in that order; the port's {label(t)} joins their "
              f"partners in the order {', '.join(have)} (Keras's order would be {', '.join(want)}).")
