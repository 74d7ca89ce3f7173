"""ACT: activations fused into Keras layers, missing, extra or different in the port."""

from __future__ import annotations

from ..align import CELL_KINDS, fused_activation
from ..layout import compare_shapes, to_channels_first
from . import Hit, rule
from ._text import fmt_float, label

DEFAULT_SLOPE = {"leaky_relu": 0.2}  # keras.activations.leaky_relu, as a string activation


def keras_activation(ctx, row) -> tuple[str | None, dict]:
    """The activation a Keras row applies: a fused one, or an activation layer's."""
    k = ctx.k(row)
    if k is None:
        return None, {}
    if row.keras_part == "activation":
        name = fused_activation(k)
        if name is None:
            return None, {}
        hp = {"activation": name, "axis": -1}
        if name in DEFAULT_SLOPE:
            hp["negative_slope"] = DEFAULT_SLOPE[name]
        return name, hp
    if k.kind == "activation":
        return k.hparams.get("activation"), k.hparams
    return None, {}


def _where(row, k) -> str:
    if row.keras_part == "activation":
        return f"{label(k)} applies {fused_activation(k)} inside the layer (activation='{fused_activation(k)}')"
    return f"{label(k)} applies {k.hparams.get('activation')}"


@rule("ACT001", "activation-fused", "structure", "Keras fuses the activation into the layer; PyTorch has a row for it",
      what="Keras layers take activation='relu' and apply it inside the layer's row; the port applies the same "
           "activation as a separate module (nn.ReLU) or a functional call (F.relu).",
      why="Keras's Dense/Conv layers carry an activation argument; torch's Linear/Conv do not.",
      fix="Nothing to fix: the computation is the same. ktdiff pairs the fused activation with the port's.")
def activation_fused(ctx, index, row):
    if row.keras_part != "activation" or row.torch is None:
        return
    k, t = ctx.k(row), ctx.t(row)
    name, _ = keras_activation(ctx, row)
    if name is not None and t.hparams.get("activation") == name and not list(_differences(ctx, row)):
        yield Hit(f"{_where(row, k)}; the port applies it as {label(t)}: same computation.")


@rule("ACT002", "activation-missing", "behaviour", "The port lacks an activation that the Keras model applies",
      what="A Keras activation (fused into a layer, or an activation layer) has no counterpart in the port.",
      why="activation='relu' is easy to miss when a Keras layer becomes nn.Linear or nn.Conv2d, which apply none. "
          "Two linear layers without a nonlinearity between them collapse into one affine map.",
      fix="Add the activation after the corresponding module: nn.ReLU() in __init__ or F.relu(...) in forward().")
def activation_missing(ctx, index, row):
    name, _ = keras_activation(ctx, row)
    if name is None or row.torch is not None:
        return
    if name in HEAD_LOSSES and ctx.is_last_keras_entry(index):
        return  # ACT005
    k = ctx.k(row)
    before, after = ctx.neighbour_torch(index, -1), ctx.neighbour_torch(index, 1)
    where = ""
    if before is not None and after is not None:
        where = f" between {label(before)} and {label(after)}"
    elif before is not None:
        where = f" after {label(before)}"
    collapse = ""
    if before is not None and after is not None and before.kind == after.kind == "dense" and name != "linear":
        collapse = f"; {after.name} ∘ {before.name} collapses into one affine map"
    yield Hit(f"{_where(row, k)}; the port has no activation{where}{collapse}.")


@rule("ACT003", "activation-extra", "behaviour", "The port applies an activation the Keras model does not",
      what="A PyTorch activation module or functional call has no counterpart in the Keras model.",
      why="A Keras layer with the default activation (None, 'linear') applies none; ports often add a ReLU "
          "out of habit.",
      fix="Remove the activation from the port, or add it to the Keras layer (activation='...').")
def activation_extra(ctx, index, row):
    t = ctx.t(row)
    if t is None or t.kind != "activation" or not t.executed or row.keras is not None:
        return
    before = ctx.neighbour_torch(index, -1)
    after_k = ""
    for prev in reversed(ctx.rows[:index + 1]):
        k = ctx.k(prev)
        if k is not None:
            if k.kind in CELL_KINDS:
                after_k = (f" (Keras {label(k)}'s activation='{k.hparams.get('activation')}' acts inside the "
                           "recurrent cell, as it does in torch)")
            elif not fused_activation(k):
                after_k = f" (after Keras {label(k)}, which applies none)"
            break
    where = f" after {label(before)}" if before is not None else ""
    yield Hit(f"{label(t)} applies {t.hparams.get('activation')}{where}; the Keras model has no activation "
              f"there{after_k}.")


def _axis_index(axis, rank: int, implicit: bool = False):
    if axis is None:
        return (0 if rank in (0, 1, 3) else 1) if implicit else None
    return int(axis) % rank if rank else 0


@rule("ACT004", "activation-differs", "behaviour", "The two activations differ",
      what="Both models apply an activation at this point, but a different function or with different "
           "arguments: relu vs gelu, LeakyReLU slope 0.3/0.2 vs 0.01, exact vs tanh-approximated GELU, or a "
           "softmax over another axis.",
      why="The defaults differ: Keras's LeakyReLU layer uses 0.3 and the 'leaky_relu' string 0.2, torch 0.01; "
          "keras.ops.gelu approximates by default, torch's GELU does not; nn.Softmax() without dim picks an "
          "axis from the input's rank.",
      fix="Set the argument explicitly on the PyTorch side: nn.LeakyReLU(0.3), nn.GELU(approximate='tanh'), "
          "nn.Softmax(dim=1).")
def activation_differs(ctx, index, row):
    for message in _differences(ctx, row):
        yield Hit(message)


def _differences(ctx, row):
    """How the port's activation on a row differs from the Keras one (nothing when they agree)."""
    name, khp = keras_activation(ctx, row)
    t = ctx.t(row)
    if name is None or t is None or t.kind != "activation":
        return
    tname = t.hparams.get("activation")
    k = ctx.k(row)
    if {tname, name} == {"gelu", "gelu_tanh"}:
        exact, approx = ("Keras", "the port") if name == "gelu" else ("the port", "Keras")
        yield (f"{_where(row, k)}; the port applies {label(t)}: {exact} computes the exact GELU (erf), {approx} "
               "the tanh approximation (approximate='tanh'): differences up to about 1e-3.")
        return
    if tname != name:
        yield f"{_where(row, k)}; the port applies {tname} ({label(t)})."
        return
    if name == "leaky_relu":
        ks, ts = khp.get("negative_slope"), t.hparams.get("negative_slope")
        if ks is not None and ts is not None and abs(ks - ts) > 1e-9:
            yield f"{label(k)} uses negative_slope={fmt_float(ks)}; {label(t)} uses {fmt_float(ts)}."
    if name in ("softmax", "log_softmax") and k.output_shapes and t.output_shapes:
        k_shape, t_shape = k.output_shapes[0], t.output_shapes[0]
        relation = compare_shapes([k_shape], [t_shape])
        ki = _axis_index(khp.get("axis", -1), len(k_shape))
        ti = _axis_index(t.hparams.get("axis"), len(t_shape), implicit=True)
        if relation == "layout" and ki is not None:  # where the Keras axis sits once read channels-first
            ki = to_channels_first(list(range(len(k_shape)))).index(ki)
        if ki is not None and ti is not None and ki != ti:
            yield (f"{label(k)} normalises over axis {khp.get('axis', -1)} of {tuple(k_shape)}; {label(t)} over "
                   f"dim {t.hparams.get('axis')} of {tuple(t_shape)}, another axis.")


def _logits_module(ctx, index):
    """The port's module that computes the logits: the last executed module with weights before the row
    (the classifier Linear), not a flatten or a pooling after it."""
    for j in range(index - 1, -1, -1):
        t = ctx.t(ctx.rows[j])
        if t is not None and t.executed and t.kind != "container" and t.has_params:
            return t
    return ctx.neighbour_torch(index, -1)


# The activation a Keras head ends in -> the torch loss that applies it itself, and the inference call.
HEAD_LOSSES = {
    "softmax": ("nn.CrossEntropyLoss", "log-softmax", "softmax(dim=1)"),
    "sigmoid": ("nn.BCEWithLogitsLoss", "the sigmoid", "torch.sigmoid"),
}


@rule("ACT005", "head-activation-missing", "behaviour",
      "Keras ends in a softmax or sigmoid; the port outputs logits",
      what="The Keras model's last layer applies softmax (or sigmoid), so it outputs probabilities; the port "
           "ends without one, so it outputs logits.",
      why="This is right when the port is trained with a loss that applies the activation itself "
          "(nn.CrossEntropyLoss for softmax: on logits it equals Keras's categorical cross-entropy on "
          "probabilities; nn.BCEWithLogitsLoss for sigmoid) and applies the activation at inference. It is "
          "wrong when the port's outputs are compared with Keras's, thresholded as probabilities, or fed to "
          "nn.NLLLoss / nn.BCELoss.",
      fix="Add nn.Softmax(dim=1) / nn.Sigmoid() at the end of forward(), or keep the logits head and document "
          "it in the module: a comment `# ktdiff: ignore[ACT005] trained with CrossEntropyLoss` in the class "
          "suppresses this finding.")
def head_activation_missing(ctx, index, row):
    name, _ = keras_activation(ctx, row)
    if name not in HEAD_LOSSES or row.torch is not None or not ctx.is_last_keras_entry(index):
        return
    loss, what, call = HEAD_LOSSES[name]
    k = ctx.k(row)
    before = _logits_module(ctx, index)
    out = f"{label(before)}" if before is not None else "the port"
    yield Hit(f"{_where(row, k)}: Keras outputs probabilities; {out} outputs logits. Right with {loss} (it "
              f"applies {what} itself) and {call} at inference, wrong if the outputs are compared with Keras's "
              "or used as probabilities.")
