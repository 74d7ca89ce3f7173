"""UNX: mismatches that no other rule accounts for. Never hidden."""

from __future__ import annotations

from ..rules import FAILING
from . import Hit, rule
from ._text import label, num, shape


@rule("UNX001", "shape-differs", "unexplained", "Output shapes differ and no rule explains why",
      what="The paired layers produce different output shapes, even once NHWC is read as NCHW, and no other "
           "rule on the row accounts for it.",
      why="Usually an earlier difference (padding, stride, a missing layer) or a port that reshapes differently.",
      fix="Look at the first row where the shapes part; the rows above it match.", scope="final")
def shape_differs(ctx):
    for index, row in enumerate(ctx.rows):
        if ctx.shapes(row) != "different":
            continue
        if any(f.category in FAILING or f.code == "RNN003" for f in ctx.row_findings(index)):
            continue
        k, t = ctx.k(row), ctx.t(row)
        yield index, Hit(f"{label(k)} {shape(k)} vs {label(t)} {shape(t)}.")


@rule("UNX002", "params-differ", "unexplained", "Parameter counts differ and no rule explains why",
      what="The row's Keras and PyTorch parameter counts differ by more than the rules on the row account for.",
      why="A difference ktdiff does not know yet: a custom layer, an unusual argument.",
      fix="Compare the two layers' weights (Keras layer.weights, torch named_parameters()) by hand.", scope="final")
def params_differ(ctx):
    for index, row in enumerate(ctx.rows):
        delta = ctx.keras_delta(row) - ctx.torch_delta(row)
        explained = sum(f.params for f in ctx.row_findings(index))
        if delta != explained:
            k, t = ctx.k(row), ctx.t(row)
            who = " vs ".join(x for x in (label(k) if k else "", label(t) if t else "") if x)
            yield index, Hit(f"{who}: Keras {num(ctx.keras_delta(row))} vs PyTorch {num(ctx.torch_delta(row))}; "
                             f"{num(delta - explained)} unexplained.", params=delta - explained)
