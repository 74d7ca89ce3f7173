"""Renderers: a Result -> terminal table, JSON or Markdown.

The data (``to_data``) is built once; the renderers only format it, the way
torchinfo keeps layer data apart from formatting. The JSON is versioned: CI
users parse it, so its keys only ever grow within a major ``schema_version``.
"""

from __future__ import annotations

import io
import json
from typing import Any

from .explain import Finding, Result, category_rank
from .layout import format_shape
from .rules import CATEGORIES, FAILING, all_rules
from .summary import Layer

SCHEMA_VERSION = "1.1"  # 1.1: the numeric check (`verification`)
FORMATS = ("table", "json", "markdown")
MARKS = {"unexplained": "✗", "behaviour": "✗", "convention": "~", "bookkeeping": "~", "note": "·"}
STYLES = {"unexplained": "bold red", "behaviour": "red", "convention": "yellow", "bookkeeping": "yellow",
          "note": "cyan", "structure": "dim"}


# --------------------------------------------------------------------------- shared pieces

def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ktdiff")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0+unknown"


def row_status(findings: list[Finding]) -> str | None:
    """The worst active category on a row (None when nothing differs)."""
    active = [f.category for f in findings if not f.suppressed and f.category in MARKS]
    return min(active, key=category_rank) if active else None


def _keras_cell(result: Result, row) -> tuple[str, str, str]:
    if row.keras is None:
        return "", "", ""
    k = result.keras.layer(row.keras)
    if row.keras_part == "activation":
        return f"  ↳ {k.hparams.get('activation')} (fused)", "", ""
    indent = "  " * max(0, k.depth)
    params = f"{k.total_params:,}"
    if k.non_trainable_params:
        params += f" ({k.non_trainable_params:,} nt)"
    shape = format_shape(k.output_shapes[0]) if k.output_shapes else ""
    return f"{indent}{k.name} ({k.type})", shape, params


def _torch_cell(result: Result, row) -> tuple[str, str, str]:
    if row.torch is None:
        return "", "", ""
    t = result.torch.layer(row.torch)
    indent = "  " * max(0, t.depth - 1)
    if t.origin == "function":
        name = f"{indent}{t.name} (forward)"
    elif t.origin == "container" and not t.id:
        name = f"{t.type} (root)"
    else:
        name = f"{indent}{t.name} ({t.type})"
    if not t.executed:
        name += " [not called]"
    params = "" if t.kind == "container" and not t.has_params else f"{t.total_params:,}"
    if t.non_trainable_params:
        params += f" ({t.non_trainable_params:,} frozen)"
    if t.buffer_numel:
        params += f" (+{t.buffer_numel:,} buf)"
    shape = format_shape(t.output_shapes[0]) if t.output_shapes else ""
    return name, shape, params


def _layer_ref(layer: Layer | None, part: str = "layer") -> str | None:
    if layer is None:
        return None
    return f"{layer.id} ↳ {layer.hparams.get('activation')}" if part == "activation" else layer.id


def _summary_counts(result: Result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in result.active():
        counts[f.category] = counts.get(f.category, 0) + 1
    return counts


def verdict_line(result: Result) -> str:
    active = result.active()
    failing = sorted({f.code for f in active if f.category in FAILING})
    suppressed = sum(1 for f in result.findings if f.suppressed)
    if result.verdict == "different":
        n = sum(1 for f in active if f.category in FAILING)
        why = f"{n} behavioural or unexplained difference{'s' if n != 1 else ''}: {', '.join(failing)}"
    elif result.verdict == "bookkeeping":
        codes = sorted({f.code for f in active if f.category == "bookkeeping"})
        why = f"the counts differ only in bookkeeping: {', '.join(codes)}"
    else:
        why = "same computation; conventions only" if any(f.category == "convention" for f in active) \
            else "no differences"
    tail = f"; {suppressed} finding{'s' if suppressed != 1 else ''} suppressed" if suppressed else ""
    v = result.verification
    checked = ""
    if v is not None and result.verdict != "different":
        if v.status == "agree":
            checked = f", verified numerically: max relative difference {_sci(v.max_rel)}"
        elif v.status == "partial":
            checked = ", verified numerically only in part"
        elif v.status == "diverge":
            checked = ", outputs differ only where suppressed findings say so: " + ", ".join(v.attributed_to)
        else:
            checked = ", not verified numerically"
    return f"Verdict: {result.verdict_text.upper()}{checked} ({why}{tail}); exit code {result.exit_code}"


BARS = "▁▂▃▄▅▆▇█"


def error_bar(rel: float | None) -> str:
    """One block per row, from 1e-8 (▁) to 1 and more (█): the table's column reads as error along depth."""
    import math

    if rel is None:
        return ""
    if rel <= 0:
        return BARS[0]
    level = (math.log10(rel) + 8) / 8 * len(BARS)
    return BARS[max(0, min(len(BARS) - 1, int(level)))]


def delta_cell(result: Result, index: int) -> str:
    """The table's error cell of a row: the max relative difference, a bar, ◀ on the first divergent row."""
    v = result.verification
    s = v.stat(index) if v is not None else None
    if s is None:
        return ""
    if s.within is None:
        return "n/a"
    mark = " ◀" if v.first_divergent_row == index else ""
    return f"{s.max_rel_diff:.1e} {error_bar(s.max_rel_diff)}{mark}"


def _sci(value) -> str:
    return "—" if value is None else f"{value:.2g}"


def verification_lines(result: Result) -> list[tuple[str, str]]:
    """The numeric check in words, shared by the table and the Markdown report."""
    v = result.verification
    if v is None:
        return []
    rows = result.rows
    lines: list[tuple[str, str]] = []
    how = ("the port's own weights (--torch-weights)" if v.weights == "given"
           else f"{v.ported} tensor{'s' if v.ported != 1 else ''} ported from the Keras weights")
    inp = v.input
    if inp.get("torch_shapes"):
        shapes = ", ".join("(" + ", ".join(map(str, s)) + ")" for s in inp["torch_shapes"])
        src = f"seeded (seed {inp.get('seed')}): {inp.get('values')}" if inp.get("source") == "seeded" \
            else f"from {inp.get('source')}"
        lines.append((f"Numeric check: {how}; input {shapes}, {src}.", "dim"))
    tol = v.tolerance
    lines.append((f"Tolerance per row: |Keras − PyTorch| ≤ {tol['atol']:g} + {tol['rtol']:g} × max|Keras|; "
                  f"Δ rel = max |Keras − PyTorch| / max |Keras|.", "dim"))

    def where(index):
        row = rows[index]
        k = row.keras + (" ↳ activation" if row.keras_part == "activation" else "") if row.keras else "—"
        return f"row {index} ({k} ↔ {row.torch or '—'})"

    def codes_text(codes):
        sup = {f.code for f in result.findings if f.suppressed}
        return ", ".join(c + (" (suppressed)" if c in sup else "") for c in codes)

    if v.status == "agree":
        lines.append((f"Outputs agree on every compared row and at the output (max relative difference "
                      f"{_sci(v.max_rel)}).", "green"))
    elif v.status == "partial" and v.unported_cause is not None:
        lines.append((f"Outputs agree up to row {v.unported_cause}, whose weights could not be ported: the rows "
                      "from there on are not verified.", "yellow"))
    elif v.status == "partial":
        lines.append((f"Outputs agree where they could be compared (max relative difference {_sci(v.max_rel)}); "
                      "the check is partial.", "yellow"))
    elif v.status == "not-run":
        lines.append(("The numeric check did not run.", "yellow"))
    elif v.first_divergent_row is not None:
        s = v.stat(v.first_divergent_row)
        head = (f"Outputs diverge first at {where(v.first_divergent_row)}: max abs {_sci(s.max_abs_diff)}, "
                f"Δ rel {_sci(s.max_rel_diff)}, mean abs {_sci(s.mean_abs_diff)}, p99 abs {_sci(s.p99_abs_diff)}")
        if v.attributed_to:
            lines.append((head + f"; explained by {codes_text(v.attributed_to)}.", "red"))
        else:
            lines.append((head + "; no finding explains it (UNX003).", "bold red"))
    else:
        lines.append((f"Only the final outputs differ (Δ rel {_sci(v.output.max_rel_diff if v.output else None)})"
                      + (f"; explained by {codes_text(v.attributed_to)}." if v.attributed_to else "; UNX003."), "red"))
    if v.later:
        lines.append(("Further down, rows with findings differ too: " + "; ".join(
            f"row {x['row']} ({codes_text(x['codes'])})" for x in v.later) + ". Rows after the first divergence "
            "inherit its error and are not blamed.", "dim"))
    if v.output is not None and v.output.within is not None and v.status != "agree":
        lines.append((f"Final output: max abs {_sci(v.output.max_abs_diff)}, Δ rel {_sci(v.output.max_rel_diff)}"
                      + (" (within tolerance)." if v.output.within else "."), "dim"))
    for u in v.unconfirmed:
        if u["why"] == "affects training only":
            lines.append((f"{u['code']} (row {u['row']}): training only; it cannot show in inference outputs.", "dim"))
        else:
            lines.append((f"{u['code']} (row {u['row']}): flagged, yet the outputs agree there on this input.", "dim"))
    for u in v.unported:
        lines.append((f"Not ported, row {u['row']} ({u.get('keras') or '—'} ↔ {u.get('torch') or '—'}): "
                      f"{u['reason']}.", "yellow"))
    for note in v.notes:
        lines.append((note[:1].upper() + note[1:] + ("" if note.endswith(".") else "."), "yellow"))
    skipped = [s for s in v.rows if s.within is None]
    if skipped:
        lines.append((f"{len(skipped)} row{'s' if len(skipped) != 1 else ''} not compared: " + "; ".join(
            f"row {s.row}: {s.note}" for s in skipped[:3]) + ("; ..." if len(skipped) > 3 else "") + ".", "dim"))
    return lines


def _input_note(result: Result) -> str:
    for note in result.torch.notes:
        if note.startswith("input "):
            return "PyTorch " + note
    return ""


# --------------------------------------------------------------------------- JSON

def to_data(result: Result) -> dict[str, Any]:
    rows = []
    for i, row in enumerate(result.rows):
        k = result.keras.layer(row.keras) if row.keras is not None else None
        t = result.torch.layer(row.torch) if row.torch is not None else None
        fs = result.row_findings(i)
        rows.append({
            "index": i,
            "keras": None if k is None else {
                "id": k.id, "part": row.keras_part, "type": k.type, "kind": k.kind if row.keras_part == "layer" else "activation",
                "output_shape": k.output_shapes[0] if k.output_shapes and row.keras_part == "layer" else None,
                "params": k.total_params if row.keras_part == "layer" else 0,
                "non_trainable": k.non_trainable_params if row.keras_part == "layer" else 0},
            "torch": None if t is None else {
                "id": t.id, "type": t.type, "kind": t.kind, "origin": t.origin,
                "output_shape": t.output_shapes[0] if t.output_shapes else None,
                "params": t.total_params, "frozen": t.non_trainable_params, "buffers": t.buffer_numel,
                "executed": t.executed},
            "status": row_status(fs) or "same",
            "codes": [f.code for f in fs],
            "verification": _row_numbers(result, i),
        })
    findings = []
    for f in result.findings:
        k = result.keras.layer(f.keras) if f.keras is not None else None
        t = result.torch.layer(f.torch) if f.torch is not None else None
        part = result.rows[f.row].keras_part if f.row is not None else "layer"
        findings.append({
            "code": f.code, "name": f.name, "category": f.category, "row": f.row,
            "keras_layer": _layer_ref(k, part), "torch_module": _layer_ref(t),
            "message": f.message, "params": f.params, "suppressed": f.suppressed, "suppression": f.suppression,
            "training_only": f.training_only,
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ktdiff", "version": _version()},
        "keras": {"source": result.keras.source, "name": result.keras.name, "class": result.keras.class_name,
                  "framework": result.keras.framework_version,
                  "inputs": [vars(i) for i in result.keras.inputs], "outputs": result.keras.output_shapes},
        "torch": {"source": result.torch.source, "name": result.torch.name, "class": result.torch.class_name,
                  "framework": result.torch.framework_version,
                  "inputs": [vars(i) for i in result.torch.inputs], "outputs": result.torch.output_shapes,
                  "notes": result.torch.notes, "suppressions": result.torch.suppressions},
        "rows": rows,
        "findings": findings,
        "totals": result.accounting.to_dict(),
        "counts": _summary_counts(result),
        "verification": result.verification.to_dict() if result.verification is not None else
        {"status": "not-run", "requested": False},
        "verdict": result.verdict,
        "verdict_text": result.verdict_text,
        "exit_code": result.exit_code,
        "summaries": {"keras": result.keras.to_dict(), "torch": result.torch.to_dict()},
    }


def _row_numbers(result: Result, index: int) -> dict | None:
    v = result.verification
    s = v.stat(index) if v is not None else None
    if s is None:
        return None
    return {"max_abs_diff": s.max_abs_diff, "mean_abs_diff": s.mean_abs_diff, "p99_abs_diff": s.p99_abs_diff,
            "max_rel_diff": s.max_rel_diff, "mean_rel_diff": s.mean_rel_diff, "within_tolerance": s.within,
            "note": s.note}


def render_json(result: Result) -> str:
    return json.dumps(to_data(result), indent=2, sort_keys=False) + "\n"


# --------------------------------------------------------------------------- terminal

def _console(plain: bool, width: int | None, file=None):
    from rich.console import Console

    if plain:
        return Console(file=file or io.StringIO(), width=width or 4000, no_color=True, color_system=None,
                       highlight=False, emoji=False, soft_wrap=True, force_terminal=False)
    return Console(file=file, width=width, highlight=False, emoji=False)


def render_table(result: Result, *, plain: bool = True, width: int | None = None, file=None,
                 console=None) -> str | None:
    """The terminal report. Plain: no colour, no wrapping, returned as a string (trailing spaces stripped).
    In a terminal (plain=False, or a rich ``console`` given) the table fits the width: see `_fit_layout`."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if console is not None:
        plain = False
    else:
        console = _console(plain, width, None if plain else file)
    k, t = result.keras, result.torch
    console.print(Text(f"ktdiff {k.source}  ↔  {t.source}", style="bold"))
    console.print(Text(f"Keras: {k.name} ({k.class_name}), {k.framework_version} · "
                       f"PyTorch: {t.class_name}, {t.framework_version}", style="dim"))
    if _input_note(result):
        console.print(Text(_input_note(result), style="dim"))
    console.print()

    verified = bool(result.verification is not None and result.verification.rows)
    rows = []
    for i, row in enumerate(result.rows):
        fs = result.row_findings(i)
        status = row_status(fs)
        codes = Text()
        for f in sorted(fs, key=lambda f: (category_rank(f.category), f.code)):
            if codes:
                codes.append(" ")
            style = "dim strike" if f.suppressed else STYLES[f.category]
            codes.append(f.code + ("⊘" if f.suppressed else ""), style=style)
        extra = []
        if verified:
            cell = delta_cell(result, i)
            s = result.verification.stat(i)
            extra.append(Text(cell, style="red" if s is not None and s.within is False else "green"
                              if s is not None and s.within else "dim"))
        dim_row = status is None and all(f.category == "structure" for f in fs) and fs
        rows.append((str(i), Text(MARKS.get(status, ""), style=STYLES.get(status, "")),
                     _keras_cell(result, row), _torch_cell(result, row), _keras_parts(result, row),
                     _torch_parts(result, row), codes, extra, "dim" if dim_row else None))

    layout = None if plain else _fit_layout(rows, console.width, verified)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("", justify="center")
    if layout is None:  # plain, or a terminal wide enough for every column as it is
        table.add_column("Keras layer", no_wrap=plain)
        table.add_column("Output shape", no_wrap=True)
        table.add_column("Params", justify="right", no_wrap=True)
        table.add_column("PyTorch module", no_wrap=plain)
        table.add_column("Output shape", no_wrap=True)
        table.add_column("Params", justify="right", no_wrap=True)
        table.add_column("Codes", no_wrap=plain)
    else:
        kw, tw, cw = layout["widths"]
        table.add_column("Keras layer", width=kw, overflow="fold")
        if layout["shapes"]:
            table.add_column("Output shape", no_wrap=True)
        if layout["params"]:
            table.add_column("Params", justify="right", no_wrap=True)
        table.add_column("PyTorch module", width=tw, overflow="fold")
        if layout["shapes"]:
            table.add_column("Output shape", no_wrap=True)
        if layout["params"]:
            table.add_column("Params", justify="right", no_wrap=True)
        table.add_column("Codes", width=cw, overflow="fold")
    if verified:
        table.add_column("Δ rel", no_wrap=True)
    for index, mark, kc, tc, kparts, tparts, codes, extra, style in rows:
        if layout is None:
            cells = [*kc, *tc]
        else:
            kname, tname = _fit_name(kparts, kw), _fit_name(tparts, tw)
            cells = [kname] + ([kc[1]] if layout["shapes"] else []) + ([kc[2]] if layout["params"] else []) \
                + [tname] + ([tc[1]] if layout["shapes"] else []) + ([tc[2]] if layout["params"] else [])
        table.add_row(index, mark, *cells, codes, *extra, style=style)
    console.print(table)
    if layout is not None and not (layout["shapes"] and layout["params"]):
        hidden = "Shape and params columns" if not layout["params"] else "Shape columns"
        console.print(Text(f"{hidden} hidden: widen the terminal, or pipe or set NO_COLOR.", style="dim"))
    legend = "~ bookkeeping or convention; · note; ✗ different; ⊘ suppressed"
    if layout is None or layout["params"]:
        legend = "nt = non-trainable weights (Keras); buf = buffer elements (PyTorch); " + legend
    console.print(Text(legend, style="dim"))
    console.print()
    _print_totals(console, result)
    console.print()
    _print_findings(console, result)
    if result.verification is not None:
        console.print(Text("Numeric check", style="bold underline"))
        for line, line_style in verification_lines(result):
            console.print(Text(line, style=line_style))
        console.print()
    style = "bold red" if result.verdict == "different" else "bold green"
    console.print(Text(verdict_line(result), style=style))
    if plain:
        text = console.file.getvalue()
        return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    return None


# A terminal narrower than the full table: the layer names and the codes always stay. Shape columns go
# first, then the params columns; the name and code columns then wrap between words (a name, its type),
# and a name longer than its column is shortened in the middle, keeping both ends (features.…conv).

_MIN_NAME = 12  # the narrowest a name column gets before the table overflows


def _keras_parts(result: Result, row) -> tuple[str, str, list[str]]:
    """The Keras name cell as (indent, name, trailing words); joined with spaces it is `_keras_cell`'s text."""
    if row.keras is None:
        return "", "", []
    k = result.keras.layer(row.keras)
    if row.keras_part == "activation":
        return "  ↳ ", str(k.hparams.get("activation")), ["(fused)"]
    return "  " * max(0, k.depth), k.name, [f"({k.type})"]


def _torch_parts(result: Result, row) -> tuple[str, str, list[str]]:
    if row.torch is None:
        return "", "", []
    t = result.torch.layer(row.torch)
    indent = "  " * max(0, t.depth - 1)
    if t.origin == "function":
        parts = (indent, t.name, ["(forward)"])
    elif t.origin == "container" and not t.id:
        parts = ("", t.type, ["(root)"])
    else:
        parts = (indent, t.name, [f"({t.type})"])
    if not t.executed:
        parts[2].extend(["[not", "called]"])
    return parts


def shorten_middle(text: str, width: int) -> str:
    """`text` in at most `width` cells, its middle replaced by … (both ends kept: features.…conv)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    keep = width - 1
    head = keep // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def _fit_name(parts: tuple[str, str, list[str]], width: int) -> str:
    indent, name, words = parts
    if not name:
        return ""
    if len(indent) + len(name) > width:
        indent = indent[:max(0, min(len(indent), width - 8))]
        name = shorten_middle(name, width - len(indent))
    fitted = []
    for word in words:
        if len(word) > width and word.startswith("(") and word.endswith(")"):
            word = "(" + shorten_middle(word[1:-1], max(1, width - 2)) + ")"
        fitted.append(shorten_middle(word, width))
    return " ".join([indent + name, *fitted])


def _allocate(budget: int, naturals: list[int], floors: list[int]) -> list[int] | None:
    """Widths for the wrapping columns: their natural widths if they fit, else the widest ones narrowed to
    a common level (never below their floors); None if even the floors do not fit."""
    floors = [min(f, n) for f, n in zip(floors, naturals)]
    if sum(naturals) <= budget:
        return list(naturals)
    if sum(floors) > budget:
        return None
    level = max(naturals)
    while level > 0 and sum(min(n, max(f, level)) for n, f in zip(naturals, floors)) > budget:
        level -= 1
    widths = [min(n, max(f, level)) for n, f in zip(naturals, floors)]
    for i in sorted(range(len(widths)), key=lambda i: -naturals[i]):  # hand out what is left
        if sum(widths) < budget and widths[i] < naturals[i]:
            widths[i] += 1
    return widths


def _fit_layout(rows: list, width: int, verified: bool) -> dict | None:
    """Which columns a terminal of `width` cells shows, and how wide the name and code columns are. None
    when the full table fits as it is."""
    from rich.cells import cell_len

    def col(values, header):
        return max([cell_len(header), *(cell_len(v) for v in values)])

    def words_max(values, header):
        return max([cell_len(w) for w in header.split()] + [cell_len(w) for v in values for w in v.split()])

    index_w = col([r[0] for r in rows], "#")
    delta_w = col([r[7][0].plain for r in rows], "Δ rel") if verified else 0
    k_shape, k_params = col([r[2][1] for r in rows], "Output shape"), col([r[2][2] for r in rows], "Params")
    t_shape, t_params = col([r[3][1] for r in rows], "Output shape"), col([r[3][2] for r in rows], "Params")
    k_nat, t_nat = col([r[2][0] for r in rows], "Keras layer"), col([r[3][0] for r in rows], "PyTorch module")
    c_nat = col([r[6].plain for r in rows], "Codes")
    # wrapping between words, no name shortened: the widest (indent + name) or type
    k_wrap = max([7, *(cell_len(p[0] + p[1]) for p in (r[4] for r in rows))]
                 + [cell_len(w) for r in rows for w in r[4][2]])
    t_wrap = max([7, *(cell_len(p[0] + p[1]) for p in (r[5] for r in rows))]
                 + [cell_len(w) for r in rows for w in r[5][2]])
    code_w = words_max([r[6].plain for r in rows], "Codes")
    two_codes = 2 * code_w + 1

    def budget(shapes, params):
        ncols = 5 + (2 if shapes else 0) + (2 if params else 0) + (1 if verified else 0)
        fixed = index_w + 1 + delta_w + (k_shape + t_shape if shapes else 0) + (k_params + t_params if params else 0)
        return width - fixed - 3 * (ncols - 1)

    naturals = [k_nat, t_nat, c_nat]
    if sum(naturals) <= budget(True, True):
        return None
    for shapes, params in ((True, True), (False, True), (False, False)):
        widths = _allocate(budget(shapes, params), naturals, [k_wrap, t_wrap, two_codes])
        if widths is not None:
            return {"shapes": shapes, "params": params, "widths": widths}
    widths = (_allocate(budget(False, False), naturals, [_MIN_NAME, _MIN_NAME, code_w])
              or _allocate(budget(False, False), naturals, [4, 4, code_w]))
    if widths is None:  # narrower than anything readable: the floors, and the lines run over
        widths = [min(4, k_nat), min(4, t_nat), code_w]
    return {"shapes": False, "params": False, "widths": widths}


def _print_totals(console, result: Result) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    a = result.accounting
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name, justify in (("Totals", "left"), ("Keras", "right"), ("PyTorch", "right"),
                          ("Keras − PyTorch", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_row("Parameters", f"{a.keras_total:,}", f"{a.torch_total:,}", f"{a.difference:,}")
    table.add_row("  trainable", f"{a.keras_trainable:,}", f"{a.torch_trainable:,}",
                  f"{a.keras_trainable - a.torch_trainable:,}")
    table.add_row("  non-trainable / frozen", f"{a.keras_non_trainable:,}", f"{a.torch_frozen:,}",
                  f"{a.keras_non_trainable - a.torch_frozen:,}")
    table.add_row("Buffers (not parameters)", "—", f"{a.torch_buffers:,}", "")
    console.print(table)
    for line, style in _accounting_lines(result):
        console.print(Text(line, style=style))


def _accounting_lines(result: Result) -> list[tuple[str, str]]:
    """Where the parameter difference, Keras's non-trainable weights and torch's buffers come from."""
    a = result.accounting
    lines: list[tuple[str, str]] = []
    if a.difference == 0 and not a.explained:
        lines.append(("The parameter totals agree.", "green"))
    else:
        parts = []
        for e in a.explained:
            row = result.rows[e["row"]] if e["row"] is not None else None
            where = ""
            if row is not None:
                where = f" (row {e['row']}: {row.keras or '—'} ↔ {row.torch if row.torch is not None else '—'})"
            parts.append(f"{e['code']} {e['params']:+,}{where}")
        line = f"Keras − PyTorch = {a.difference:,}" + (" = " + ", ".join(parts) if parts else "")
        if a.unexplained:
            lines.append((line + f"; {a.unexplained:,} unexplained (UNX002).", "bold red"))
        else:
            lines.append((line + ": accounted for to the last parameter.", "green"))
    stats = running = nbt = 0
    for f in result.active():
        if f.code == "NRM001":
            stats += f.params
            t = result.torch.layer(f.torch)
            running += sum(b.numel for b in t.buffers if b.name.endswith(("running_mean", "running_var")))
            nbt += sum(b.numel for b in t.buffers if b.name.endswith("num_batches_tracked"))
    if stats:
        other_weights = a.keras_non_trainable - stats
        other_buffers = a.torch_buffers - running - nbt
        lines.append((f"Keras's {a.keras_non_trainable:,} non-trainable: {stats:,} BatchNorm moving mean/variance "
                      f"(NRM001)" + (f" + {other_weights:,} other" if other_weights else "") + "; "
                      f"PyTorch's {a.torch_buffers:,} buffer elements: {running:,} running_mean/running_var"
                      + (f" + {nbt:,} num_batches_tracked" if nbt else "")
                      + (f" + {other_buffers:,} other" if other_buffers else "") + ".", "dim"))
    return lines


def _print_findings(console, result: Result) -> None:
    from rich.padding import Padding
    from rich.text import Text

    rules = {r.code: r for r in all_rules()}
    by_code: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_code.setdefault(f.code, []).append(f)
    order = sorted(by_code, key=lambda c: (category_rank(rules[c].category), c))
    if not order:
        return
    console.print(Text("Findings", style="bold underline"))
    for code in order:
        rule = rules[code]
        items = by_code[code]
        suppressed = all(f.suppressed for f in items)
        style = "dim" if suppressed else STYLES[rule.category]
        head = Text()
        mark = "⊘" if suppressed else MARKS.get(rule.category, "·")
        head.append(f"{mark} {code} ", style=style + " bold" if not suppressed else style)
        head.append(f"{rule.name} [{rule.category}]", style=style)
        head.append(f"  {rule.title}", style="dim" if suppressed else "")
        console.print(head)
        for f in items:
            line = Text()
            line.append(f"row {f.row}: " if f.row is not None else "", style="dim")
            line.append(f.message, style="dim" if f.suppressed else "")
            if f.suppressed:
                line.append(f"  [suppressed: {f.suppression}]", style="dim italic")
            console.print(Padding(line, (0, 0, 0, 4)))
    console.print(Text("Run `ktdiff explain CODE` for what a code means, why it happens and how to fix it.",
                       style="dim"))
    console.print()


# --------------------------------------------------------------------------- Markdown

def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(result: Result) -> str:
    out = io.StringIO()
    k, t = result.keras, result.torch
    mark = "❌" if result.verdict == "different" else "✅"
    out.write(f"## ktdiff: `{k.source}` ↔ `{t.source}`\n\n")
    out.write(f"{mark} **{verdict_line(result)}**\n\n")
    if _input_note(result):
        out.write(f"_{_md(_input_note(result))}_\n\n")
    verified = result.verification is not None and bool(result.verification.rows)
    out.write("| # | | Keras layer | Output shape | Params | PyTorch module | Output shape | Params | Codes |"
              + (" Δ rel |" if verified else "") + "\n")
    out.write("|---:|:-:|---|---|---:|---|---|---:|---|" + ("---|" if verified else "") + "\n")
    for i, row in enumerate(result.rows):
        fs = result.row_findings(i)
        status = row_status(fs)
        kc, tc = _keras_cell(result, row), _torch_cell(result, row)
        codes = " ".join(f"~~{f.code}~~" if f.suppressed else f.code for f in fs)
        cells = [str(i), MARKS.get(status, ""), *[c.strip() for c in kc], *[c.strip() for c in tc], codes]
        if verified:
            cells.append(delta_cell(result, i))
        out.write("| " + " | ".join(_md(c) for c in cells) + " |\n")
    a = result.accounting
    out.write(f"\n**Parameters:** Keras {a.keras_total:,} ({a.keras_non_trainable:,} non-trainable), "
              f"PyTorch {a.torch_total:,} (+{a.torch_buffers:,} buffer elements); difference {a.difference:,}, "
              f"unexplained {a.unexplained:,}.\n\n")
    if result.verification is not None:
        out.write("### Numeric check\n\n")
        for line, _ in verification_lines(result):
            out.write(f"- {_md(line)}\n")
        out.write("\n")
    rules = {r.code: r for r in all_rules()}
    findings = sorted(result.findings, key=lambda f: (category_rank(f.category), f.code, f.row or 0))
    if findings:
        out.write("### Findings\n\n")
        for f in findings:
            sup = f" _(suppressed: {_md(f.suppression)})_" if f.suppressed else ""
            row = f"row {f.row}: " if f.row is not None else ""
            out.write(f"- **{f.code}** `{rules[f.code].name}` ({f.category}): {row}{_md(f.message)}{sup}\n")
    return out.getvalue()


# --------------------------------------------------------------------------- catalogue

def render_rule(code: str) -> str:
    from .rules import get_rule

    r = get_rule(code)
    assert r is not None
    return (f"{r.code} {r.name} [{r.category}]\n{r.title}\n\n"
            f"What: {r.what}\n\nWhy: {r.why}\n\nFix: {r.fix}\n\n"
            f"Category {r.category}: {CATEGORIES[r.category]}.\n")


def render_rules_table() -> str:
    from rich import box
    from rich.table import Table

    console = _console(True, None)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for col in ("Code", "Name", "Category", "Title"):
        table.add_column(col, no_wrap=True)
    for r in all_rules():
        table.add_row(r.code, r.name, r.category, r.title)
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"
