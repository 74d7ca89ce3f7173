"""Align the Keras layer list with the PyTorch execution list.

Keras layers are in graph order, torch leaf modules and functional ops in
execution order. A Keras layer with a fused activation (``Dense(100,
activation='relu')``) contributes a second entry for its activation, so that it
can pair with a separate ``nn.ReLU`` or ``F.relu`` row, or stand alone when the
port has none. The two entry lists are aligned by a global sequence alignment in
which parameter-bearing pairs of the same family score far higher than
parameter-free ones: they anchor, and activations, flattens, dropouts and
pools fall in between. Structure rows (the Keras InputLayer, torch containers)
and torch modules that forward never calls take no part in the alignment; they
are put back next to their neighbours. Nothing is dropped: an entry without a
partner gets a row with an empty cell on the other side.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import compare_shapes
from .summary import PARAMETER_FREE_KINDS, Layer, ModelSummary

COMPATIBLE = {frozenset({"conv", "depthwise_conv"})}
NEG = float("-inf")


@dataclass
class Row:
    """One row of the side-by-side table: ids into the two summaries, or None."""

    keras: str | None = None
    torch: str | None = None
    keras_part: str = "layer"  # "layer" | "activation" (the fused activation of the Keras layer)

    @property
    def is_pair(self) -> bool:
        return self.keras is not None and self.torch is not None

    def to_dict(self) -> dict:
        return {"keras": self.keras, "keras_part": self.keras_part, "torch": self.torch}


@dataclass
class _Entry:
    layer: Layer
    part: str      # "layer" | "activation"
    pos: float     # position in the original list
    kind: str


# Layers whose `activation` acts inside a recurrent cell (as in torch's LSTM/GRU/RNN), not on the output.
CELL_KINDS = ("rnn",)


def fused_activation(layer: Layer) -> str | None:
    """The activation a Keras layer applies to its output besides its own computation, if any."""
    act = layer.hparams.get("activation")
    if layer.kind not in ("activation", *CELL_KINDS) and act and act != "linear":
        return act
    return None


def _keras_entries(summary: ModelSummary) -> tuple[list[_Entry], list[_Entry]]:
    entries, structure = [], []
    for i, layer in enumerate(summary.layers):
        if layer.kind == "input":
            structure.append(_Entry(layer, "layer", i, layer.kind))
            continue
        entries.append(_Entry(layer, "layer", i, layer.kind))
        if fused_activation(layer):
            entries.append(_Entry(layer, "activation", i + 0.5, "activation"))
    return entries, structure


def _torch_entries(summary: ModelSummary) -> tuple[list[_Entry], list[_Entry]]:
    entries, structure = [], []
    for i, layer in enumerate(summary.layers):
        if layer.kind == "container" or not layer.executed:
            structure.append(_Entry(layer, "layer", i, layer.kind))
        else:
            entries.append(_Entry(layer, "layer", i, layer.kind))
    return entries, structure


ACTIVATION_FAMILIES = ({"gelu", "gelu_tanh"},)  # one function, two formulas: a pair, with ACT004 on it


def _same_family(a, b) -> bool:
    return a == b or any(a in f and b in f for f in ACTIVATION_FAMILIES)


def _kinds_compatible(a: str, b: str) -> bool:
    return a == b or frozenset({a, b}) in COMPATIBLE


def _score(k: _Entry, t: _Entry) -> float:
    if not _kinds_compatible(k.kind, t.kind):
        return NEG
    kl, tl = k.layer, t.layer
    shapes = compare_shapes(kl.output_shapes[:1], tl.output_shapes[:1]) if k.part == "layer" else "unknown"
    if k.kind in PARAMETER_FREE_KINDS:
        score = 4.0
        if k.kind == "activation":
            k_act = kl.hparams.get("activation") if k.part == "layer" else fused_activation(kl)
            score += 1.0 if _same_family(k_act, tl.hparams.get("activation")) else -2.0
        if k.kind == "merge" and kl.hparams.get("op") and tl.hparams.get("op"):
            score += 1.0 if kl.hparams["op"] == tl.hparams["op"] else -3.0
        if shapes in ("equal", "layout"):
            score += 1.0
        return score
    # A parameter-bearing pair that agrees in shape and count is worth far more than one that
    # does not, so that a wrong pairing never beats two right ones.
    score = 6.0
    if shapes in ("equal", "layout"):
        score += 10.0
    if kl.trainable_params == tl.trainable_params:
        score += 9.0
    return score


def _align(ks: list[_Entry], ts: list[_Entry]) -> list[tuple[_Entry | None, _Entry | None]]:
    n, m = len(ks), len(ts)
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]  # 0 diag, 1 up (keras only), 2 left (torch only)
    for i in range(1, n + 1):
        move[i][0] = 1
    for j in range(1, m + 1):
        move[0][j] = 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            pair = _score(ks[i - 1], ts[j - 1])
            diag = best[i - 1][j - 1] + pair if pair != NEG else NEG
            up, left = best[i - 1][j], best[i][j - 1]
            # ties: prefer a pair, then keeping Keras order first
            if diag >= up and diag >= left and diag != NEG:
                best[i][j], move[i][j] = diag, 0
            elif up > left:  # ties: torch-only first in the traceback, so Keras-only comes first
                best[i][j], move[i][j] = up, 1
            else:
                best[i][j], move[i][j] = left, 2
    out: list[tuple[_Entry | None, _Entry | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        mv = move[i][j]
        if mv == 0:
            out.append((ks[i - 1], ts[j - 1]))
            i, j = i - 1, j - 1
        elif mv == 1:
            out.append((ks[i - 1], None))
            i -= 1
        else:
            out.append((None, ts[j - 1]))
            j -= 1
    out.reverse()
    return out


FULL_MATCH = 25.0  # a parameter-bearing pair with equal shapes and equal trainable counts


# --------------------------------------------------------------------------- alignment by data flow

def _flow(entries: list[_Entry], sources: dict[str, str]) -> list[list] | None:
    """Each entry's producers (entry indices, or input names); None when a producer is no entry (an op
    that is no row, a nested model's input): then the flow is incomplete and the caller does without it."""
    out_of: dict[str, int] = {}
    layer_entry: dict[str, int] = {}
    for i, e in enumerate(entries):
        out_of[e.layer.id] = i  # a fused activation's entry follows its layer's: it holds the layer's output
        if e.part == "layer":
            layer_entry[e.layer.id] = i
    preds: list[list] = []
    for i, e in enumerate(entries):
        if e.part == "activation":
            preds.append([layer_entry[e.layer.id]])
            continue
        items: list = []
        for p in e.layer.inbound:
            if p in sources:
                items.append(sources[p])
            elif p in out_of and out_of[p] != i:
                items.append(out_of[p])
            else:
                return None
        preds.append(items)
    return preds


def _leading_alike(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def graph_align(keras: ModelSummary, k_entries: list[_Entry], k_structure: list[_Entry],
                t_entries: list[_Entry]) -> list[tuple[_Entry | None, _Entry | None]] | None:
    """Pair the entries along the data flow: from the inputs, each Keras entry (in graph order) takes the
    best-scoring torch row of its family whose nearest paired producers are the partners of its own.
    Same-scoring candidates are told apart by what follows them (a 1x1 conv that feeds two 3x3 convs is
    not the one that feeds one). None when either side's flow is not known."""
    k_inputs = [e.layer.id for e in k_structure if e.layer.kind == "input"]
    if not k_inputs or not any(e.layer.inbound for e in t_entries):
        return None
    t_names = ["input"] if len(k_inputs) == 1 else [f"input_{i}" for i in range(len(k_inputs))]
    kp = _flow(k_entries, {name: f"@{i}" for i, name in enumerate(k_inputs)})
    tp = _flow(t_entries, {name: f"@{i}" for i, name in enumerate(t_names)})
    if kp is None or tp is None:
        return None
    k_next: list[list[int]] = [[] for _ in k_entries]
    t_next: list[list[int]] = [[] for _ in t_entries]
    for nexts, preds in ((k_next, kp), (t_next, tp)):
        for i, ps in enumerate(preds):
            for p in ps:
                if isinstance(p, int):
                    nexts[p].append(i)

    def frontier(preds: list[list], i: int, mapped: dict[int, str]) -> frozenset:
        """The nearest paired producers of entry i (as #torch-index) and the inputs it reads (@n)."""
        out: set = set()
        stack = list(preds[i])
        seen: set = set()
        while stack:
            p = stack.pop()
            if not isinstance(p, int):
                out.add(p)
            elif p in mapped:
                out.add(mapped[p])
            elif p not in seen:
                seen.add(p)
                stack.extend(preds[p])
        return frozenset(out)

    def chain(nexts: list[list[int]], entries: list[_Entry], i: int, depth: int = 4) -> list:
        sig = []
        while nexts[i] and depth:
            i = nexts[i][0]
            sig.append((entries[i].kind, entries[i].layer.total_params if entries[i].part == "layer" else 0))
            depth -= 1
        return sig

    t_from_input: dict[str, list[int]] = {}
    for j, ps in enumerate(tp):
        for p in ps:
            if not isinstance(p, int):
                t_from_input.setdefault(p, []).append(j)

    def near(want: frozenset, limit: int = 64) -> list[int]:
        """Unpaired torch rows reachable from the partners in `want` through unpaired rows only: the only
        rows whose nearest paired producers can be `want` (a bounded walk: aligning stays near-linear)."""
        stack = [j for w in want for j in (t_from_input.get(w, []) if w.startswith("@") else t_next[int(w[1:])])]
        seen: set[int] = set()
        out: list[int] = []
        while stack and len(seen) < limit:
            j = stack.pop()
            if j in seen or j in taken:
                continue
            seen.add(j)
            out.append(j)
            stack.extend(t_next[j])
        return sorted(out)

    k_to_t: dict[int, int] = {}
    k_mapped: dict[int, str] = {}  # Keras entry -> "#torch index" of its partner
    taken: dict[int, str] = {}
    for i, e in enumerate(k_entries):
        want = frontier(kp, i, k_mapped)
        k_sig = chain(k_next, k_entries, i)
        best, best_key = None, None
        fronts: dict[int, frozenset] = {}  # the candidates' frontiers, each from its producers' (execution order)
        for j in near(want):
            parts: set = set()
            for p in tp[j]:
                if not isinstance(p, int):
                    parts.add(p)
                elif p in taken:
                    parts.add(taken[p])
                else:
                    parts |= fronts[p] if p in fronts else frontier(tp, p, taken)
            fronts[j] = frozenset(parts)
            t = t_entries[j]
            score = _score(e, t)
            if score == NEG or fronts[j] != want:
                continue
            key = (score, _leading_alike(k_sig, chain(t_next, t_entries, j)), -j)
            if best_key is None or key > best_key:
                best, best_key = j, key
        if best is not None:
            k_to_t[i] = best
            k_mapped[i] = taken[best] = f"#{best}"
    # rows in the port's execution order; a Keras-only entry right after the last row its producers reached
    anchor: dict[int, list[int]] = {}
    for i in range(len(k_entries)):
        if i not in k_to_t:
            reached = [int(x[1:]) for x in frontier(kp, i, k_mapped) if x.startswith("#")]
            anchor.setdefault(max(reached, default=-1), []).append(i)
    t_to_k = {b: a for a, b in k_to_t.items()}
    out: list[tuple[_Entry | None, _Entry | None]] = [(k_entries[i], None) for i in anchor.get(-1, [])]
    for j, t in enumerate(t_entries):
        out.append((k_entries[t_to_k[j]] if j in t_to_k else None, t))
        out.extend((k_entries[i], None) for i in anchor.get(j, []))
    return out


def _repair_crossings(pairs: list[tuple[_Entry | None, _Entry | None]]) -> list[tuple[_Entry | None, _Entry | None]]:
    """Pair parameter-bearing layers that a sequence alignment cannot: the same layer in another order.

    A Keras graph lists a residual block's shortcut convolution where it was defined, while the
    port may call it last; an alignment keeps one order, so such a layer would show as missing on
    one side and extra on the other. When exactly one unmatched torch entry fully matches an
    unmatched Keras entry (same family, shapes, trainable count), they are one layer: pair them.
    """
    keras_only = [i for i, (k, t) in enumerate(pairs) if t is None and k.kind not in PARAMETER_FREE_KINDS]
    torch_only = [j for j, (k, t) in enumerate(pairs) if k is None and t.kind not in PARAMETER_FREE_KINDS]
    taken: set[int] = set()
    for i in keras_only:
        k = pairs[i][0]
        fits = [j for j in torch_only if j not in taken and _score(k, pairs[j][1]) >= FULL_MATCH]
        if len(fits) != 1:
            continue
        t = pairs[fits[0]][1]
        if any(x != i and _score(pairs[x][0], t) >= FULL_MATCH for x in keras_only):
            continue  # two Keras layers would fit it: no guessing
        pairs[i] = (k, t)
        taken.add(fits[0])
    return [p for j, p in enumerate(pairs) if j not in taken]


def _total(pairs) -> float:
    return sum(_score(k, t) for k, t in pairs if k is not None and t is not None)


def align(keras: ModelSummary, torch: ModelSummary) -> list[Row]:
    k_entries, k_structure = _keras_entries(keras)
    t_entries, t_structure = _torch_entries(torch)
    by_flow = graph_align(keras, k_entries, k_structure, t_entries)
    if by_flow is not None and all(k is not None and t is not None for k, t in by_flow
                                   if (k or t).kind not in PARAMETER_FREE_KINDS):
        pairs = by_flow  # every layer with weights found its partner along the data flow
    else:
        pairs = _repair_crossings(_align(k_entries, t_entries))
        if by_flow is not None and _total(by_flow) > _total(pairs):
            pairs = by_flow  # the data flow pairs branches the two orders cannot (Inception-style graphs)

    rows: list[Row] = []
    k_pending = list(k_structure)
    t_pending = [e for e in t_structure if e.layer.executed]
    unused = [e for e in t_structure if not e.layer.executed]

    def flush(k_pos: float | None, t_pos: float | None) -> None:
        while k_pending and (k_pos is None or k_pending[0].pos < k_pos):
            rows.append(Row(keras=k_pending.pop(0).layer.id))
        while t_pending and (t_pos is None or t_pending[0].pos < t_pos):
            rows.append(Row(torch=t_pending.pop(0).layer.id))

    # a structure row goes before the next entry of its own side (the Keras input before a torch-only
    # pad that precedes the first conv, say)
    next_k: list[float] = []
    upcoming = float("inf")
    for k, _ in reversed(pairs):
        upcoming = k.pos if k else upcoming
        next_k.append(upcoming)
    next_k.reverse()
    for (k, t), k_pos in zip(pairs, next_k):
        flush(k_pos, t.pos if t else float("-inf"))
        rows.append(Row(keras=k.layer.id if k else None, torch=t.layer.id if t else None,
                        keras_part=k.part if k else "layer"))
    flush(None, None)
    rows.extend(Row(torch=e.layer.id) for e in unused)
    return rows
