"""The vector store: inner-product search over int64 ids, behind a small Protocol.

Three FAISS structures sit behind :class:`FaissIndex`, chosen by corpus size (``auto``) or by
the caller's ``index_type`` (docs/benchmarks.md has the measurements behind the choice):

- ``flat``: ``IndexIDMap2(IndexFlatIP)``, exact. ``auto`` up to :data:`AUTO_FLAT_MAX`
  vectors, where an exact scan takes about a millisecond.
- ``hnsw``: ``IndexIDMap2(IndexHNSWSQ)`` (graph over 8-bit codes, a quarter of float32's
  memory). ``auto`` above :data:`AUTO_FLAT_MAX`: sub-millisecond to few-millisecond searches
  with recall@10 about 0.95-0.98 against exact search up to 1M vectors. FAISS cannot remove a node
  from an HNSW graph, so :meth:`FaissIndex.remove` hides it: its id in the id map becomes -1
  (persisted with the index) and searches skip -1 through a selector while still walking
  through the node. When hidden nodes pass :data:`HNSW_MAX_HIDDEN` of the graph, it is rebuilt
  from the live (decoded) vectors.
- ``ivf``: ``IndexIVFScalarQuantizer`` (8-bit codes) with a hashtable direct map, so vectors
  are removed in place and read back by id; quick to build, but on MiniLM vectors it needs
  about 1/8 of its lists probed at 1M for recall@10 0.95, so it is an override, not ``auto``.

A filtered search (``allowed``) over an approximate index scores the allowed vectors directly
(read back from the codes) when there are at most :data:`EXACT_FILTER_MAX` of them, so a
filter to a few documents never misses them in unprobed lists or graph regions.

Thread-safety: :meth:`VectorIndex.search` may run concurrently with other searches (FAISS
searches are read-only). Writers (``add``, ``remove``) are *not* locked here: the caller must
serialise them and must not run them concurrently with searches.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import faiss
import numpy as np

IndexType = Literal["auto", "flat", "hnsw", "ivf"]
IndexKind = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)

#: ``auto`` keeps an exact index up to this many vectors and switches to ``hnsw`` above.
AUTO_FLAT_MAX = 20_000
#: A filtered search over an approximate index scores at most this many allowed vectors
#: directly (exactly, on the decoded codes) instead of searching the structure.
EXACT_FILTER_MAX = 4096
#: HNSW graph degree, and the beam widths at build and search time (the search beam grows
#: with the graph: see :func:`hnsw_ef_search`).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
#: IVF: k-means is trained on at most this many vectors per list (a sample).
IVF_TRAIN_PER_LIST = 40
#: HNSW: share of hidden (removed) nodes above which a removal rebuilds the graph.
HNSW_MAX_HIDDEN = 0.2
HIDDEN = -1
#: Searches of fewer queries than this run on one OpenMP thread (in the calling thread):
#: the service searches one query at a time from several threads, and FAISS's own thread
#: pool then costs far more than it saves (1 thread: 0.6 ms; 2: 36 ms p50, 10k vectors on a
#: busy 2-core machine; docs/benchmarks.md).
SINGLE_THREAD_BELOW = 16

_KEY_MASK = 0x7FFF_FFFF_FFFF_FFFF
#: FAISS's bundled type hints miss much of its SWIG API (DirectMap, HNSW parameters, ...).
_faiss: Any = faiss
_HEX_ID = re.compile(r"[0-9a-fA-F]{16,}")


def chunk_key(chunk_id: str) -> int:
    """Map a hex content-hash chunk id to a non-negative int63 FAISS id.

    Uses the first 16 hex digits, masked to 63 bits. Raises ValueError unless ``chunk_id``
    is at least 16 ASCII hex digits and nothing else.
    """
    if not isinstance(chunk_id, str) or _HEX_ID.fullmatch(chunk_id) is None:
        raise ValueError(f"chunk id must be a hex string of at least 16 digits: {chunk_id!r}")
    return int(chunk_id[:16], 16) & _KEY_MASK


@runtime_checkable
class VectorIndex(Protocol):
    """A vector store keyed by int64 ids, scored by inner product."""

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n, dim) under new ``ids`` (n,); ValueError on bad input."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many were removed."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product: (scores float32 (m, k), ids int64 (m, k)), best first.

        Padded with score ``-inf`` and id ``-1``. When ``allowed`` is given, only those ids
        may be returned.
        """
        ...

    def ids(self) -> np.ndarray:
        """All ids currently stored (int64)."""
        ...


def build_faiss_index(dim: int) -> faiss.IndexIDMap2:
    """Construct the empty exact FAISS index (``flat``)."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def choose_kind(index_type: str, n: int) -> IndexKind:
    """The structure for ``n`` vectors: the requested one, or by size for ``auto``."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}")
    if index_type == "auto":
        return "flat" if n <= AUTO_FLAT_MAX else "hnsw"
    return index_type  # type: ignore[return-value]


def hnsw_ef_search(n: int) -> int:
    """The HNSW search beam for ``n`` vectors: 96 up to 100k, then growing as n^0.3 (192 at
    1M). Measured on MiniLM-like vectors: recall@10 0.974 at 100k with 96, 0.955 at 1M with
    192 (0.92 with 96) (docs/benchmarks.md)."""
    return int(min(512, HNSW_EF_SEARCH * max(1.0, n / 100_000) ** 0.301))


def ivf_shape(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors: about 2 sqrt(n) lists (a power of two, 64 to 4096),
    and 1/8 of them probed (at least 16): recall@10 about 0.93-0.96 against exact search on
    MiniLM vectors from 10k to 1M (docs/benchmarks.md)."""
    nlist = 2 ** round(math.log2(max(64.0, min(4096.0, 2 * math.sqrt(max(n, 1))))))
    return nlist, max(16, nlist // 8)


def _new_structure(kind: IndexKind, dim: int, train: np.ndarray) -> Any:
    """An empty FAISS index of ``kind``, trained on ``train`` where it needs training."""
    if kind == "flat":
        return build_faiss_index(dim)
    if kind == "hnsw":
        hnsw = _faiss.IndexHNSWSQ(
            dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT
        )
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        if train.shape[0]:
            hnsw.train(train)
        return faiss.IndexIDMap2(hnsw)
    nlist, nprobe = ivf_shape(train.shape[0])
    nlist = max(1, min(nlist, train.shape[0] // 39))  # FAISS wants >= 39 points per list
    quantizer: Any = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    ivf.own_fields = True
    quantizer.this.disown()  # owned by ``ivf`` now
    ivf.cp.niter = 10
    sample = train
    limit = nlist * IVF_TRAIN_PER_LIST
    if sample.shape[0] > limit:
        rows = np.random.default_rng(0).choice(sample.shape[0], limit, replace=False)
        sample = train[np.sort(rows)]
    ivf.train(sample)
    ivf.nprobe = min(nprobe, nlist)
    ivf.set_direct_map_type(_faiss.DirectMap.Hashtable)
    return ivf


def _kind_of(raw: faiss.Index) -> IndexKind:
    """Which of the supported structures a deserialised index is; ValueError otherwise."""
    if isinstance(raw, faiss.IndexIDMap2):
        inner = faiss.downcast_index(raw.index)
        if isinstance(inner, faiss.IndexFlat):
            return "flat"
        if isinstance(inner, faiss.IndexHNSW):
            return "hnsw"
        raise ValueError(f"unsupported FAISS index inside the id map: {type(inner).__name__}")
    if isinstance(raw, faiss.IndexIVFScalarQuantizer):
        return "ivf"
    raise ValueError(f"expected a FAISS IndexIDMap2 or IVF index, got {type(raw).__name__}")


def _as_ids(ids: np.ndarray, what: str = "ids") -> np.ndarray:
    """Validate and convert to a contiguous 1-d int64 array."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{what} do not fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_vectors(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    """Validate and convert to a contiguous, finite (n, dim) float32 array."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain non-finite values")
    return arr


class FaissIndex:
    """:class:`VectorIndex` over a FAISS ``flat``, ``ivf`` or ``hnsw`` structure.

    ``index_type`` is ``auto`` (by size: see :func:`choose_kind`) or a structure's name; the
    caller passes it (the pipeline passes the ``index_type`` setting: nothing here reads
    settings). With ``auto``, :meth:`add` moves the vectors to a new structure when the size
    calls for another one (never back: removals keep the structure).
    Searches may run concurrently; ``add``/``remove`` must be serialised by the caller.
    """

    def __init__(self, dim: int, index_type: IndexType = "auto") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self._dim = dim
        self._type: IndexType = index_type
        choose_kind(self._type, 0)  # validates the type
        # Empty: an exact index. The first add builds the requested structure, trained on
        # the vectors it receives (IVF lists and quantiser ranges need data).
        self._kind: IndexKind = "flat"
        self._index: Any = build_faiss_index(dim)
        self._trained_on = 0  # vectors the structure was built for (IVF lists, SQ ranges)
        self._hidden = 0  # hnsw: removed nodes still in the graph, labelled HIDDEN

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> IndexKind:
        """The structure in use: ``flat``, ``ivf`` or ``hnsw`` (recorded in the manifest)."""
        return self._kind

    @property
    def index_type(self) -> IndexType:
        """What was asked for: ``auto`` or a structure's name."""
        return self._type

    def __len__(self) -> int:
        return int(self._index.ntotal) - self._hidden

    def __repr__(self) -> str:
        return f"FaissIndex(dim={self._dim}, n={len(self)}, kind={self._kind!r})"

    def ids(self) -> np.ndarray:
        """All ids currently stored, int64 (in insertion order for ``flat`` and ``hnsw``)."""
        if self._kind == "ivf":
            invlists = self._index.invlists
            parts = [
                faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                for i in range(invlists.nlist)
                if invlists.list_size(i)
            ]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        labels = faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=True)
        return labels[labels != HIDDEN] if self._hidden else labels

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (all present), float32 (n, dim): exact for ``flat``,
        decoded from 8-bit codes (to about 1e-2) for ``ivf`` and ``hnsw``."""
        id_arr = _as_ids(ids)
        if id_arr.size == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(id_arr), dtype=np.float32)

    def _rebuild(self, kind: IndexKind, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the structure by a new one of ``kind`` holding exactly these vectors."""
        index = _new_structure(kind, self._dim, vectors)
        if ids.size:
            index.add_with_ids(vectors, ids)
        self._index, self._kind, self._trained_on = index, kind, int(ids.size)
        self._hidden = 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids; ValueError on bad shape, non-finite or reused ids."""
        id_arr = _as_ids(ids)
        vec_arr = _as_vectors(vectors, self._dim, "vectors")
        if vec_arr.shape[0] != id_arr.shape[0]:
            raise ValueError(f"{id_arr.shape[0]} ids for {vec_arr.shape[0]} vectors")
        if id_arr.size == 0:
            return
        if (id_arr < 0).any():
            raise ValueError("ids must be non-negative (-1 marks padding in search results)")
        if np.unique(id_arr).size != id_arr.size:
            raise ValueError("duplicate ids within the batch")
        existing = self.ids()
        present = id_arr[np.isin(id_arr, existing)]
        if present.size:
            raise ValueError(f"ids already present: {present[:10].tolist()}")
        total = len(self) + id_arr.size
        kind: IndexKind = (
            self._kind
            if self._type == "auto" and self._kind != "flat"
            else choose_kind(self._type, total)
        )
        # A new structure when the size calls for another kind, or when an approximate one
        # was trained on too few vectors (its lists or quantiser ranges would not fit).
        if kind != self._kind or (kind != "flat" and total > 4 * max(self._trained_on, 1)):
            self._rebuild(
                kind,
                np.concatenate([existing, id_arr]),
                np.concatenate([self.vectors(existing), vec_arr]),
            )
            return
        self._index.add_with_ids(vec_arr, id_arr)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones ignored); returns how many were removed."""
        id_arr = _as_ids(ids)
        if id_arr.size == 0 or len(self) == 0:
            return 0
        if self._kind == "hnsw":  # a graph cannot drop nodes: hide them, rebuild when many
            labels = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            gone = np.isin(labels, id_arr) & (labels != HIDDEN)
            removed = int(gone.sum())
            if not removed:
                return 0
            labels[gone] = HIDDEN
            self._hidden += removed
            if self._hidden > HNSW_MAX_HIDDEN * int(self._index.ntotal):
                keep = labels[labels != HIDDEN]
                self._hidden = 0  # so that vectors() reads the live positions only
                self._rebuild("hnsw", keep, self.vectors(keep))
            else:
                faiss.copy_array_to_vector(labels, self._index.id_map)
                self._index.construct_rev_map()
            return removed
        if self._kind == "ivf":  # the hashtable direct map needs an array selector
            selector = faiss.IDSelectorArray(id_arr.size, faiss.swig_ptr(id_arr))
            return int(self._index.remove_ids(selector))
        return int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))

    def _search_subset(
        self, q: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of ``q`` against the stored vectors of the ``allowed`` ids."""
        present = allowed[np.isin(allowed, self.ids())]
        dist = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        found = np.full((q.shape[0], k), -1, dtype=np.int64)
        if present.size == 0:
            return dist, found
        scores = q @ self.vectors(present).T
        take = min(k, present.size)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :take]
        dist[:, :take] = np.take_along_axis(scores, top, axis=1)
        found[:, :take] = present[top]
        return dist, found

    def _faiss_search(self, q: np.ndarray, k: int, params: Any) -> tuple[Any, Any]:
        """FAISS search, on one OpenMP thread for a few queries (see SINGLE_THREAD_BELOW).
        The OpenMP thread count is per calling thread, and restored afterwards."""
        if q.shape[0] >= SINGLE_THREAD_BELOW:
            return self._index.search(q, k, params=params)
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._index.search(q, k, params=params)
        finally:
            faiss.omp_set_num_threads(previous)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product, best first, padded with (-inf, -1). Exact for
        ``flat`` (and for filters of at most :data:`EXACT_FILTER_MAX` ids)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        k = int(k)
        q = _as_vectors(queries, self._dim, "queries")
        m = q.shape[0]
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        labels = np.full((m, k), -1, dtype=np.int64)
        if m == 0 or len(self) == 0:
            return scores, labels
        if allowed is None:
            params: Any = None
            if self._kind == "hnsw":
                params = _faiss.SearchParametersHNSW()
                params.efSearch = hnsw_ef_search(len(self))
            if self._hidden:  # skip removed HNSW nodes
                hidden = faiss.IDSelectorRange(HIDDEN, HIDDEN + 1)
                not_hidden = faiss.IDSelectorNot(hidden)
                params.sel = not_hidden  # both selectors outlive the search (locals)
            dist, found = self._faiss_search(q, k, params)
        else:
            allowed_arr = _as_ids(allowed, "allowed")
            if allowed_arr.size == 0:
                return scores, labels
            if self._kind != "flat" and allowed_arr.size <= EXACT_FILTER_MAX:
                dist, found = self._search_subset(q, k, np.unique(allowed_arr))
            else:
                selector = faiss.IDSelectorBatch(allowed_arr)
                if self._kind == "ivf":
                    params = faiss.SearchParametersIVF()
                    params.nprobe = self._index.nprobe
                elif self._kind == "hnsw":
                    params = _faiss.SearchParametersHNSW()
                    params.efSearch = hnsw_ef_search(len(self))
                else:
                    params = faiss.SearchParameters()
                params.sel = selector  # the selector must outlive the search: kept by `selector`
                dist, found = self._faiss_search(q, k, params)
        found = np.asarray(found, dtype=np.int64)
        valid = found >= 0
        labels[valid] = found[valid]
        scores[valid] = np.asarray(dist, dtype=np.float32)[valid]
        return scores, labels

    def copy(self, index_type: IndexType | None = None) -> FaissIndex:
        """An independent copy (``faiss.clone_index``: one copy of the data, where
        ``from_bytes(to_bytes())`` makes three), growing by ``index_type`` (default: this
        one's)."""
        try:
            raw: Any = faiss.clone_index(self._index)
        except RuntimeError:  # a structure clone_index does not know: round-trip it
            return FaissIndex.from_bytes(self.to_bytes(), index_type or self._type)
        if self._kind == "ivf" and raw.direct_map.type != _faiss.DirectMap.Hashtable:
            raw.set_direct_map_type(_faiss.DirectMap.Hashtable)
        obj = FaissIndex.__new__(FaissIndex)
        obj._dim, obj._index, obj._kind = self._dim, raw, self._kind
        obj._type = index_type or self._type
        obj._trained_on, obj._hidden = self._trained_on, self._hidden
        return obj

    def to_bytes(self) -> bytes:
        """Serialise with ``faiss.serialize_index``."""
        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, index_type: IndexType = "auto") -> FaissIndex:
        """Inverse of :meth:`to_bytes`; ValueError if ``data`` is not such an index.
        ``index_type`` governs later growth, as in the constructor."""
        try:
            raw: Any = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except (RuntimeError, MemoryError) as exc:
            raise ValueError(f"cannot deserialise FAISS index: {exc}") from exc
        kind = _kind_of(raw)
        if raw.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("expected an inner-product FAISS index")
        if kind == "ivf" and raw.direct_map.type != _faiss.DirectMap.Hashtable:
            raw.set_direct_map_type(_faiss.DirectMap.Hashtable)
        obj = cls.__new__(cls)
        obj._dim = int(raw.d)
        obj._index = raw
        obj._kind = kind
        obj._type = index_type
        obj._trained_on = int(raw.ntotal)
        obj._hidden = 0
        if kind == "hnsw":
            obj._hidden = int((faiss.vector_to_array(raw.id_map) == HIDDEN).sum())
        return obj
