"""Run the rule catalogue over the aligned rows; account for the totals; reach a verdict."""

from __future__ import annotations

import copy

from dataclasses import dataclass, field

from .align import Row
from .layout import compare_shapes, to_channels_first
from .rules import CATEGORIES, FAILING, Hit, Rule, all_rules
from .summary import Layer, ModelSummary
from .verify import Verification, attribute

VERDICTS = {
    "equivalent": "equivalent",
    "bookkeeping": "equivalent except for bookkeeping",
    "different": "different",
}
EXIT_CODES = {"equivalent": 0, "bookkeeping": 0, "different": 1}


@dataclass
class Finding:
    code: str
    name: str
    category: str
    message: str
    row: int | None = None
    keras: str | None = None
    torch: str | None = None
    params: int = 0
    suppressed: bool = False
    suppression: str | None = None  # where the suppression came from, and why
    training_only: bool = False     # the difference shows in training only, not in inference outputs

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class Accounting:
    """The totals, and the parameter difference accounted for to the last parameter."""

    keras_trainable: int
    keras_non_trainable: int
    torch_trainable: int
    torch_frozen: int
    torch_buffers: int
    torch_persistent_buffers: int
    explained: list[dict] = field(default_factory=list)  # {"code", "row", "params"}
    unexplained: int = 0

    @property
    def keras_total(self) -> int:
        return self.keras_trainable + self.keras_non_trainable

    @property
    def torch_total(self) -> int:
        return self.torch_trainable + self.torch_frozen

    @property
    def difference(self) -> int:
        return self.keras_total - self.torch_total

    def to_dict(self) -> dict:
        return {
            "keras": {"total": self.keras_total, "trainable": self.keras_trainable,
                      "non_trainable": self.keras_non_trainable},
            "torch": {"total": self.torch_total, "trainable": self.torch_trainable, "frozen": self.torch_frozen,
                      "buffers": self.torch_buffers, "persistent_buffers": self.torch_persistent_buffers},
            "difference": self.difference, "explained": self.explained, "unexplained": self.unexplained,
        }


@dataclass
class Result:
    keras: ModelSummary
    torch: ModelSummary
    rows: list[Row]
    findings: list[Finding]
    accounting: Accounting
    verdict: str
    verification: Verification | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def verdict_text(self) -> str:
        return VERDICTS[self.verdict]

    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]

    def row_findings(self, index: int) -> list[Finding]:
        return [f for f in self.findings if f.row == index]


class Context:
    """What a detector may look at: both summaries, the rows, and the findings so far."""

    def __init__(self, keras: ModelSummary, torch: ModelSummary, rows: list[Row],
                 verification: Verification | None = None):
        self.keras, self.torch, self.rows = keras, torch, rows
        self.verification = verification
        self._k = {layer.id: layer for layer in keras.layers}
        self._t = {layer.id: layer for layer in torch.layers}
        self.findings: list[Finding] = []

    def k(self, row: Row) -> Layer | None:
        return self._k.get(row.keras) if row.keras is not None else None

    def t(self, row: Row) -> Layer | None:
        return self._t.get(row.torch) if row.torch is not None else None

    def pair(self, row: Row, *kinds: str, torch: tuple[str, ...] | None = None) -> tuple[Layer | None, Layer | None]:
        """(Keras layer, torch module) of a paired row whose Keras kind is one of `kinds` and whose torch
        kind is one of `torch` (default: the same kinds); (None, None) otherwise. No kinds: any pair."""
        k, t = self.k(row), self.t(row)
        if k is None or t is None or row.keras_part != "layer":
            return None, None
        if kinds and (k.kind not in kinds or t.kind not in (torch or kinds)):
            return None, None
        return k, t

    def keras_layer(self, layer_id: str) -> Layer | None:
        return self._k.get(layer_id)

    def torch_layer(self, layer_id: str) -> Layer | None:
        return self._t.get(layer_id)

    def shapes(self, row: Row) -> str:
        k, t = self.k(row), self.t(row)
        if k is None or t is None or row.keras_part != "layer":
            return "unknown"
        return compare_shapes(k.output_shapes[:1], t.output_shapes[:1])

    def row_findings(self, index: int) -> list[Finding]:
        return [f for f in self.findings if f.row == index]

    @property
    def channels_moved(self) -> bool:
        """The port's input is the Keras input read channels-first (NHWC -> NCHW)."""
        for k, t in zip(self.keras.inputs, self.torch.inputs):
            if len(k.shape) >= 3 and k.shape[1:] != t.shape[1:] and to_channels_first(k.shape)[1:] == t.shape[1:]:
                return True
        return False

    def keras_delta(self, row: Row) -> int:
        k = self.k(row)
        return k.total_params if k is not None and row.keras_part == "layer" else 0

    def torch_delta(self, row: Row) -> int:
        t = self.t(row)
        return t.total_params if t is not None else 0

    def neighbour_torch(self, index: int, step: int) -> Layer | None:
        """The nearest executed torch module or op before (step=-1) or after (step=1) a row."""
        i = index + step
        while 0 <= i < len(self.rows):
            t = self.t(self.rows[i])
            if t is not None and t.kind != "container" and t.executed:
                return t
            i += step
        return None

    def is_last_keras_entry(self, index: int) -> bool:
        for row in self.rows[index + 1:]:
            k = self.k(row)
            if k is not None and k.kind != "input":
                return False
        return True


def explain(keras: ModelSummary, torch: ModelSummary, rows: list[Row], ignore: list[str] | None = None,
            verification: Verification | None = None) -> Result:
    if verification is not None:
        verification = copy.deepcopy(verification)  # attribution fills it in; the caller's stays as it was
    ctx = Context(keras, torch, rows, verification)
    rules = all_rules()
    for scope in ("row", "model", "final", "verification"):
        if scope == "verification":
            if verification is None:
                continue
            attribute(verification, ctx.findings, len(rows))  # which findings explain the divergence
        for rule in (r for r in rules if r.scope == scope):
            if scope == "row":
                for index, row in enumerate(rows):
                    _record(ctx, rule, rule.detect(ctx, index, row), index, row)
            else:
                for index, hit in rule.detect(ctx):
                    _record(ctx, rule, [hit], index, rows[index] if index is not None else None)
    _suppress(ctx.findings, ignore or [], torch.suppressions)
    accounting = _account(ctx)
    return Result(keras, torch, rows, ctx.findings, accounting, _verdict(ctx.findings), verification)


def _record(ctx: Context, rule: Rule, hits, index: int | None, row: Row | None) -> None:
    for hit in hits or ():
        if not isinstance(hit, Hit):
            raise TypeError(f"{rule.code} returned {hit!r}")
        ctx.findings.append(Finding(
            code=rule.code, name=rule.name, category=rule.category, message=hit.message, row=index,
            keras=row.keras if row is not None else None, torch=row.torch if row is not None else None,
            params=hit.params, training_only=hit.training_only or rule.training_only,
        ))


def _suppress(findings: list[Finding], ignore: list[str], source: dict[str, str]) -> None:
    wanted = {c.strip().upper() for c in ignore if c.strip()}
    for f in findings:
        if f.code in wanted:
            f.suppressed, f.suppression = True, "--ignore"
        elif f.code in source:
            reason = source[f.code]
            f.suppressed = True
            f.suppression = "ktdiff: ignore in the PyTorch source" + (f": {reason}" if reason else "")


def _account(ctx: Context) -> Accounting:
    k, t = ctx.keras.totals, ctx.torch.totals
    acc = Accounting(k.trainable, k.non_trainable, t.trainable, t.non_trainable, t.buffers, t.persistent_buffers)
    for f in ctx.findings:
        if f.params and f.category != "unexplained":
            acc.explained.append({"code": f.code, "row": f.row, "params": f.params})
    acc.unexplained = acc.difference - sum(e["params"] for e in acc.explained)
    return acc


def _verdict(findings: list[Finding]) -> str:
    active = [f for f in findings if not f.suppressed]
    if any(f.category in FAILING for f in active):
        return "different"
    if any(f.category == "bookkeeping" for f in active):
        return "bookkeeping"
    return "equivalent"


def category_rank(category: str) -> int:
    return list(CATEGORIES).index(category)
