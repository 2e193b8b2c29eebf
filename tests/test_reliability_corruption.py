"""Corruption: truncated or bit-flipped index files (vectors, chunks, documents, sentence
vectors, manifest) are caught by their checksums when the index is loaded.

Through a real ``rag serve``: with the previous generation intact the server falls back to it
(and says so in its log); with no intact generation it refuses to serve (``/readyz`` 503 with
the reason, and one clear log line), never serving the damaged data, never crashing. In
process, a sweep of random bit flips and truncations of a real index counts the damage
detected out of the damage done (``docs/reliability.md``)."""

from __future__ import annotations

import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_api_support import START_TIMEOUT, LiveServer, prepare_dirs
from test_reliability_support import (
    check_index,
    leading_sentences,
    real_paragraphs,
    record_figures,
)

from core.errors import IndexCorrupt
from index.persist import CURRENT, load_snapshot
from rag.build import read_previous, upsert_document
from rag.load import make_document

FILES = ["vectors.faiss", "chunks.jsonl", "documents.jsonl", "sentences.npy", "manifest.json"]
PROBE = "corruption-probe"


def truncate(path: Path, rng: random.Random) -> str:
    data = path.read_bytes()
    keep = rng.randrange(len(data))
    path.write_bytes(data[:keep])
    return f"truncated to {keep} of {len(data)} bytes"


def flip(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    position, bit = rng.randrange(len(data)), 1 << rng.randrange(8)
    data[position] ^= bit
    path.write_bytes(bytes(data))
    return f"bit {bit:#04x} of byte {position} flipped"


DAMAGE = {"truncate": truncate, "flip": flip}


def live_dir(index_dir: Path) -> Path:
    return index_dir / (index_dir / CURRENT).read_text().strip()


@pytest.fixture(scope="module")
def two_generations(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus, encoder):
    """A data folder and an index of two generations: the SQuAD articles (generation 1) and
    the same plus a probe document (generation 2, live)."""
    root = tmp_path_factory.mktemp("corruption-base")
    _data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    previous = read_previous(index, encoder, rebuild=False)
    text = leading_sentences(real_paragraphs()[1], 3)
    upsert_document(index, previous, make_document(PROBE, text), encoder)
    snapshot = check_index(index)
    assert PROBE in {d.id for d in snapshot.documents}
    return root


def serve_damaged(base: Path, root: Path, damages: list[tuple[int, str, str]]) -> LiveServer:
    """A server over a copy of ``base`` with ``damages`` (generation offset from the live
    one, file, kind) done to it; started, but not waited for beyond listening."""
    shutil.copytree(base / "data", root / "data")
    shutil.copytree(base / "index", root / "index")
    live = live_dir(root / "index")
    rng = random.Random(str(damages))
    for offset, name, kind in damages:
        number = int(live.name.split("-")[1]) - offset
        DAMAGE[kind](root / "index" / f"gen-{number:06d}" / name, rng)
    srv = LiveServer(root, root / "data", root / "index")
    srv.start(wait_ready=False)
    return srv


def wait_outcome(srv: LiveServer) -> tuple[int, dict[str, Any]]:
    """/readyz once loading has finished (200, or 503 with the reason)."""
    deadline = time.monotonic() + START_TIMEOUT
    with srv.client() as client:
        while True:
            response = client.get("/readyz")
            body = response.json()
            loading = response.status_code == 503 and "loading" in body["error"]["message"]
            if not loading:
                return response.status_code, body
            assert srv.proc is not None and srv.proc.poll() is None, srv.log_tail()
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.05)


CASES = [(name, kind) for name in FILES for kind in DAMAGE]


def run_case(base: Path, root: Path, name: str, kind: str) -> dict[str, object]:
    srv = serve_damaged(base, root, [(0, name, kind)])
    try:
        status, body = wait_outcome(srv)
        assert status == 200, (name, kind, body, srv.log_tail())
        assert body["documents"] == 3  # generation 1: no probe document
        with srv.client() as client:
            assert client.get(f"/documents/{PROBE}").status_code == 404
            asked = client.post("/ask", json={"question": "Who were the Normans?"})
            assert asked.status_code == 200
        logs = srv.logs()
        assert "is corrupt" in logs and "falling back to previous generation" in logs, logs
        assert name in logs
        assert "Traceback" not in logs
        return {"file": name, "damage": kind, "outcome": "fell back to the previous generation"}
    finally:
        srv.stop()


def test_damaged_live_generation_falls_back(two_generations: Path, tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(run_case, two_generations, tmp_path / f"{name}-{kind}", name, kind)
            for name, kind in CASES
        ]
        results = [f.result() for f in futures]
    record_figures("corruption_server", {"cases": results, "tried": len(CASES)})


@pytest.mark.parametrize(
    ("damages", "named"),
    [
        ([(0, "vectors.faiss", "flip"), (1, "chunks.jsonl", "flip")], "vectors.faiss"),
        ([(0, "manifest.json", "truncate"), (1, "sentences.npy", "truncate")], "manifest.json"),
    ],
)
def test_no_intact_generation_is_refused(
    two_generations: Path, tmp_path: Path, damages: list[tuple[int, str, str]], named: str
) -> None:
    srv = serve_damaged(two_generations, tmp_path, damages)
    try:
        status, body = wait_outcome(srv)
        assert status == 503 and body["error"]["code"] == "not_ready"
        message = body["error"]["message"]
        assert "could not load" in message and named in message
        with srv.client() as client:
            assert (
                client.post("/ask", json={"question": "Who were the Normans?"}).status_code == 503
            )
            assert client.get("/documents").status_code == 503
            assert client.get("/healthz").status_code == 200  # alive, not crashed
        lines = [line for line in srv.logs().splitlines() if "could not load" in line]
        assert len(lines) == 1 and named in lines[0] and "unusable too" in lines[0], lines
    finally:
        srv.stop()


SWEEP = 40  # random damages per file and kind


def test_every_random_damage_is_detected(two_generations: Path, tmp_path: Path) -> None:
    """Random bit flips and truncations of each file of a real generation: every one is
    IndexCorrupt at load (only one generation is kept, so nothing to fall back to)."""
    index = tmp_path / "index"
    shutil.copytree(two_generations / "index", index)
    live = live_dir(index)
    for other in index.glob("gen-*"):
        if other != live:
            shutil.rmtree(other)
    originals = {name: (live / name).read_bytes() for name in FILES}
    rng = random.Random(8)
    tried = detected = 0
    for name in FILES:
        for damage in DAMAGE.values():
            for _ in range(SWEEP):
                damage(live / name, rng)
                tried += 1
                try:
                    load_snapshot(index)
                except IndexCorrupt as exc:
                    detected += 1
                    assert name in str(exc) or "manifest" in str(exc), exc
                (live / name).write_bytes(originals[name])
    load_snapshot(index)  # the restored files are fine
    record_figures("corruption_sweep", {"tried": tried, "detected": detected})
    assert detected == tried
