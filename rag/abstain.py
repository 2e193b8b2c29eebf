"""Answer or abstain: a small logistic model over retrieval signals, learned on real questions.

The signals of one answer (:func:`signals`) are the scores the pipeline already has: the best
sentence's support, its cosine and lexical parts, the top passage's dense score and its margin
over the next, the share of the question's names that the answer's passage holds, and in
accurate mode the cross-encoder's passage and sentence logits and margin.
:class:`AbstentionModel` turns them into the probability that the articles answer the
question; below its threshold the service abstains.

Each mode's model weighs only a few of them (:data:`FAST_SIGNALS`, :data:`ACCURATE_SIGNALS`);
what the article visibly lacks is refused before it is asked (:func:`rag.question.lacks`).
The parameters are learned by ``rag eval learn-abstention`` (``eval/fit.py``: scikit-learn,
which serving never imports) on the tuning half of the seed-article question set, reported on
the other half, and shipped as JSON beside this module (``rag/abstention/<mode>.json``). They
belong to the models that made the signals: loading refuses parameters learned with another
encoder, reranker or chunker. A cross-encoder served from a folder (``RAG_RERANKER=<folder>``,
such as the student ``rag eval distill-reranker`` writes) keeps the accurate parameters learned
for it in that folder (:data:`FOLDER_FILE`), named by the hash of its model file
(:func:`reranker_identity`), so they travel with the model and the shipped ones stay as they are.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from core.types import Hit, sha256_file
from rag.chunk import CHUNKER_VERSION
from rag.quote import Choice
from rag.settings import Settings

log = logging.getLogger(__name__)

#: Where the shipped parameters live: one file per answer mode.
SHIPPED_DIR = Path(__file__).resolve().parent / "abstention"

#: The signals each mode's model weighs: how relevant the best passage and the answer read,
#: and whether the passage holds the names the question asks about. Lexical overlap is left
#: out on purpose: a question worded differently from the article is no reason to refuse.
FAST_SIGNALS: tuple[str, ...] = ("dense_top", "cosine", "names_found")
ACCURATE_SIGNALS: tuple[str, ...] = ("rerank_top", "sentence_rerank", "names_found")


class AbstentionMismatch(ModelError):
    """Abstention parameters learned with other models than the ones loaded."""

    code = "abstention_mismatch"


#: The accurate parameters learned for a cross-encoder served from a folder, inside that folder.
FOLDER_FILE = "abstention-accurate.json"


def reranker_folder(name: str) -> Path | None:
    """The folder a cross-encoder named ``name`` is served from (one holding ``model.onnx``),
    or None for a bundled model or a name that is no such folder."""
    if name.startswith("bundled:"):
        return None
    folder = Path(name).expanduser()
    return folder if (folder / "model.onnx").is_file() else None


def reranker_identity(name: str) -> str:
    """What abstention parameters record of the cross-encoder they were learned with: a
    bundled model's name, or for a model folder ``sha256:`` and the first 16 hex digits of its
    ``model.onnx`` (the folder may move, or be named by another path, and still be the same
    model; retrained, it is another one), else the name as given."""
    folder = reranker_folder(name)
    return name if folder is None else "sha256:" + sha256_file(folder / "model.onnx")[:16]


def shipped_path(mode: str, directory: Path = SHIPPED_DIR, variant: str = "") -> Path:
    """``<mode>.json``, or ``<mode>-<variant>.json`` for questions encoded otherwise (the
    static question table's fast-mode parameters are ``fast-static.json``)."""
    return directory / (f"{mode}-{variant}.json" if variant else f"{mode}.json")


def signals(
    hits: Sequence[Hit],
    choice: Choice,
    *,
    names: float = 1.0,
    type_found: bool = True,
    names_in_article: float = 1.0,
) -> dict[str, float]:
    """The signals of one answer, by name (accurate ones only when the hits were reranked).

    ``choice`` is the chosen answer: its best sentence's support, cosine and lexical scores,
    and (accurate mode) the cross-encoder's logit for it; ``names`` is
    :func:`rag.question.names_found` for the question and the answer's passage."""
    support, cosine, lexical, sentence_rerank = (
        choice.support,
        choice.cosine,
        choice.lexical,
        choice.rerank,
    )
    dense = sorted((h.dense_score for h in hits if h.dense_score is not None), reverse=True)
    dense_top = dense[0] if dense else 0.0
    dense_second = dense[1] if len(dense) > 1 else 0.0
    top = hits[0] if hits else None
    out = {
        "support": support,
        "cosine": cosine,
        "lexical": lexical,
        "dense_top": dense_top,
        "dense_margin": dense_top - dense_second,
        # Whether dense and BM25 agree on the top passage (both rank it in their top 3).
        "bm25_agrees": float(
            top is not None
            and top.bm25_rank is not None
            and top.bm25_rank <= 3
            and top.dense_rank is not None
            and top.dense_rank <= 3
        ),
        "names_found": names,
        # Whether the answer holds the kind of answer asked for, and the share of the
        # question's names its article mentions (rag.question.lacks refuses below 1).
        "type_found": float(type_found),
        "names_in_article": names_in_article,
    }
    reranked = [h.rerank_score for h in hits if h.rerank_score is not None]
    if reranked:
        out["rerank_top"] = reranked[0]
        out["rerank_margin"] = reranked[0] - (reranked[1] if len(reranked) > 1 else -12.0)
        out["sentence_rerank"] = reranked[0] if sentence_rerank is None else sentence_rerank
    return out


@dataclass(frozen=True)
class AbstentionModel:
    """Logistic regression over standardised signals; answer when P(answerable) >= threshold."""

    mode: str
    encoder: str
    reranker: str  # "" in fast mode
    chunker_version: str
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def probability(self, values: Mapping[str, float]) -> float:
        """P(the articles answer the question) given an answer's signals."""
        missing = [f for f in self.features if f not in values]
        if missing:
            raise ModelError(f"abstention model needs signals it was not given: {missing}")
        x = np.array([values[f] for f in self.features], dtype=np.float64)
        z = (x - np.array(self.mean)) / np.array(self.scale)
        logit = float(z @ np.array(self.coef) + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def reason(self, values: Mapping[str, float]) -> str | None:
        """Why to abstain, or None to answer."""
        p = self.probability(values)
        if p >= self.threshold:
            return None
        return (
            f"The articles do not appear to answer this: the evidence scores {p:.2f}, below "
            f"the {self.mode} mode's abstention threshold {self.threshold:.2f}."
        )

    def check(self, *, encoder: str, reranker: str, chunker_version: str) -> AbstentionModel:
        """Itself, if it was learned with these models; else :class:`AbstentionMismatch`."""
        theirs = {"encoder": encoder, "reranker": reranker, "chunker_version": chunker_version}
        ours = {
            "encoder": self.encoder,
            "reranker": self.reranker,
            "chunker_version": self.chunker_version,
        }
        wrong = [k for k in theirs if theirs[k] != ours[k]]
        if wrong:
            detail = ", ".join(f"{k} {ours[k]!r} (loaded: {theirs[k]!r})" for k in wrong)
            raise AbstentionMismatch(
                f"the {self.mode} abstention parameters were learned with {detail}; re-learn "
                "them with `rag eval learn-abstention`, or set "
                "RAG_ABSTENTION=threshold to use the plain support threshold"
            )
        return self

    def to_json(self) -> str:
        data = asdict(self)
        data["provenance"] = dict(self.provenance)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AbstentionModel:
        data = json.loads(text)
        try:
            model = cls(
                mode=str(data["mode"]),
                encoder=str(data["encoder"]),
                reranker=str(data["reranker"]),
                chunker_version=str(data["chunker_version"]),
                features=tuple(data["features"]),
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]),
                threshold=float(data["threshold"]),
                provenance=data.get("provenance", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed abstention parameters: {exc}") from exc
        n = len(model.features)
        if not (len(model.mean) == len(model.scale) == len(model.coef) == n):
            raise ModelError("malformed abstention parameters: vector lengths differ")
        return model


def load_abstention(
    mode: str,
    *,
    encoder: str,
    reranker: str,
    chunker_version: str,
    directory: Path = SHIPPED_DIR,
    variant: str = "",
) -> AbstentionModel:
    """The shipped parameters for ``mode``, checked against the loaded models."""
    path = shipped_path(mode, directory, variant)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(
            f"no abstention parameters at {path}: learn them with `rag eval learn-abstention`"
        ) from exc
    return AbstentionModel.from_json(text).check(
        encoder=encoder, reranker=reranker, chunker_version=chunker_version
    )


def models_for(
    settings: Settings, *, encoder: str, reranker: str | None, variant: str = ""
) -> dict[str, AbstentionModel]:
    """The shipped abstention models usable with the loaded models, by mode (``variant``:
    the files of questions encoded otherwise, see :func:`shipped_path`).

    Empty when ``settings.abstention`` is ``threshold``. A mode whose parameters are missing or
    were learned with other models is left out, with a warning saying so: that mode then
    abstains by the support threshold."""
    if settings.abstention != "learned":
        return {}
    out: dict[str, AbstentionModel] = {}
    for mode, rerank_name in (("fast", ""), ("accurate", reranker)):
        if rerank_name is None:
            continue
        try:
            if mode == "accurate" and (folder := reranker_folder(rerank_name)) is not None:
                out[mode] = load_folder_abstention(folder, encoder=encoder)
                continue
            out[mode] = load_abstention(
                mode,
                encoder=encoder,
                reranker=rerank_name,
                chunker_version=CHUNKER_VERSION,
                variant=variant,
            )
        except ModelError as exc:
            log.warning("%s mode abstains by the support threshold: %s", mode, exc)
    return out


def load_folder_abstention(folder: Path, *, encoder: str) -> AbstentionModel:
    """The accurate parameters learned for the cross-encoder in ``folder``
    (:data:`FOLDER_FILE`), checked against its model file and ``encoder``."""
    path = folder / FOLDER_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(
            f"no abstention parameters for the cross-encoder in {folder} (the shipped ones "
            f"belong to the bundled one): learn them with `RAG_RERANKER={folder} rag eval "
            f"learn-abstention`, which writes {path}"
        ) from exc
    return AbstentionModel.from_json(text).check(
        encoder=encoder,
        reranker=reranker_identity(str(folder)),
        chunker_version=CHUNKER_VERSION,
    )
