"""How reproducible the attribution labels are: two more labellings of a sample of the second
held-out set, compared with its labels and with each other.

``python -m eval.attribution_agreement`` reads ``eval/attribution/heldout2.jsonl`` and the
relabellings in ``eval/attribution/agreement/`` (``x.jsonl`` and ``y.jsonl``: 80 of its
sentences, drawn with ``random.Random(20261212)``, labelled again from scratch by two helpers
with the same written guide and without seeing any label). For each pair of labellings it
prints the share of sentences given the same voice, Cohen's kappa on the voice, and of the
sentences both call reported, how many name the same speaker (:func:`speaker_matches`, as the
scorer matches names). The helpers are instances of one model reading one guide, so the
figures say how well the guide fixes a label, not how far independent human annotators would
agree. ``--module`` also scores ``rag/attribution.py`` against each labelling of the sample
(precision and recall as :mod:`eval.attribution` computes them; it loads the parser).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from eval.attribution import LABELS, Gold, read_labels, speaker_matches

AGREEMENT = LABELS / "agreement"
#: The relabellings, by labeller.
RELABELLED = ("x", "y")


def kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two labellings of the same items (1.0 when both are constant and
    equal)."""
    n = len(a)
    if n == 0 or n != len(b):
        raise ValueError("two labellings of the same, non-empty list of items")
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    labels = set(a) | set(b)
    expected = sum((a.count(k) / n) * (b.count(k) / n) for k in labels)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def compare(a: Sequence[Gold], b: Sequence[Gold]) -> dict[str, float | int]:
    """Agreement of two labellings, aligned item by item."""
    va, vb = [g.voice for g in a], [g.voice for g in b]
    both = [(x, y) for x, y in zip(a, b, strict=True) if x.voice == y.voice == "reported"]
    same = sum(
        any(speaker_matches(s, y.speakers) for s in x.speakers)
        or any(speaker_matches(s, x.speakers) for s in y.speakers)
        for x, y in both
    )
    return {
        "sentences": len(a),
        "same_voice": sum(x == y for x, y in zip(va, vb, strict=True)),
        "kappa": round(kappa(va, vb), 3),
        "reported": va.count("reported"),
        "reported_other": vb.count("reported"),
        "both_reported": len(both),
        "same_speaker": same,
    }


def labellings(label_dir: Path = LABELS) -> dict[str, list[Gold]]:
    """The held-out labels of the relabelled sentences and each relabelling, in one order."""
    relabelled = [read_labels(label_dir / "agreement" / f"{n}.jsonl") for n in RELABELLED]
    keys = [(g.source, g.sentence) for g in relabelled[0]]
    by_key = {
        "heldout2": {(g.source, g.sentence): g for g in read_labels(label_dir / "heldout2.jsonl")},
        **{
            n: {(g.source, g.sentence): g for g in gs}
            for n, gs in zip(RELABELLED, relabelled, strict=True)
        },
    }
    for name, labels in by_key.items():
        missing = [k for k in keys if k not in labels]
        if missing:
            raise ValueError(f"relabelled sentences missing from {name}: {missing[:3]}")
    return {name: [labels[k] for k in keys] for name, labels in by_key.items()}


def agreement(label_dir: Path = LABELS) -> dict[str, dict[str, float | int]]:
    """Pairwise agreement of the held-out labels and the relabellings, on the relabelled
    sentences."""
    sets: Mapping[str, list[Gold]] = labellings(label_dir)
    return {f"{a} / {b}": compare(sets[a], sets[b]) for a, b in itertools.combinations(sets, 2)}


def module_scores(label_dir: Path = LABELS) -> dict[str, tuple[float, float]]:
    """(precision, recall) of the attribution module against each labelling of the sample."""
    from eval.attribution import BENCHMARKS, documents, score
    from rag.attribution import load

    parser = load()
    out: dict[str, tuple[float, float]] = {}
    for name, golds in labellings(label_dir).items():
        parts, _, _ = score(golds, documents(golds, BENCHMARKS), parser)
        s = parts["heldout2"]
        out[name] = (s.precision, s.recall)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.attribution_agreement", description=__doc__)
    ap.add_argument("--module", action="store_true", help="also score rag/attribution.py")
    args = ap.parse_args(argv)
    print(
        f"{'labellings':<16}{'sentences':>10}{'same voice':>12}{'kappa':>8}"
        f"{'reported':>10}{'both reported':>15}{'same speaker':>14}"
    )
    for pair, m in agreement().items():
        print(
            f"{pair:<16}{m['sentences']:>10}{m['same_voice']:>12}{m['kappa']:>8.3f}"
            f"{str(m['reported']) + '/' + str(m['reported_other']):>10}"
            f"{m['both_reported']:>15}{m['same_speaker']:>14}"
        )
    if args.module:
        for name, (precision, recall) in module_scores().items():
            print(f"module against {name}: precision {precision:.3f}, recall {recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
