"""Fitting the abstention model (scikit-learn): training code, kept out of serving.

:mod:`rag.abstain` holds what the service needs (the signals, :class:`AbstentionModel` and
loading the shipped parameters); the parameters themselves are learned here, by
``rag eval learn-abstention`` (:mod:`eval.abstention`). scikit-learn is in the ``eval`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rag.abstain import AbstentionModel


def choose_threshold(
    probability: np.ndarray, answerable: np.ndarray, max_false_abstention: float
) -> float:
    """The model's own boundary, 0.5 (the more probable side), lowered until it refuses at
    most ``max_false_abstention`` of the answerable rows. Searching for the most accurate
    threshold on a few dozen questions instead wins a refusal or two on them and loses more
    on new ones."""
    ok = probability[answerable]
    if len(ok) == 0:
        return 0.5
    limit = float(np.quantile(ok, max_false_abstention, method="lower"))
    return min(0.5, limit)


def fit(
    rows: Sequence[Mapping[str, float]],
    answerable: Sequence[bool],
    features: Sequence[str],
    *,
    mode: str,
    encoder: str,
    reranker: str,
    chunker_version: str,
    max_false_abstention: float | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> AbstentionModel:
    """Learn the logistic model (scikit-learn) on ``rows`` of signals.

    The threshold is 0.5, or, with ``max_false_abstention``, the most accurate threshold
    that refuses at most that share of the answerable rows (:func:`choose_threshold`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
    y = np.array(answerable, dtype=np.int64)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), y)
    threshold = 0.5
    if max_false_abstention is not None:
        threshold = choose_threshold(
            clf.predict_proba(scaler.transform(x))[:, 1], y.astype(bool), max_false_abstention
        )
    return AbstentionModel(
        mode=mode,
        encoder=encoder,
        reranker=reranker,
        chunker_version=chunker_version,
        features=tuple(features),
        mean=tuple(float(v) for v in scaler.mean_),
        scale=tuple(float(v) for v in scaler.scale_),
        coef=tuple(float(v) for v in clf.coef_[0]),
        intercept=float(clf.intercept_[0]),
        threshold=round(threshold, 4),
        provenance=dict(provenance or {}),
    )
