"""--verify-plot: the numeric check's error against depth, as an SVG, PNG or PDF.

matplotlib is an optional extra (``pip install 'ktdiff[plot]'``), imported only here,
only when a plot is asked for; it draws with the non-interactive Agg backend.
"""

from __future__ import annotations

import os

from .errors import KtdiffError
from .explain import Result
from .files import write_atomically


def plot_verification(result: Result, path: str) -> None:
    v = result.verification
    if v is None or not any(s.within is not None for s in v.rows):
        raise KtdiffError("--verify-plot: the numeric check compared no row, so there is nothing to draw",
                          "run with --verify and look at its notes.")
    try:
        import matplotlib

        matplotlib.use("Agg")
        matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in an SVG: searchable, selectable
        import matplotlib.pyplot as plt
    except ImportError:
        raise KtdiffError("--verify-plot needs matplotlib, which is not installed",
                          "pip install 'ktdiff[plot]' (or matplotlib).") from None
    floor = 1e-12
    stats = [s for s in v.rows if s.within is not None]
    xs = [s.row for s in stats]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    ax.semilogy(xs, [max(s.max_rel_diff, floor) for s in stats], marker="o", ms=3, label="max |Δ| / max |Keras|")
    ax.semilogy(xs, [max(s.mean_rel_diff, floor) for s in stats], marker=".", ms=3, label="mean |Δ| / mean |Keras|")
    ax.axhline(v.tolerance["rtol"], color="grey", ls="--", lw=1, label=f"rtol {v.tolerance['rtol']:g}")
    if v.first_divergent_row is not None:
        why = ", ".join(v.attributed_to) or "UNX003"
        ax.axvline(v.first_divergent_row, color="crimson", lw=1)
        ax.annotate(f"first divergence: row {v.first_divergent_row} ({why})", xy=(v.first_divergent_row, 1),
                    xycoords=("data", "axes fraction"), xytext=(4, -14), textcoords="offset points",
                    color="crimson", fontsize=8)
    ax.set_xlabel("row (depth)")
    ax.set_ylabel("relative difference")
    ax.set_title(f"ktdiff --verify: {os.path.basename(result.keras.source)} ↔ {result.torch.source}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    try:
        write_atomically(path, fig.savefig, suffix=os.path.splitext(path)[1])
    except OSError as exc:
        raise KtdiffError(f"cannot write {path}: {exc.strerror or exc}", "pick another path.") from None
    finally:
        plt.close(fig)
