"""FaissIndex against a brute-force numpy oracle, plus chunk_key."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.store import FaissIndex, VectorIndex, chunk_key

TOL = 1e-4


def unit_vectors(rng: np.random.Generator, n: int, dim: int, palette: int | None) -> np.ndarray:
    """Normalised float32 vectors; drawn from a small palette (many exact ties) if given."""
    if palette is None:
        v = rng.standard_normal((n, dim))
    else:
        base = rng.standard_normal((palette, dim))
        v = base[rng.integers(0, palette, size=n)]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def check_against_oracle(
    index: FaissIndex,
    stored: dict[int, np.ndarray],
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
) -> None:
    """Compare a search with the exact answer, allowing any order among tied scores."""
    scores, ids = index.search(queries, k, allowed)
    m = queries.shape[0]
    assert scores.shape == ids.shape == (m, k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64

    eligible = sorted(stored if allowed is None else set(stored) & set(allowed.tolist()))
    n_found = min(k, len(eligible))
    if eligible:
        matrix = np.stack([stored[i] for i in eligible]).astype(np.float64)
        true = queries.astype(np.float64) @ matrix.T  # (m, n_eligible)
    for row in range(m):
        assert (ids[row, n_found:] == -1).all()
        assert np.isneginf(scores[row, n_found:]).all()
        got = ids[row, :n_found]
        assert len(set(got.tolist())) == n_found
        assert set(got.tolist()) <= set(eligible)
        if not n_found:
            continue
        expected = np.sort(true[row])[::-1][:n_found]
        np.testing.assert_allclose(scores[row, :n_found], expected, atol=TOL)
        # Each returned id really has the returned score (so ties may come in any order).
        by_id = dict(zip(eligible, true[row], strict=True))
        np.testing.assert_allclose(
            scores[row, :n_found], [by_id[i] for i in got.tolist()], atol=TOL
        )
        assert (np.diff(scores[row, :n_found]) <= TOL).all()


ids_strategy = st.lists(
    st.integers(min_value=0, max_value=2**63 - 1), min_size=0, max_size=40, unique=True
)


@settings(max_examples=60, deadline=None)
@given(
    ids=ids_strategy,
    dim=st.integers(1, 12),
    k=st.integers(1, 50),
    n_queries=st.integers(0, 25),
    seed=st.integers(0, 2**32 - 1),
    palette=st.none() | st.integers(1, 4),
)
def test_search_matches_oracle(
    ids: list[int], dim: int, k: int, n_queries: int, seed: int, palette: int | None
) -> None:
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, len(ids), dim, palette)
    index = FaissIndex(dim)
    index.add(np.array(ids, dtype=np.int64), vectors)
    assert len(index) == len(ids)
    assert sorted(index.ids().tolist()) == sorted(ids)
    stored = dict(zip(ids, vectors, strict=True))
    check_against_oracle(index, stored, unit_vectors(rng, n_queries, dim, None), k)


@settings(max_examples=60, deadline=None)
@given(
    ids=ids_strategy,
    data=st.data(),
    dim=st.integers(1, 8),
    k=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    palette=st.none() | st.integers(1, 3),
)
def test_remove_and_allowed_match_oracle(
    ids: list[int], data: st.DataObject, dim: int, k: int, seed: int, palette: int | None
) -> None:
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, len(ids), dim, palette)
    index = FaissIndex(dim)
    index.add(np.array(ids, dtype=np.int64), vectors)
    stored = dict(zip(ids, vectors, strict=True))

    to_remove = data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]))
    unknown = data.draw(
        st.lists(st.integers(0, 2**63 - 1).filter(lambda i: i not in stored), max_size=3)
    )
    removed = index.remove(np.array(to_remove + unknown + to_remove[:1], dtype=np.int64))
    assert removed == len(to_remove)
    for i in to_remove:
        del stored[i]
    assert sorted(index.ids().tolist()) == sorted(stored)
    assert len(index) == len(stored)

    queries = unit_vectors(rng, 7, dim, None)
    check_against_oracle(index, stored, queries, k)
    allowed = data.draw(
        st.lists(st.sampled_from(ids) if ids else st.nothing(), unique=True)
        | st.lists(st.integers(0, 2**63 - 1), max_size=3)
    )
    check_against_oracle(index, stored, queries, k, np.array(allowed, dtype=np.int64))


def test_satisfies_protocol() -> None:
    assert isinstance(FaissIndex(3), VectorIndex)


def test_concurrent_searches_agree() -> None:
    rng = np.random.default_rng(0)
    index = FaissIndex(16)
    index.add(np.arange(500, dtype=np.int64), unit_vectors(rng, 500, 16, None))
    queries = unit_vectors(rng, 32, 16, None)
    allowed = np.arange(0, 500, 3, dtype=np.int64)
    expected = index.search(queries, 10, allowed)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: index.search(queries, 10, allowed), range(32)))
    for scores, ids in results:
        np.testing.assert_array_equal(scores, expected[0])
        np.testing.assert_array_equal(ids, expected[1])


def test_padding_when_k_exceeds_n() -> None:
    index = FaissIndex(2)
    index.add(np.array([7]), np.array([[1.0, 0.0]]))
    scores, ids = index.search(np.array([[1.0, 0.0]]), 3)
    assert ids.tolist() == [[7, -1, -1]]
    assert scores[0, 0] == pytest.approx(1.0)
    assert np.isneginf(scores[0, 1:]).all()


def test_empty_index_and_empty_allowed() -> None:
    index = FaissIndex(2)
    scores, ids = index.search(np.ones((2, 2)), 2)
    assert (ids == -1).all() and np.isneginf(scores).all()
    index.add(np.array([1, 2]), np.eye(2))
    scores, ids = index.search(np.ones((1, 2)), 2, allowed=np.array([], dtype=np.int64))
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_add_rejects_bad_input() -> None:
    index = FaissIndex(3)
    index.add(np.array([1, 2]), np.eye(3)[:2])
    with pytest.raises(ValueError, match="already present"):
        index.add(np.array([2]), np.ones((1, 3)))
    with pytest.raises(ValueError, match="duplicate"):
        index.add(np.array([5, 5]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([6]), np.ones((1, 4)))
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([6]), np.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        index.add(np.array([6]), np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        index.add(np.array([6]), np.array([[np.inf, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="ids for"):
        index.add(np.array([6, 7]), np.ones((1, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(np.array([-1]), np.ones((1, 3)))
    with pytest.raises(ValueError, match="integers"):
        index.add(np.array([1.5]), np.ones((1, 3)))
    # Nothing was overwritten or half-added.
    assert sorted(index.ids().tolist()) == [1, 2]
    _, ids = index.search(np.array([[0.0, 1.0, 0.0]]), 1)
    assert ids.tolist() == [[2]]


def test_search_rejects_bad_input() -> None:
    index = FaissIndex(3)
    with pytest.raises(ValueError):
        index.search(np.ones((1, 3)), 0)
    with pytest.raises(ValueError):
        index.search(np.ones((1, 2)), 1)
    with pytest.raises(ValueError):
        FaissIndex(0)


@settings(max_examples=20, deadline=None)
@given(ids=ids_strategy, dim=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_bytes_round_trip(ids: list[int], dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    index = FaissIndex(dim)
    index.add(np.array(ids, dtype=np.int64), unit_vectors(rng, len(ids), dim, None))
    copy = FaissIndex.from_bytes(index.to_bytes())
    assert copy.dim == dim
    assert copy.ids().tolist() == index.ids().tolist()
    queries = unit_vectors(rng, 3, dim, None)
    for a, b in zip(index.search(queries, 5), copy.search(queries, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    # The copy is independent and still refuses duplicates.
    if ids:
        with pytest.raises(ValueError):
            copy.add(np.array(ids[:1]), unit_vectors(rng, 1, dim, None))


def test_from_bytes_rejects_garbage() -> None:
    data = FaissIndex(4).to_bytes()
    for bad in (b"", b"not an index", data[: len(data) // 2]):
        with pytest.raises(ValueError):
            FaissIndex.from_bytes(bad)


@given(st.binary(min_size=8, max_size=64))
def test_chunk_key_properties(raw: bytes) -> None:
    hexid = raw.hex()
    key = chunk_key(hexid)
    assert 0 <= key < 2**63
    assert key == int(hexid[:16], 16) & (2**63 - 1)
    assert chunk_key(hexid) == key
    assert chunk_key(hexid + "0") == key  # only the first 16 digits count


def test_chunk_key_of_sha256() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert chunk_key(digest) == int(digest[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF
    assert chunk_key("f" * 64) == 2**63 - 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "g" * 16,
        "0x" + "0" * 16,
        "0" * 15,
        "_".join(["0000"] * 4),
        "\u0660" * 16,
        " " + "a" * 16,
    ],
)
def test_chunk_key_rejects_non_hex(bad: str) -> None:
    with pytest.raises(ValueError):
        chunk_key(bad)


# --------------------------------------------------------------------------- approximate kinds


def clustered(rng: np.random.Generator, n: int, dim: int, centres: int = 64) -> np.ndarray:
    """Unit vectors in clusters, like text embeddings (not uniform on the sphere)."""
    base = rng.standard_normal((centres, dim))
    v = base[rng.integers(0, centres, size=n)] + 0.6 * rng.standard_normal((n, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def recall_at(index: FaissIndex, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int):  # type: ignore[no-untyped-def]
    exact = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :k]]
    _, got = index.search(queries, k)
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, got.tolist(), strict=True)])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_recall_against_exact(kind: str) -> None:
    rng = np.random.default_rng(7)
    vectors = clustered(rng, 6000, 48)
    ids = rng.choice(2**40, size=6000, replace=False).astype(np.int64)
    index = FaissIndex(48, kind)  # type: ignore[arg-type]
    index.add(ids, vectors)
    assert index.kind == kind and len(index) == 6000
    queries = clustered(np.random.default_rng(8), 50, 48)
    assert recall_at(index, vectors, ids, queries, 10) >= 0.9


def test_approximate_kinds_recall_on_real_sentence_vectors(squad_corpus, encoder) -> None:  # type: ignore[no-untyped-def]
    """Real MiniLM vectors (the SQuAD articles' sentences) and real questions."""
    vectors = squad_corpus.sentence_vectors
    ids = np.arange(len(vectors), dtype=np.int64) * 3 + 1
    queries = encoder.encode(
        [
            "Who were the Normans?",
            "What is political Islam?",
            "When was the Scottish Parliament reconvened?",
            "Who led the Norman conquest of England?",
            "What do Islamists want to implement?",
        ],
        kind="query",
    )
    for kind in ("ivf", "hnsw"):
        index = FaissIndex(vectors.shape[1], kind)  # type: ignore[arg-type]
        index.add(ids, vectors)
        assert recall_at(index, vectors, ids, queries, 10) >= 0.9, kind


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_remove_add_and_round_trip_for_each_kind(kind: str) -> None:
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 3000, 32)
    ids = np.arange(3000, dtype=np.int64) * 11
    index = FaissIndex(32, kind)  # type: ignore[arg-type]
    index.add(ids, vectors)
    gone = ids[::3]
    assert index.remove(np.concatenate([gone, [5, 7]])) == gone.size  # unknown ids ignored
    assert len(index) == 3000 - gone.size
    assert not np.isin(gone, index.ids()).any()
    _, found = index.search(vectors[::3][:20], 5)  # a removed vector's own query
    assert not np.isin(found, gone).any()
    extra = clustered(rng, 10, 32)
    index.add(np.arange(10, dtype=np.int64) * 11 + 1, extra)
    _, found = index.search(extra, 1)
    assert found[:, 0].tolist() == (np.arange(10) * 11 + 1).tolist()
    with pytest.raises(ValueError, match="already present"):
        index.add(ids[1:2], vectors[1:2])

    queries = clustered(np.random.default_rng(4), 10, 32)
    for copy in (FaissIndex.from_bytes(index.to_bytes(), kind), index.copy()):  # type: ignore[arg-type]
        assert copy.kind == index.kind == kind
        assert sorted(copy.ids().tolist()) == sorted(index.ids().tolist())
        for a, b in zip(copy.search(queries, 7), index.search(queries, 7), strict=True):
            np.testing.assert_array_equal(a, b)
    # A copy is independent: what it gains and loses, the original does not.
    copy = index.copy()
    before = sorted(index.ids().tolist())
    copy.remove(ids[[1, 2, 4]])  # none of them removed above (ids[::3])
    copy.add(np.array([2, 4], dtype=np.int64), clustered(rng, 2, 32))
    assert sorted(index.ids().tolist()) == before
    assert len(copy) == len(index) - 3 + 2
    for a, b in zip(index.copy().search(queries, 7), index.search(queries, 7), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_filtered_search_on_approximate_kinds_is_exact_over_the_allowed(kind: str) -> None:
    rng = np.random.default_rng(5)
    vectors = clustered(rng, 4000, 32)
    ids = np.arange(4000, dtype=np.int64)
    index = FaissIndex(32, kind)  # type: ignore[arg-type]
    index.add(ids, vectors)
    allowed = rng.choice(4000, size=25, replace=False).astype(np.int64)
    queries = clustered(np.random.default_rng(6), 8, 32)
    scores, found = index.search(queries, 5, allowed)
    assert np.isin(found, allowed).all()
    exact = allowed[np.argsort(-(queries @ vectors[allowed].T), axis=1)[:, :5]]
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, found, strict=True)])
    assert overlap >= 0.95  # 8-bit codes: a near-tie may swap
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    _, none = index.search(queries, 3, np.array([10**12], dtype=np.int64))
    assert (none == -1).all()


def test_auto_moves_to_hnsw_past_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    import index.store as store

    monkeypatch.setattr(store, "AUTO_FLAT_MAX", 1000)
    rng = np.random.default_rng(9)
    vectors = clustered(rng, 1500, 16)
    index = FaissIndex(16, "auto")
    index.add(np.arange(900, dtype=np.int64), vectors[:900])
    assert index.kind == "flat"
    index.add(np.arange(900, 1500, dtype=np.int64), vectors[900:])
    assert index.kind == "hnsw" and len(index) == 1500
    assert sorted(index.ids().tolist()) == list(range(1500))
    _, found = index.search(vectors[:50], 1)
    assert (found[:, 0] == np.arange(50)).mean() >= 0.95
    index.remove(np.arange(1000, dtype=np.int64))  # shrinking keeps the structure
    assert index.kind == "hnsw" and len(index) == 500


def test_index_type_is_a_parameter_and_is_validated() -> None:
    index = FaissIndex(8, "hnsw")
    assert index.index_type == "hnsw"
    index.add(np.arange(100, dtype=np.int64), clustered(np.random.default_rng(1), 100, 8))
    assert index.kind == "hnsw"
    assert FaissIndex(8).index_type == "auto"  # never read from the environment
    with pytest.raises(ValueError, match="index type"):
        FaissIndex(8, "annoy")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def once_encoder(encoder):  # type: ignore[no-untyped-def]
    """The real encoder, embedding each text once for both kinds below (tests/once_encoder.py):
    they index the same articles."""
    from once_encoder import OnceEncoder

    return OnceEncoder(encoder)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_pipeline_builds_updates_and_removes_with_an_approximate_index(  # type: ignore[no-untyped-def]
    kind, tmp_path, squad_data_dir, once_encoder
) -> None:
    """The document write path (update, remove) on the non-flat kinds, through the pipeline,
    with the kind recorded in the manifest and answers still found. The kind comes from the
    Settings object passed in, not from the environment (issue 15)."""
    from rag.build import build_index, load_corpus, read_previous, remove_document
    from rag.pipeline import answer
    from rag.settings import Settings

    encoder = once_encoder

    settings = Settings(
        data_dir=squad_data_dir, index_dir=tmp_path / "index", reranker="", index_type=kind
    )
    report = build_index(settings, encoder)
    assert report.manifest.index_type == kind
    corpus = load_corpus(settings, encoder)
    assert corpus.index.kind == kind
    result = answer(corpus, encoder, "Who were the Normans?", settings=settings, mode="fast")
    assert result.passages[0].hit.chunk.doc_id == "squad2-Normans"
    previous = read_previous(settings.index_dir, encoder, rebuild=False)
    assert previous is not None
    after = remove_document(
        settings.index_dir, previous, "squad2-Normans", encoder, index_type=kind
    )
    assert after.manifest.index_type == kind
    assert len(after.index) == len(after.chunks)
    corpus = load_corpus(settings, encoder)
    result = answer(corpus, encoder, "Who were the Normans?", settings=settings, mode="fast")
    assert all(p.hit.chunk.doc_id != "squad2-Normans" for p in result.passages)


def test_hnsw_hides_a_few_removed_nodes_and_keeps_them_hidden_after_a_round_trip() -> None:
    import index.store as store

    rng = np.random.default_rng(12)
    vectors = clustered(rng, 2000, 24)
    ids = np.arange(2000, dtype=np.int64) + 100
    index = FaissIndex(24, "hnsw")
    index.add(ids, vectors)
    gone = ids[:50]  # 2.5%: hidden, not rebuilt
    assert index.remove(gone) == 50
    assert index.remove(gone) == 0  # already gone
    assert index._hidden == 50 and len(index) == 1950
    copy = FaissIndex.from_bytes(index.to_bytes(), "hnsw")
    for each in (index, copy):
        assert len(each) == 1950 and not np.isin(gone, each.ids()).any()
        _, found = each.search(vectors[:50], 10)
        assert not np.isin(found, gone).any() and (found >= 0).all()
    copy.add(gone[:5], vectors[:5])  # a removed id may come back
    _, found = copy.search(vectors[:5], 1)
    assert found[:, 0].tolist() == gone[:5].tolist()
    assert store.HNSW_MAX_HIDDEN < 1
