"""The Recall@k plot of a report (matplotlib, from the ``eval`` extra)."""

from __future__ import annotations

import math
from pathlib import Path

from eval.report import CURVE_KS, Report


def plot_recall(report: Report, path: Path) -> None:
    """Paragraph Recall@k per mode, written as a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for mode, data in report.modes.items():
        curve = data.recall_curve
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=mode)
    ax.set_xlabel("k (paragraphs returned)")
    ax.set_ylabel("paragraph Recall@k")
    ax.set_xticks(list(CURVE_KS))
    lowest = min(v for d in report.modes.values() for v in d.recall_curve.values())
    ax.set_ylim(max(0.0, math.floor((lowest - 0.05) * 10) / 10), 1.005)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"Own question set ({report.meta.n_answerable} answerable questions)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
