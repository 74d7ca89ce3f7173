"""The README shows what the tool prints: its sample report and its rule list stay current."""

from __future__ import annotations

import re

from conftest import ROOT, run_ktdiff
from test_seed import GOLDEN, normalise

README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    start = README.index("```\n", README.index(marker)) + 4
    return README[start:README.index("\n```", start)] + "\n"


def test_readme_rule_list_is_the_catalogue():
    done = run_ktdiff("rules")
    assert done.returncode == 0
    assert _block_after("`ktdiff rules` lists it") == done.stdout


def test_readme_sample_is_the_seed_report():
    start = README.index("$ ktdiff compare fixtures/models/seed.keras fixtures/seed_torch.py:Net\n")
    sample = README[README.index("\n", start) + 1:README.index("\n```", start)] + "\n"
    assert normalise(sample) == GOLDEN.read_text()
    assert re.search(r"Verdict: DIFFERENT .*exit code 1", sample)
