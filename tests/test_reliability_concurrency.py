"""Concurrency, in process against the service's real state (``api.state.ServiceState``, the
real model and index, the answer cache on): 8 threads asking questions and reading a document
while 1 thread replaces and removes that document, 10,000 operations in all.

Every answer must be explained by one single index version that was live while it was being
answered: each passage's chunk belongs to that version (no hit points at a removed chunk),
and every passage, quote and answer span is exact against that version's text of the
document (readers see the old or the new version, never a mix). A document read sees a text
and paragraph spans of one version.
"""

from __future__ import annotations

import functools
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.from_thread
import pytest
from test_api_support import prepare_dirs
from test_reliability_support import leading_sentences, real_paragraphs, record_figures

from api.state import Loaded, ServiceState
from core.errors import UnknownFilter
from core.types import Answer
from rag.load import make_document
from rag.settings import Settings

#: 4,000 in `make test` (CI's time budget); `python -m bench.reliability` and the figures in
#: docs/reliability.md use RAG_RELIABILITY_OPERATIONS=10000.
OPERATIONS = int(os.environ.get("RAG_RELIABILITY_OPERATIONS", "4000"))
READERS = 8
ACCURATE_SHARE = 0.005  # questions answered in accurate mode (re-ranked)
DOC = "flux"


@dataclass(frozen=True)
class Version:
    """What one index generation holds, as the checks need it."""

    chunk_ids: frozenset[str]
    texts: dict[str, str]

    @classmethod
    def of(cls, loaded: Loaded) -> Version:
        return cls(
            frozenset(c.id for c in loaded.corpus.chunks),
            {d.id: d.text for d in loaded.documents.values()},
        )


def keep(result: Answer) -> Answer:
    """The render function: the answer itself (one function, so the answer cache hits)."""
    return result


def explains(version: Version, result: Answer) -> bool:
    """``version`` holds every chunk ``result`` points at, and its every span is exact."""
    spans = []
    for passage in result.passages:
        chunk = passage.hit.chunk
        if chunk.id not in version.chunk_ids:
            return False
        spans.append((chunk.doc_id, chunk.start, chunk.end, chunk.text))
        spans.extend((q.doc_id, q.start, q.end, q.text) for q in passage.quotes)
    if result.answer is not None:
        a = result.answer
        spans.append((a.doc_id, a.start, a.end, a.text))
    for doc_id, start, end, text in spans:
        doc = version.texts.get(doc_id)
        if doc is None or doc[start:end] != text:
            return False
    return True


@pytest.fixture(scope="module")
def state(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):
    root = tmp_path_factory.mktemp("reliability-concurrency")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    settings = Settings(
        data_dir=data,
        index_dir=index,
        answer_mode="fast",  # accurate mode (cross-encoder) is 40x slower; asked now and then
    )
    service = ServiceState(settings, ask_concurrency=READERS, reload_interval=0)
    with anyio.from_thread.start_blocking_portal() as portal:
        portal.call(service.run)  # loads the model and index (no watching: reload_interval 0)
        yield service, portal


def test_readers_never_see_a_removed_chunk_or_a_mix(state, squad_articles) -> None:
    service, portal = state
    paragraphs = real_paragraphs()
    versions_text = [leading_sentences(p, 3) for p in paragraphs[:6]]
    # A pool small enough that the answer cache (keyed by generation) gets hits as well as
    # misses: a stale cached answer would be caught like any other.
    squad_questions = [q.question for a in squad_articles for q in a.questions][::25]
    flux_questions = [leading_sentences(t, 1) for t in versions_text]

    history: dict[int, Version] = {}
    first = service.current()
    history[first.generation] = Version.of(first)
    done = threading.Event()
    lock = threading.Lock()
    counts = {"asks": 0, "reads": 0, "writes": 0, "removes": 0, "unknown_filter": 0}
    failures: list[str] = []
    # (generation before, after, the answer; None: refused as an unknown filter)
    checks: list[tuple[int, int, Answer | None]] = []

    def total() -> int:
        return counts["asks"] + counts["reads"] + counts["writes"] + counts["removes"]

    def writer() -> None:
        rng = random.Random(1)
        while not done.is_set():
            present = DOC in service.current().documents
            if present and rng.random() < 0.25:
                portal.call(service.remove, DOC)
                key = "removes"
            else:
                text = rng.choice(versions_text)
                portal.call(service.upsert, make_document(DOC, text))
                key = "writes"
            loaded = service.current()
            with lock:
                history[loaded.generation] = Version.of(loaded)
                counts[key] += 1

    def reader(n: int) -> None:
        rng = random.Random(100 + n)
        while True:
            with lock:
                if total() >= OPERATIONS:
                    done.set()
                    return
            before = service.current()
            if rng.random() < 0.3:  # read the document, as GET /documents/flux does
                doc = before.documents.get(DOC)
                if doc is not None:
                    spans = before.paragraphs[DOC]
                    if not all(0 <= p.start <= p.end <= len(doc.text) for p in spans):
                        failures.append(f"paragraph spans outside the text: {spans}")
                    if before.chunk_counts[DOC] != sum(
                        1 for c in before.corpus.chunks if c.doc_id == DOC
                    ):
                        failures.append("chunk count differs from the chunks")
                with lock:
                    counts["reads"] += 1
                continue
            flux = rng.random() < 0.5
            question = rng.choice(flux_questions if flux else squad_questions)
            doc_ids = [DOC] if flux and rng.random() < 0.5 else None
            call = functools.partial(
                service.ask,
                question,
                keep,
                top_k=rng.choice([1, 5]),
                doc_ids=doc_ids,
                mode="accurate" if rng.random() < ACCURATE_SHARE else None,
            )
            try:
                result = portal.call(call)
            except UnknownFilter:
                with lock:
                    counts["unknown_filter"] += 1
                    counts["asks"] += 1
                    checks.append((before.generation, service.current().generation, None))
                continue
            except Exception as exc:  # any other error is a failure
                failures.append(f"{type(exc).__name__}: {exc}")
                done.set()
                return
            after = service.current()
            with lock:
                counts["asks"] += 1
                checks.append((before.generation, after.generation, result))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    write_thread = threading.Thread(target=writer)
    write_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    done.set()
    write_thread.join(timeout=120)
    assert not failures, failures[:5]

    unexplained = 0
    for low, high, result in checks:
        window = [v for g, v in history.items() if low <= g <= high]
        if result is None:  # refused filter: the document was absent from some version
            ok = any(DOC not in v.texts for v in window)
        else:
            ok = any(explains(v, result) for v in window)
        unexplained += not ok
    figures = {
        **counts,
        "operations": total(),
        "generations": len(history),
        "answers_checked": len(checks),
        "answer_cache_hits": service.answer_cache.hits,
        "unexplained": unexplained,
    }
    record_figures("concurrency", figures)
    assert unexplained == 0, figures
    assert total() >= OPERATIONS
    # The versions did change under the readers (20 times at least in 10,000 operations).
    assert counts["writes"] + counts["removes"] >= OPERATIONS // 500, figures
    assert Path(service.settings.index_dir, "CURRENT").is_file()
