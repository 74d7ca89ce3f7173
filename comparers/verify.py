"""Numeric verification, the pure part: what to port and compare, and what the numbers mean.

``plan`` reads the aligned rows and says, per row, which porting function takes
the Keras layer's weights into the torch module, and which outputs to compare
(and in which layout). The workers do the numeric work (``keras_verify``: run
the Keras model and keep every layer's output; ``torch_verify``: port, run the
port, compare each output as it is produced). ``evaluate`` turns their raw
statistics into a ``Verification``; ``attribute`` (called by the explain stage)
names the first row whose outputs diverge and the findings that explain it.
No framework is imported here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .align import Row, fused_activation
from .layout import to_channels_first
from .porting import choose
from .summary import Layer, ModelSummary

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-6
CHANNELS_FIRST_KINDS = ("conv", "conv_transpose", "batchnorm", "pool", "upsample", "pad", "groupnorm")


@dataclass
class PortItem:
    row: int
    keras: str
    torch: str
    porter: str
    flatten_input: list | None = None  # (H, W, C) when the Dense reads a channels-last Flatten
    keras_hparams: dict = field(default_factory=dict)
    torch_hparams: dict = field(default_factory=dict)
    fold_bias_of: str | None = None    # a BatchNorm: subtract this Keras conv's bias from the moving mean (CNV004)
    bias_folded: bool = False          # a conv: its Keras bias goes into the BatchNorm after it


@dataclass
class Check:
    """Compare the Keras output of `keras` with the torch output of `torch` on `row`."""

    row: int
    keras: str
    torch: str
    torch_call: int = 1
    layout_hint: str = "same"          # "same" | "channels_last": how to read an ambiguous shape
    flatten_input: list | None = None  # reorder a Keras (h, w, c) flatten to torch's (c, h, w)
    rnn: dict | None = None            # {"last": bool, "bidirectional": bool} for a recurrent torch output


@dataclass
class Plan:
    ports: list[PortItem] = field(default_factory=list)
    unported: list[dict] = field(default_factory=list)  # {"row", "keras", "torch", "reason"}
    checks: list[Check] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)    # {"name", "keras_shape", "torch_shape", "dtype", "layout"}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RowStat:
    row: int
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    p99_abs_diff: float | None = None
    max_rel_diff: float | None = None   # max |k - t| / max |k|: relative to the row's output scale
    mean_rel_diff: float | None = None  # mean |k - t| / mean |k|
    scale: float | None = None
    within: bool | None = None          # None: not compared (the note says why)
    note: str | None = None


@dataclass
class Verification:
    status: str = "not-run"             # agree | diverge | partial | not-run
    tolerance: dict = field(default_factory=lambda: {"atol": DEFAULT_ATOL, "rtol": DEFAULT_RTOL})
    input: dict = field(default_factory=dict)
    weights: str = "ported"             # "ported" from the Keras model, or "given" (--torch-weights)
    rows: list[RowStat] = field(default_factory=list)
    output: RowStat | None = None       # the models' final outputs
    first_divergent_row: int | None = None
    attributed_to: list[str] = field(default_factory=list)
    later: list[dict] = field(default_factory=list)     # {"row", "codes"}: further divergences a finding explains
    unconfirmed: list[dict] = field(default_factory=list)  # {"row", "code", "why"}: flagged, yet the outputs agree
    unported_cause: int | None = None   # the first divergence follows a row whose weights could not be ported
    ported: int = 0                     # tensors written into the port
    missing: list[str] = field(default_factory=list)  # torch tensors that got no Keras weights
    saved: bool = False                 # ktdiff port: the state_dict was written
    unported: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stat(self, row: int) -> RowStat | None:
        for s in self.rows:
            if s.row == row:
                return s
        return None

    @property
    def max_rel(self) -> float | None:
        values = [s.max_rel_diff for s in self.rows if s.max_rel_diff is not None]
        if self.output is not None and self.output.max_rel_diff is not None:
            values.append(self.output.max_rel_diff)
        return max(values) if values else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["max_rel_diff"] = self.max_rel
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Verification":
        data = dict(data)
        data.pop("max_rel_diff", None)
        rows = [RowStat(**r) for r in data.pop("rows", [])]
        out = data.pop("output", None)
        return cls(rows=rows, output=RowStat(**out) if out else None, **data)


# --------------------------------------------------------------------------- plan

def _flatten_input(keras: ModelSummary, torch: ModelSummary, rows: list[Row], k: Layer) -> list | None:
    """(H, W, C) when Dense k reads a Keras Flatten of a channels-last tensor that the port flattens (C, H, W)."""
    if not k.inbound:
        return None
    kmap = {layer.id: layer for layer in keras.layers}
    f = kmap.get(k.inbound[0])
    if f is None or f.kind != "flatten" or not f.input_shapes or len(f.input_shapes[0]) < 3:
        return None
    f_in = f.input_shapes[0]
    tmap = {layer.id: layer for layer in torch.layers}
    for row in rows:
        if row.keras == f.id and row.torch is not None:
            tf = tmap[row.torch]
            if not tf.input_shapes:
                return None
            t_in = list(tf.input_shapes[0][1:])
            if t_in == list(f_in[1:]) and not _moved_input(keras, torch):
                return None  # the port flattens (h, w, c) itself (a permute before its flatten)
            if t_in == list(to_channels_first(f_in)[1:]):
                return [int(d) for d in f_in[1:]]
            return None
    # the Flatten has no partner (x.view recorded as something else): the port is channels-first if its input is
    return [int(d) for d in f_in[1:]] if _moved_input(keras, torch) and None not in f_in[1:] else None


def _moved_input(keras: ModelSummary, torch: ModelSummary) -> bool:
    for k, t in zip(keras.inputs, torch.inputs):
        if len(k.shape) >= 3 and len(k.shape) == len(t.shape):
            if list(k.shape[1:]) != list(t.shape[1:]) and \
                    all(a is None or a == b for a, b in zip(to_channels_first(k.shape)[1:], t.shape[1:])):
                return True
            if list(to_channels_first(k.shape)[1:]) == list(t.shape[1:]) and \
                    any(layer.kind in CHANNELS_FIRST_KINDS for layer in torch.layers[:8]):
                return True
    return False


def _layout(ks: list, ts: list, state: str) -> str | None:
    """'same' / 'channels_last' when the shapes decide; None when both readings fit."""
    if len(ks) != len(ts) or len(ks) < 3:
        return None
    same = all(a is None or a == b for a, b in zip(ks[1:], ts[1:]))
    moved = all(a is None or a == b for a, b in zip(to_channels_first(ks)[1:], ts[1:]))
    if same and not moved:
        return "same"
    if moved and not same:
        return "channels_last"
    return None


def plan(keras: ModelSummary, torch: ModelSummary, rows: list[Row]) -> Plan:
    """What to port (per paired row with weights) and which outputs to compare."""
    p = Plan()
    kmap = {layer.id: layer for layer in keras.layers}
    tmap = {layer.id: layer for layer in torch.layers}
    layer_row_torch: dict[str, str] = {}
    for row in rows:
        if row.keras is not None and row.torch is not None and row.keras_part == "layer":
            layer_row_torch[row.keras] = row.torch
    state = "channels_last" if _moved_input(keras, torch) else "same"
    folds = _bias_folds(keras, torch, rows)  # conv Keras id -> Keras BatchNormalization id
    for i, row in enumerate(rows):
        k = kmap.get(row.keras) if row.keras is not None else None
        t = tmap.get(row.torch) if row.torch is not None else None
        if k is not None and t is not None and row.keras_part == "layer" and (k.has_params or t.has_params):
            porter = choose(k.kind, t.kind, k.hparams.get("activation"), t.hparams.get("activation"))
            if porter is None:
                p.unported.append({"row": i, "keras": k.id, "torch": t.id,
                                   "reason": f"no weight layout known for {k.type} → {t.type}"})
            elif t.has_params or t.buffers:
                item = PortItem(i, k.id, t.id, porter,
                                _flatten_input(keras, torch, rows, k) if porter == "dense" else None,
                                k.hparams, t.hparams)
                item.bias_folded = k.id in folds and bool(k.hparams.get("use_bias"))
                item.fold_bias_of = next((c for c, bn in folds.items() if bn == k.id
                                          and kmap[c].hparams.get("use_bias")), None)
                p.ports.append(item)
        elif t is not None and k is None and t.has_params and t.call_index <= 1:
            p.unported.append({"row": i, "keras": None, "torch": t.id,
                               "reason": "no Keras counterpart: keeps its initial values"})
        elif k is not None and t is None and k.has_params and row.keras_part == "layer":
            p.unported.append({"row": i, "keras": k.id, "torch": None,
                               "reason": "no PyTorch counterpart: its weights are not used"})
        # the comparison: a Keras layer's output (after its fused activation) against the torch output
        if k is None or k.kind == "input":
            continue
        if row.keras_part == "layer":
            if t is None or t.kind == "container" or fused_activation(k) or t.hparams.get("has_tail") \
                    or (k.id in folds and k.hparams.get("use_bias")):
                continue  # (a module with a tail, BatchNormAct2d: its output is its act child's; a conv whose
                #          bias went into the BatchNorm after it: compared after that)
            partner = t
        else:  # the fused activation's row: the port's activation, or the layer's own output when it has none
            partner = t if t is not None else tmap.get(layer_row_torch.get(k.id, ""))
            if partner is None:
                continue
        ks = k.output_shapes[0] if k.output_shapes else []
        ts = partner.output_shapes[0] if partner.output_shapes else []
        nxt = tmap.get(rows[i + 1].torch) if i + 1 < len(rows) and rows[i + 1].keras is None \
            and rows[i + 1].torch is not None else None
        if nxt is not None and nxt.kind == "crop" and nxt.input_shapes and ts and nxt.input_shapes[0] == ts \
                and _layout(ks, nxt.output_shapes[0], state) is not None:
            partner, ts = nxt, nxt.output_shapes[0]  # the port crops right after (y[..., :-1, :-1]): compare that
        decided = _layout(ks, ts, state)
        if decided is not None:
            state = decided
        elif partner.kind in CHANNELS_FIRST_KINDS and len(ts) >= 3:
            state = "channels_last"
        check = Check(i, k.id, partner.id, max(1, partner.call_index), layout_hint=state)
        if k.kind == "flatten" and k.input_shapes and len(k.input_shapes[0]) >= 3 and partner.input_shapes:
            f_in = k.input_shapes[0]
            if list(partner.input_shapes[0][1:]) == list(to_channels_first(f_in)[1:]) and \
                    (list(partner.input_shapes[0][1:]) != list(f_in[1:]) or state == "channels_last"):
                check.flatten_input = [int(d) for d in f_in[1:]]
        if k.kind == "rnn" and partner.kind == "rnn":
            check.rnn = {"last": not k.hparams.get("return_sequences", True),
                         "bidirectional": bool(partner.hparams.get("bidirectional"))}
        if k.kind in ("flatten", "dense", "global_pool", "rnn", "embedding", "attention") and len(ks) < 3:
            state = "same"
        p.checks.append(check)
    return p


def _bias_folds(keras: ModelSummary, torch: ModelSummary, rows: list[Row]) -> dict[str, str]:
    """Conv rows whose bias only one side has and that feed only a BatchNorm (CNV004): Keras conv -> BN."""
    from .explain import Context
    from .rules.layers import bias_folds_into_bn

    ctx = Context(keras, torch, rows)
    out = {}
    for i, row in enumerate(rows):
        found = bias_folds_into_bn(ctx, i, row) if row.is_pair and row.keras_part == "layer" else None
        if found:
            out[row.keras] = found[0].id
    return out


def plan_inputs(keras: ModelSummary, torch: ModelSummary) -> list[dict]:
    """The concrete input of each side: Keras layout and torch layout of the same array."""
    out = []
    vocab = _vocab(keras)
    for i, t in enumerate(torch.inputs):
        k = keras.inputs[i] if i < len(keras.inputs) else None
        ts = list(t.shape)
        layout = "same"
        if k is not None and len(k.shape) == len(ts):
            ks = [ts[0]] + list(k.shape[1:])
            if len(ts) >= 3 and all(a is None or a == b for a, b in zip(to_channels_first(ks)[1:], ts[1:])) and \
                    (not all(a is None or a == b for a, b in zip(ks[1:], ts[1:])) or _moved_input(keras, torch)):
                layout = "channels_last"
                ks = [ts[0], *ts[2:], ts[1]]
            else:
                ks = [b if a is None else a for a, b in zip(ks, ts)]
        else:
            ks = ts
        name, keras_dtype = (k.name, k.dtype) if k is not None else (t.name, t.dtype)
        out.append({"name": name, "keras_shape": ks, "torch_shape": ts, "dtype": t.dtype, "keras_dtype": keras_dtype,
                    "kind": input_values(name, keras_dtype), "layout": layout, "high": vocab})
    return out


INPUT_VALUES = {"floats": "floats N(0, 1)", "ones": "a mask of ones", "zeros": "segment ids 0",
                "tokens": "token ids 1..{high}"}


def input_values(name: str, dtype: str) -> str:
    """What the check feeds an input (a key of INPUT_VALUES): floats, ones for a boolean or integer mask,
    zeros for segment/token-type ids, token ids for other integer inputs."""
    dtype = str(dtype)
    if dtype == "bool":
        return "ones"
    if not dtype.startswith(("int", "uint")):
        return "floats"
    low = name.lower()
    if "mask" in low:
        return "ones"
    return "zeros" if "segment" in low or "type" in low else "tokens"


def keras_check_inputs(keras: ModelSummary, batch: int = 1) -> list[dict] | None:
    """The check's input as the Keras side alone can make it (batch 1; None when a dimension is unknown):
    the Keras worker makes and runs it while the torch summary loads, and the plan reuses it when the
    port's input is the same array (plan_inputs gives the same Keras shapes)."""
    vocab = _vocab(keras)
    out = []
    for k in keras.inputs:
        if any(d is None for d in k.shape[1:]):
            return None
        out.append({"name": k.name, "keras_shape": [batch] + [int(d) for d in k.shape[1:]], "keras_dtype": k.dtype,
                    "kind": input_values(k.name, k.dtype), "high": vocab})
    return out


def _vocab(keras: ModelSummary) -> int:
    """Token ids stay below the first embedding's vocabulary (and 100): 1 .. high."""
    for layer in keras.layers:
        if layer.kind == "embedding" and layer.hparams.get("input_dim"):
            return max(1, min(int(layer.hparams["input_dim"]) - 1, 100))
    return 10


# --------------------------------------------------------------------------- evaluate

def _stat(row: int, raw: dict, atol: float, rtol: float) -> RowStat:
    if raw.get("note"):
        return RowStat(row, note=raw["note"])
    scale = float(raw["scale"])
    mean_ref = float(raw["mean_ref"])
    max_abs = float(raw["max_abs"])
    tiny = 1e-30
    return RowStat(row, max_abs_diff=max_abs, mean_abs_diff=float(raw["mean_abs"]), p99_abs_diff=float(raw["p99_abs"]),
                   max_rel_diff=max_abs / max(scale, tiny) if scale > 0 or max_abs > 0 else 0.0,
                   mean_rel_diff=float(raw["mean_abs"]) / max(mean_ref, tiny) if mean_ref > 0 or raw["mean_abs"] else 0.0,
                   scale=scale, within=bool(max_abs <= atol + rtol * scale))


def evaluate(p: Plan, raw: dict, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
             input_info: dict | None = None, weights: str = "ported") -> Verification:
    """Raw per-check statistics from the torch worker -> a Verification (before attribution)."""
    v = Verification(tolerance={"atol": atol, "rtol": rtol}, input=input_info or {}, weights=weights)
    by_row = {int(r["row"]): r for r in raw.get("rows", [])}
    for check in p.checks:
        got = by_row.get(check.row)
        if got is None:
            v.rows.append(RowStat(check.row, note="not reached: the port never produced this output"))
        else:
            v.rows.append(_stat(check.row, got, atol, rtol))
    if raw.get("final"):
        v.output = _stat(-1, raw["final"], atol, rtol)
    v.ported = int(raw.get("ported", 0))
    v.missing = list(raw.get("missing", []))
    v.saved = bool(raw.get("saved", False))
    v.unported = list(p.unported) + list(raw.get("unported", []))
    v.notes = list(raw.get("notes", []))
    compared = [s for s in v.rows if s.within is not None]
    diverged = [s for s in compared if not s.within] or \
        ([] if v.output is None or v.output.within is not False else [v.output])
    if diverged:
        v.status = "diverge"
        v.first_divergent_row = diverged[0].row if diverged[0].row >= 0 else None
    elif not compared and (v.output is None or v.output.within is None):
        v.status = "not-run"
    elif any(u.get("torch") for u in v.unported if u.get("keras") is not None) or \
            any(s.within is None for s in v.rows) or v.output is None or v.output.within is None:
        v.status = "partial"
    else:
        v.status = "agree"
    return v


# --------------------------------------------------------------------------- attribution

def _explains(f) -> bool:
    return f.category in ("behaviour", "unexplained") and not f.training_only and f.code != "UNX003"


def attribute(v: Verification, findings: list, n_rows: int) -> None:
    """Name the findings that explain the first divergence (and later, larger ones); note flagged rows
    whose outputs agree. Rows after the first divergence are never blamed by themselves."""
    by_row: dict[int, list] = {}
    for f in findings:
        if f.row is not None:
            by_row.setdefault(f.row, []).append(f)
    compared = sorted((s for s in v.rows if s.within is not None), key=lambda s: s.row)
    prev_row, first_seen = -1, False
    for s in compared:
        segment = [f for r in range(prev_row + 1, s.row + 1) for f in by_row.get(r, []) if _explains(f)]
        if not s.within and not first_seen:
            first_seen = True
            v.first_divergent_row = s.row
            v.attributed_to = sorted({f.code for f in segment})
            blocked = [u["row"] for u in v.unported if u.get("keras") and u.get("torch")
                       and prev_row < u["row"] <= s.row]
            if blocked and not v.attributed_to:  # a layer we could not port: not a difference of the models
                v.unported_cause = blocked[0]
                v.status = "partial"
        elif not s.within and segment:  # a flagged row further down that differs too: named, not blamed anew
            v.later.append({"row": s.row, "codes": sorted({f.code for f in segment})})
        elif s.within and not first_seen:
            for f in by_row.get(s.row, []):
                if f.category == "behaviour":
                    why = "affects training only" if f.training_only else "not seen in the outputs on this input"
                    v.unconfirmed.append({"row": s.row, "code": f.code, "why": why})
        prev_row = s.row
    if not first_seen and v.output is not None and v.output.within is False:
        # only the final output differs (after the last compared row): blame the rows after it
        tail = [f for r in range(prev_row + 1, n_rows) for f in by_row.get(r, []) if _explains(f)]
        v.attributed_to = sorted({f.code for f in tail})
    for f in findings:  # training-only differences on rows that were not compared
        if f.training_only and f.category == "behaviour" and \
                not any(u["row"] == f.row and u["code"] == f.code for u in v.unconfirmed):
            v.unconfirmed.append({"row": f.row, "code": f.code, "why": "affects training only"})
