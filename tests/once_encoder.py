"""The real encoder, running each distinct text through the model once (no tests here).

For tests that index the same real text more than once to compare two things built from it (two
storage backends, two kinds of FAISS index): what they compare is not the model, so a second
embedding of the same text would only repeat the first. Every vector still comes from the real
model, and the bundled model's passage vectors do not depend on the batch a text is in
(tests/test_embed_onnx.py), so the reuse changes no vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class OnceEncoder:
    """Wraps the real encoder; ``model_calls`` counts the texts the model embedded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.vectors: dict[tuple[str, str], np.ndarray] = {}
        self.model_calls = 0

    def __getattr__(self, name: str) -> Any:  # name, query_name, dim, max_tokens, ...
        return getattr(self.inner, name)

    def encode(
        self, texts: Sequence[str], *, kind: Any = "passage", progress: bool = False
    ) -> np.ndarray:
        items = list(texts)
        new = list(dict.fromkeys(t for t in items if (kind, t) not in self.vectors))
        if new:
            fresh = self.inner.encode(new, kind=kind, progress=progress)
            self.model_calls += len(new)
            self.vectors.update({(kind, t): v for t, v in zip(new, fresh, strict=True)})
        if not items:
            return np.asarray(self.inner.encode([], kind=kind))
        return np.stack([self.vectors[(kind, t)] for t in items])
