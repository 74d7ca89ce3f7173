"""The table in a terminal (rich, plain=False) at 80 and 100 columns: the layer names and the codes always
stay, no line runs past the width; the shape columns go first, then the params columns, and a name too
long for its column is shortened in the middle, keeping both ends. The plain output (piped, NO_COLOR,
-o FILE) is tested against its golden file in test_seed.py and does not change with the width.
"""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest
from rich.cells import cell_len
from rich.console import Console

from ktdiff.comparers import report

try:  # verify the seed pair in test_verify's batch (one pair of workers for both files), if it imports
    from test_verify import ALL as VERIFY_PAIRS
except Exception:  # noqa: BLE001 - only a saving: the seed pair alone is verified then
    VERIFY_PAIRS = []

SEED = ("seed.keras", "fixtures/seed_torch.py:Net")
VERIFIED = list(dict.fromkeys([SEED, *VERIFY_PAIRS]))  # one batch with test_verify's pairs: no extra workers
CODE = re.compile(r"^[A-Z]{3}\d{3}⊘?$")


def rich_table(result, width: int, via_console: bool) -> str:
    """The report as rich writes it to a terminal `width` cells wide (no colour codes, to read it back)."""
    buf = io.StringIO()
    if via_console:
        report.render_table(result, console=Console(file=buf, width=width, force_terminal=True,
                                                    color_system=None))
    else:
        report.render_table(result, plain=False, width=width, file=buf)
    return buf.getvalue()


def table_block(text: str) -> str:
    """The table: its header (the lines between the blank line and the rule under them) down to the blank
    line after the table's notes and legend."""
    lines = text.splitlines()
    rule = next((i for i, ln in enumerate(lines) if ln.strip().startswith("───")), None)
    assert rule is not None, f"no table:\n{text}"
    start = max(i for i in range(rule) if not lines[i].strip()) + 1
    end = next((i for i in range(rule, len(lines)) if not lines[i].strip()), len(lines))  # legend included
    block = "\n".join(lines[start:end])
    assert "Keras layer" in block, f"the name columns are gone:\n{text}"
    return block


def shown(name: str, tokens: set[str]) -> bool:
    """`name` is in the table whole, or shortened in the middle with both of its ends."""
    if name in tokens:
        return True
    for tok in tokens:
        head, sep, tail = tok.partition("…")
        if sep and head and tail and name.startswith(head) and name.endswith(tail) and len(tok) < len(name):
            return True
    return False


def row_names(result) -> list[str]:
    names = []
    for row in result.rows:
        if row.keras is not None:
            k = result.keras.layer(row.keras)
            names.append(str(k.hparams.get("activation")) if row.keras_part == "activation" else k.name)
        if row.torch is not None:
            t = result.torch.layer(row.torch)
            names.append(t.name or t.type)
    return names


def check_readable(result, text: str, width: int) -> str:
    lines = text.splitlines()
    too_long = [ln for ln in lines if cell_len(ln) > width]
    assert not too_long, f"lines over {width} cells: {too_long[:3]}"
    block = table_block(text)
    tokens = set(block.split())
    missing = [n for n in row_names(result) if not shown(n, tokens)]
    assert not missing, f"names lost at {width} columns: {missing}\n{block}"
    expected = Counter(f.code + ("⊘" if f.suppressed else "") for i in range(len(result.rows))
                       for f in result.row_findings(i))
    assert sum(expected.values()) >= 10
    assert Counter(tok for tok in block.split() if CODE.match(tok)) == expected, block
    assert "…" not in "".join(tok for tok in block.split() if CODE.match(tok))
    return block


@pytest.mark.parametrize("width, via_console", [(80, True), (100, False)])
def test_table_keeps_names_and_codes_at_terminal_widths(loader, width, via_console):
    result = loader.compare(*SEED)
    text = rich_table(result, width, via_console)
    block = check_readable(result, text, width)
    assert "Keras layer" in block and "PyTorch module" in block
    assert "Output shape" not in block and "(None, 64, 64, 32)" not in block  # the shapes went first
    note = [ln for ln in text.splitlines() if "columns hidden" in ln]
    assert len(note) == 1 and "widen the terminal" in note[0] and "NO_COLOR" in note[0], text
    if width == 80:  # then the params columns: they are in no 80-column table of the seed pair
        assert "13,107,300" not in block and "Params" not in block


def test_a_wide_terminal_keeps_every_column(loader):
    result = loader.compare(*SEED)
    text = rich_table(result, 250, True)
    block = check_readable(result, text, 250)
    assert "Output shape" in block and "(None, 64, 64, 32)" in block and "13,107,300" in block
    assert "batch_normalization (BatchNormalization)" in block and "columns hidden" not in text


def test_verified_table_keeps_the_delta_column_at_80(loader):
    result = loader.verified(VERIFIED)[SEED]
    text = rich_table(result, 80, True)
    block = check_readable(result, text, 80)
    assert "Δ rel" in block
    cells = [report.delta_cell(result, i) for i in range(len(result.rows))]
    assert sum(1 for c in cells if c) >= 3
    for cell in filter(None, cells):
        assert cell in block, (cell, block)
    assert "◀" in block  # the first divergent row's mark


def test_names_too_long_for_the_column_are_shortened_in_the_middle(loader):
    result = loader.verified(VERIFIED)[SEED]
    block = check_readable(result, rich_table(result, 60, True), 60)
    assert "batch_normalization" not in block.split()
    assert any(t.startswith("batch") and "…" in t and t.endswith("n") for t in block.split()), block
