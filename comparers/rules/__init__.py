"""The rule catalogue: every difference ktdiff can explain, each under a stable code.

A rule is one small unit: a code that is never reused, a short kebab-case name,
a category, a title, a what / why / fix text (``ktdiff explain CODE``), and a
detector. Row rules look at one aligned row; model rules at the whole
comparison. Detectors return ``Hit``s; the engine (``comparers.explain``) turns
them into findings, applies suppressions and accounts for the parameter counts.

Codes are grouped by family: ROW (row structure), ACT (activations), BN
(batch normalisation), LAY (tensor layout), CNV (convolutions), DNS (dense),
FLT (flatten), HP (hyperparameters), UNX (differences no rule accounts for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

# Ordered from most to least severe; the verdict and the table's marks follow it.
CATEGORIES = {
    "unexplained": "a mismatch no rule accounts for: look at it yourself",
    "behaviour": "the two models compute something different (at inference or in training)",
    "convention": "a layout or weight-layout difference that matters only when porting weights",
    "bookkeeping": "counted differently by the two frameworks; same computation",
    "note": "a known framework difference that no setting changes; it does not affect the verdict",
    "structure": "rows laid out differently (input rows, containers, fused activations); nothing differs",
}
FAILING = frozenset({"unexplained", "behaviour"})


@dataclass(frozen=True)
class Hit:
    """What a detector found on a row: a specific message and the parameters it accounts for.

    ``params`` is the part of the row's Keras-minus-PyTorch parameter difference
    that this hit explains (0 when it explains none).
    """

    message: str
    params: int = 0
    training_only: bool = False  # this difference shows only in training (a dropout rate, say)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    category: str
    title: str
    what: str
    why: str
    fix: str
    detect: Callable[..., Iterable[Hit]]
    scope: str = "row"  # "row" | "model" | "final" (after all other rules, sees their findings)
    #                     | "verification" (after the numeric check's attribution)
    training_only: bool = False  # every hit of this rule shows only in training, never in inference outputs

    def to_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "category": self.category, "title": self.title,
                "what": self.what, "why": self.why, "fix": self.fix, "scope": self.scope,
                "training_only": self.training_only}


REGISTRY: dict[str, Rule] = {}


def rule(code: str, name: str, category: str, title: str, *, what: str, why: str, fix: str,
         scope: str = "row", training_only: bool = False) -> Callable:
    """Register a detector under a stable code."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r} for {code}")

    def register(fn: Callable[..., Iterable[Hit]]) -> Callable[..., Iterable[Hit]]:
        if code in REGISTRY or any(r.name == name for r in REGISTRY.values()):
            raise ValueError(f"rule code or name registered twice: {code} {name}")
        REGISTRY[code] = Rule(code, name, category, title, " ".join(what.split()), " ".join(why.split()),
                              " ".join(fix.split()), fn, scope, training_only)
        return fn

    return register


def all_rules() -> list[Rule]:
    from . import activations, layers, normalization, structure, unexplained  # noqa: F401 - registers

    return sorted(REGISTRY.values(), key=lambda r: r.code)


def get_rule(code_or_name: str) -> Rule | None:
    rules = all_rules()
    wanted = code_or_name.strip()
    for r in rules:
        if r.code == wanted.upper() or r.name == wanted.lower():
            return r
    return None
