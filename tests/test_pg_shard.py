"""``rag index --shard i/n`` (rag/pgstore.py ``PostgresStorage.build_shard``, cli/main.py)
against a real PostgreSQL (the session's ``pg_server``): n shards embed disjoint parts of one
archive into one database, their union is the index one ``rag index`` builds, running a shard
again changes nothing, and concurrent shards lose none of each other's documents."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, articles, fake_settings
from pydantic import SecretStr

from cli.main import main
from core.types import Document
from index import pg
from index.persist import IndexSnapshot
from index.store import chunk_key
from rag.load import load_data_dir, make_document, write_article
from rag.pgstore import PostgresStorage, Shard, shard_of
from rag.storage import open_storage

REPO = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).with_name("rag")


def many_articles(n: int) -> list[Document]:
    """``n`` small made-up articles with ids of several shapes."""
    topics = ["ferry", "harbour", "budget", "school", "rail", "court", "museum", "drought"]
    docs = []
    for i in range(n):
        a, b = topics[i % len(topics)], topics[(3 * i + 1) % len(topics)]
        text = (
            f"The {a} council met on day {i}.\n\n"
            f"Critics of the {b} plan said it would cost {i + 2} million.\n\n"
            f"Article {i} ends with the {a} and the {b}.\n"
        )
        docs.append(make_document(f"article-{i:03d}" if i % 2 else f"Op_Ed_{i}", text))
    return docs


# ---------------------------------------------------------------------------- the partition


def test_every_document_belongs_to_exactly_one_shard_by_a_stable_hash() -> None:
    ids = [d.id for d in many_articles(200)]
    for n in (1, 2, 3, 7):
        shards = [Shard(i, n) for i in range(1, n + 1)]
        owners = Counter(sum(s.holds(d) for s in shards) for d in ids)
        assert owners == {1: len(ids)}  # each id in exactly one shard
        sizes = Counter(shard_of(d, n) for d in ids)
        assert set(sizes) == set(range(1, n + 1))  # no shard empty on 200 ids
    # Stable: the first 8 bytes of the id's sha256, not Python's per-process salted hash().
    assert [shard_of(d, 2) for d in ("rail-budget", "school-meals", "harbour-towns")] == [2, 1, 1]
    # Another process, with another string hash seed, puts every id in the same shard.
    script = "from rag.pgstore import shard_of; print([shard_of(f'd{i}', 5) for i in range(30)])"
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    assert other == str([shard_of(f"d{i}", 5) for i in range(30)]) + "\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("3/2", "between 1 and n"),
        ("0/2", "between 1 and n"),
        ("1/0", "between 1 and n"),
        ("x", "takes i/n"),
        ("1/", "takes i/n"),
        ("-1/2", "takes i/n"),
        ("1.5/2", "takes i/n"),
    ],
)
def test_a_bad_shard_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Shard.parse(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shard", "3/2", "--database-url", "postgresql://u@h/db"], "between 1 and n"),
        (["--shard", "x", "--database-url", "postgresql://u@h/db"], "takes i/n"),
        (["--shard", "x"], "takes i/n"),  # the value first, then the database
        (["--shard", "1/2"], "needs the database the shards share"),
        (["--shard", "1/2", "--database-url", "postgresql://u@h/db", "--rebuild"], "--rebuild"),
    ],
)
def test_rag_index_refuses_a_bad_shard_before_loading_anything(
    argv: list[str], message: str, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("RAG_DATABASE_URL", raising=False)
    assert main(["index", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


# ---------------------------------------------------------------------------- real database


def stored(url: str) -> tuple[int | None, IndexSnapshot]:
    with pg.connect(url) as conn:
        return pg.live_generation(conn), pg.load_snapshot(conn)


def content(snapshot: IndexSnapshot) -> dict[str, object]:
    """What an index holds, independent of the order documents were committed in."""
    ids = snapshot.index.ids()
    vectors = snapshot.index.vectors(ids)
    by_key = {int(k): v for k, v in zip(ids, vectors, strict=True)}
    rows = {}
    offset = 0
    for c in snapshot.chunks:
        n = len(c.sentences)
        rows[c.id] = (c, by_key[chunk_key(c.id)], snapshot.sentence_vectors[offset : offset + n])
        offset += n
    return {"documents": {d.id: d for d in snapshot.documents}, "chunks": rows}


def assert_same_index(a: IndexSnapshot, b: IndexSnapshot) -> None:
    ca, cb = content(a), content(b)
    assert ca["documents"] == cb["documents"]  # text byte for byte, metadata, sha256
    rows_a, rows_b = ca["chunks"], cb["chunks"]
    assert isinstance(rows_a, dict) and isinstance(rows_b, dict)
    assert rows_a.keys() == rows_b.keys()
    for chunk_id, (chunk, vec, sentences) in rows_a.items():
        other, other_vec, other_sentences = rows_b[chunk_id]
        assert other == chunk  # exact spans, sentence spans
        assert np.array_equal(other_vec, vec) and np.array_equal(other_sentences, sentences)


def test_concurrent_shards_store_the_whole_archive_and_again_change_nothing(
    pg_server, tmp_path: Path
) -> None:
    """Three shards at once (one document per transaction, so their transactions
    interleave), with the fake encoder: the union is the one-shot index; a document stored
    by someone else and a changed article of another shard are left alone."""
    encoder = FakeEncoder()
    docs = many_articles(30) + articles()
    url, one_shot_url = pg_server.create_database("shards"), pg_server.create_database("one")
    settings = fake_settings(tmp_path, database_url=SecretStr(url))
    # Written through the API earlier, on another machine: in no shard's data folder.
    elsewhere = make_document("put-elsewhere", "The ferry to the island was cancelled.\n")
    open_storage(settings).upsert(elsewhere, encoder)

    errors: list[BaseException] = []
    reports = {}

    def run(shard: Shard) -> None:
        storage = open_storage(settings)
        assert isinstance(storage, PostgresStorage)
        try:
            reports[shard.index] = storage.build_shard(shard, encoder, docs, batch=1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(Shard(i, 3),)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    added = [d for r in reports.values() for d in r.report.added]
    assert sorted(added) == sorted(d.id for d in docs)  # each document once, by its shard
    assert sum(r.transactions for r in reports.values()) == len(docs)
    assert {i: r.outside for i, r in reports.items()} == {
        i: len(docs) - len(r.report.added) for i, r in reports.items()
    }

    one_shot = open_storage(fake_settings(tmp_path / "one", database_url=SecretStr(one_shot_url)))
    one_shot.upsert(elsewhere, encoder)
    one_shot.build(docs, encoder)
    generation, union = stored(url)
    assert generation == 1 + len(docs)  # the PUT, then one per transaction
    assert_same_index(union, stored(one_shot_url)[1])

    # Again: nothing to embed, nothing written, the generation stays.
    for i in (1, 2, 3):
        again = open_storage(settings)
        assert isinstance(again, PostgresStorage)
        report = again.build_shard(Shard(i, 3), encoder, docs).report
        assert report.added == report.updated == () and report.chunks_embedded == 0
        assert len(report.unchanged) == len(reports[i].report.added)
    assert stored(url)[0] == generation

    # Shard 1 given an archive in which another shard's article changed, and one of its
    # own is missing: it stores neither change (it never touches other shards' documents,
    # and, like `rag index` with a database, never removes one).
    victim = next(d for d in docs if shard_of(d.id, 3) == 2)
    changed = make_document(victim.id, victim.text + "\nA new last line.\n")
    own = next(d for d in docs if shard_of(d.id, 3) == 1)
    archive = [changed if d.id == victim.id else d for d in docs if d.id != own.id]
    storage = open_storage(settings)
    assert isinstance(storage, PostgresStorage)
    report = storage.build_shard(Shard(1, 3), encoder, archive).report
    assert report.added == report.updated == report.removed == ()
    generation_after, after = stored(url)
    assert generation_after == generation
    held = {d.id: d for d in after.documents}
    assert held[victim.id] == victim and own.id in held and "put-elsewhere" in held


def test_two_rag_index_shard_processes_build_what_one_rag_index_builds(
    pg_server, tmp_path: Path
) -> None:
    """The command, for real: `rag index --shard 1/2` and `2/2` at the same time (two
    processes, the real model) into one database, then `rag index` alone into another; the
    two databases hold the same index, and a shard run again embeds nothing."""
    data = tmp_path / "data"
    data.mkdir()
    for doc in [*load_data_dir(REPO / "data"), *articles(), *many_articles(8)]:
        write_article(data, doc)
    urls = {name: pg_server.create_database(name) for name in ("sharded", "whole")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_DATA_DIR"] = str(data)
    env["RAG_INDEX_DIR"] = str(tmp_path / "unused-index")

    def rag_index(url: str, *shard: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(RAG), "index", *shard],
            env={**env, "RAG_DATABASE_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )

    def finish(proc: subprocess.Popen[str]) -> str:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return out

    shards = [rag_index(urls["sharded"], "--shard", s) for s in ("1/2", "2/2")]
    outputs = [finish(p) for p in shards]
    total = len(list(data.glob("*.txt")))
    for shard, out in zip(("1/2", "2/2"), outputs, strict=True):
        assert f"shard {shard}:" in out and "unchanged 0" in out, out
    finish(rag_index(urls["whole"]))
    generation, sharded = stored(urls["sharded"])
    assert len(sharded.documents) == total
    assert_same_index(sharded, stored(urls["whole"])[1])

    again = finish(rag_index(urls["sharded"], "--shard", "2/2"))
    assert "added 0, updated 0" in again and "embedded 0 chunks" in again, again
    assert stored(urls["sharded"])[0] == generation
