"""UNX: mismatches that no other rule accounts for. Never hidden."""

from __future__ import annotations

from ..layout import compare_shapes
from ..rules import FAILING
from . import Hit, rule
from ._text import label, num, shape
from .layers import transpose_problems


def _inherited(ctx, row) -> bool:
    """The row's input shapes already differ: its output difference comes from upstream."""
    k, t = ctx.k(row), ctx.t(row)
    return compare_shapes(k.input_shapes[:1], t.input_shapes[:1]) == "different"


def _origin(ctx, index) -> int | None:
    """The nearest row above where a difference starts: a failing finding, or shapes that part there."""
    for j in range(index - 1, -1, -1):
        row = ctx.rows[j]
        if any(f.category in FAILING for f in ctx.row_findings(j)):
            return j
        if ctx.shapes(row) == "different" and not _inherited(ctx, row):
            return j
    return None


def _shape_rows(ctx, inherited: bool):
    """Paired rows whose output shapes differ with no failing finding on them, split by whether
    their inputs already differed."""
    for index, row in enumerate(ctx.rows):
        if ctx.shapes(row) != "different" or _inherited(ctx, row) != inherited:
            continue
        if any(f.category in FAILING or f.code == "RNN003" for f in ctx.row_findings(index)):
            continue
        if transpose_problems(ctx, index, row) == []:
            continue  # a transposed conv whose crop the port does in an op of its own (ROW007)
        yield index, ctx.k(row), ctx.t(row)


@rule("LAY002", "shape-follows-upstream", "note", "Output shapes differ because an earlier row differs",
      what="The paired layers produce different output shapes, and their inputs already differed: the "
           "difference comes from a row above.",
      why="One wrong stride, padding or missing layer changes the shape of everything after it.",
      fix="Fix the row the message points to; this one follows.", scope="final")
def shape_follows_upstream(ctx):
    for index, k, t in _shape_rows(ctx, inherited=True):
        origin = _origin(ctx, index)
        where = f"row {origin}" if origin is not None else "an earlier row"
        yield index, Hit(f"Keras {label(k)} {shape(k)} vs the port's {label(t)} {shape(t)}: the inputs already differ; "
                         f"this follows from {where}.")


@rule("UNX001", "shape-differs", "unexplained", "Output shapes differ and no rule explains why",
      what="The paired layers produce different output shapes, even once NHWC is read as NCHW, and no other "
           "rule on the row accounts for it.",
      why="Usually an earlier difference (padding, stride, a missing layer) or a port that reshapes differently.",
      fix="Look at the first row where the shapes part; the rows above it match.", scope="final")
def shape_differs(ctx):
    for index, k, t in _shape_rows(ctx, inherited=False):  # LAY002 takes the inherited ones
        yield index, Hit(f"Keras {label(k)} {shape(k)} vs the port's {label(t)} {shape(t)}.")


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
            who = " vs ".join(x for x in (f"Keras {label(k)}" if k else "", f"the port's {label(t)}" if t else "") if x)
            yield index, Hit(f"{who}: Keras {num(ctx.keras_delta(row))} vs PyTorch {num(ctx.torch_delta(row))}; "
                             f"{num(delta - explained)} unexplained.", params=delta - explained)


def _sci(value) -> str:
    return "—" if value is None else f"{value:.2g}"


@rule("UNX003", "outputs-diverge", "unexplained", "The outputs diverge here and no finding explains why",
      what="With the Keras weights ported into the port (or the port's own weights, --torch-weights) and both "
           "models run on the same input, this row is the first whose outputs differ beyond the tolerance, and "
           "no behavioural finding on it, or on the unpaired rows just before it, accounts for that.",
      why="A difference no structural rule can see: a permute in the wrong order, branches swapped at a "
          "concatenation, a residual taken from the wrong tensor, a weight stored transposed.",
      fix="Look at this row's computation in the port's forward() and at its inputs; the rows above it agree. "
          "Rows after it differ because of it and are not blamed.", scope="verification")
def outputs_diverge(ctx):
    v = ctx.verification
    if v is None or v.status != "diverge" or v.attributed_to or v.unported_cause is not None:
        return
    tol = v.tolerance
    if v.first_divergent_row is not None:
        s = v.stat(v.first_divergent_row)
        yield v.first_divergent_row, Hit(
            f"first divergent row: max |Keras − PyTorch| = {_sci(s.max_abs_diff)} ({_sci(s.max_rel_diff)} of the "
            f"output scale {_sci(s.scale)}; mean {_sci(s.mean_abs_diff)}), beyond {_sci(tol['atol'])} + "
            f"{_sci(tol['rtol'])} × scale; the rows above agree.")
    elif v.output is not None:
        last = max((s.row for s in v.rows if s.within is not None), default=None)
        yield last, Hit(
            f"the final outputs differ (max |Keras − PyTorch| = {_sci(v.output.max_abs_diff)}, "
            f"{_sci(v.output.max_rel_diff)} of the output scale) though every compared row agrees: the port "
            "computes something after its last compared row.")
