"""Atomic, checksummed, generational persistence of the index, described by a manifest.

Layout::

    index_dir/CURRENT                  name of the live generation, e.g. "gen-000007"
    index_dir/gen-000007/manifest.json
    index_dir/gen-000007/manifest.sha256   sha256 of manifest.json (hex), so that it is checked too
    index_dir/gen-000007/vectors.faiss     FaissIndex.to_bytes()
    index_dir/gen-000007/chunks.jsonl      one Chunk per line
    index_dir/gen-000007/documents.jsonl   one Document per line
    index_dir/gen-000007/sentences.npy     float32 (n_sentences, dim), chunk then sentence order
    index_dir/gen-000007/deltas/delta-000008   one document written since (see below)
    index_dir/gen-000007/deltas/delta-000009   ...: the live generation is then 9

A generation is written into ``gen-NNNNNN.tmp-<random>/``, fsynced, renamed into place, and
only then made live by atomically replacing ``CURRENT``; a crash at any point leaves the
previous generation live and loadable. After a save the live generation and the one that was
live before it are kept; older generations and stray ``*.tmp-*`` directories are deleted.
Writers must be serialised by the caller.

**Deltas: a write costs what its article costs.** Adding, replacing or removing one document
does not rewrite the generation: :func:`append_delta` writes one checksummed file holding that
document, its chunks and their vectors (or the removal) into the live generation's
``deltas/`` folder, fsynced and renamed into place, so it exists whole or not at all. Its
number is the new live generation. :func:`load_snapshot` loads the base and applies its
deltas in order; :func:`load_newer` applies only the deltas a loaded version has not seen.
When the deltas grow past a quarter of the base (or :data:`COMPACT_MAX_DELTAS` files),
:func:`compaction_due` says so and the caller merges them (:func:`save_snapshot` with the
live generation's number: the content is the same, so readers do not reload). A damaged
delta ends the chain there (with a warning, as a damaged generation falls back to the one
before); the next write then saves a whole generation, so nothing after the damage is lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.errors import IndexCorrupt, IndexMismatch, IndexNotFound, RagError
from core.types import Chunk, Document, DocumentMeta, Span, Voice, sha256_text
from index.store import FaissIndex, IndexType, chunk_key

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
VECTORS = "vectors.faiss"
CHUNKS = "chunks.jsonl"
DOCUMENTS = "documents.jsonl"
SENTENCES = "sentences.npy"
DATA_FILES = (VECTORS, CHUNKS, DOCUMENTS, SENTENCES)
REBUILD_HINT = "rebuild it with `rag index --rebuild`"

DELTAS = "deltas"
DELTA_FORMAT = 1
#: Merge the deltas into a new generation when they reach this many files, or a quarter of
#: the base's bytes (:func:`compaction_due`): loads stay fast and a merge costs O(corpus)
#: only once per O(corpus) bytes written.
COMPACT_MAX_DELTAS = 64
COMPACT_RATIO = 0.25

_GEN_RE = re.compile(r"gen-(\d{6,})")
_TMP_RE = re.compile(r"gen-\d{6,}\.tmp-.*")
_DELTA_RE = re.compile(r"delta-(\d{6,})")


@dataclass(frozen=True)
class Manifest:
    """What a generation contains and how it was built."""

    format_version: int
    generation: int
    model: str
    dimension: int
    chunker_version: str
    faiss_version: str
    documents: dict[str, str]  # doc_id -> sha256 of its text
    counts: dict[str, int]  # documents, chunks, vectors, sentences
    files: dict[str, str]  # file name -> sha256 of its bytes
    created: str  # UTC ISO-8601
    extra: dict[str, str]
    #: The FAISS structure: flat, ivf or hnsw (index/store.py); absent in older manifests.
    index_type: str = "flat"


@dataclass(frozen=True)
class IndexSnapshot:
    """One loaded, verified generation."""

    manifest: Manifest
    index: FaissIndex
    chunks: tuple[Chunk, ...]
    documents: tuple[Document, ...]
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class Expectation:
    """What the current settings require of a persisted index."""

    model: str
    dimension: int
    chunker_version: str


# --------------------------------------------------------------------------- manifest checks


def setting_differences(
    model: str, dimension: int, chunker_version: str, expect: Expectation
) -> list[str]:
    """What an index built with these settings differs in from ``expect``, one line each."""
    pairs: list[tuple[str, object, object]] = [
        ("model", model, expect.model),
        ("dimension", dimension, expect.dimension),
        ("chunker version", chunker_version, expect.chunker_version),
    ]
    return [
        f"{name}: built with {built!r}, settings ask for {wanted!r}"
        for name, built, wanted in pairs
        if built != wanted
    ]


def check_manifest(manifest: Manifest, expect: Expectation) -> None:
    """Raise IndexMismatch naming every setting the index was built with that differs."""
    diffs = setting_differences(
        manifest.model, manifest.dimension, manifest.chunker_version, expect
    )
    if manifest.faiss_version != faiss.__version__:
        diffs.append(
            f"FAISS version: built with {manifest.faiss_version!r}, "
            f"installed is {faiss.__version__!r}"
        )
    if diffs:
        raise IndexMismatch(
            f"the index (generation {manifest.generation}) does not match the current "
            f"settings ({'; '.join(diffs)}); {REBUILD_HINT}"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _nonneg_int(value: object) -> bool:
    return _is_int(value) and isinstance(value, int) and value >= 0


def _str_dict(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def manifest_from_dict(data: object) -> Manifest:
    """Validate a parsed manifest.json; ValueError on a wrong shape or type."""
    if not isinstance(data, dict):
        raise ValueError("manifest is not a JSON object")
    version = data.get("format_version")
    if not _is_int(version):
        raise ValueError("manifest field 'format_version' is missing or not an int")
    if version != FORMAT_VERSION:
        raise IndexMismatch(
            f"index format version {version} is not the supported {FORMAT_VERSION}; {REBUILD_HINT}"
        )
    checks: dict[str, Callable[[object], bool]] = {
        "generation": _nonneg_int,
        "model": lambda v: isinstance(v, str),
        "dimension": lambda v: _nonneg_int(v) and v != 0,
        "chunker_version": lambda v: isinstance(v, str),
        "faiss_version": lambda v: isinstance(v, str),
        "documents": _str_dict,
        "counts": lambda v: (
            isinstance(v, dict) and all(isinstance(k, str) and _is_int(n) for k, n in v.items())
        ),
        "files": _str_dict,
        "created": lambda v: isinstance(v, str),
        "extra": _str_dict,
    }
    if "index_type" in data and not isinstance(data["index_type"], str):
        raise ValueError("manifest field 'index_type' has the wrong type")
    for name, ok in checks.items():
        if name not in data:
            raise ValueError(f"manifest lacks field {name!r}")
        if not ok(data[name]):
            raise ValueError(f"manifest field {name!r} has the wrong type")
    return Manifest(**{f.name: data[f.name] for f in fields(Manifest) if f.name in data})


def manifest_to_bytes(manifest: Manifest) -> bytes:
    """manifest.json content: sorted keys, UTF-8."""
    text = json.dumps(asdict(manifest), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# --------------------------------------------------------------------------- (de)serialisation


def _json_line(obj: object) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n").encode(
        "utf-8"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _parse_json(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _jsonl_records(data: bytes) -> list[Any]:
    """Parse JSONL bytes, splitting on ``\\n`` only (never str.splitlines)."""
    text = data.decode("utf-8")
    if not text:
        return []
    if not text.endswith("\n"):
        raise ValueError("last line is not terminated")
    return [_parse_json(line) for line in text[:-1].split("\n")]


def documents_to_bytes(documents: Iterable[Document]) -> bytes:
    return b"".join(
        _json_line({"id": d.id, "text": d.text, "sha256": d.sha256, "meta": asdict(d.meta)})
        for d in documents
    )


def chunks_to_bytes(chunks: Iterable[Chunk]) -> bytes:
    return b"".join(
        _json_line(
            {
                "id": c.id,
                "doc_id": c.doc_id,
                "paragraph": c.paragraph,
                "part": c.part,
                "start": c.start,
                "end": c.end,
                "text": c.text,
                "sentences": [[s.start, s.end] for s in c.sentences],
                **({"voices": [voice_to_json(v) for v in c.voices]} if c.voices else {}),
            }
        )
        for c in chunks
    )


def voice_to_json(v: Voice) -> dict[str, Any]:
    """A sentence's voice as stored: ``{"voice": "author"}``, or the reported speaker's name,
    mention and content spans, aliases, kind and whether a pronoun was resolved."""
    if v.voice == "author":
        return {"voice": "author"}
    return {
        "voice": "reported",
        "speaker": v.speaker,
        "mention": None if v.mention is None else [v.mention.start, v.mention.end],
        "content": None if v.content is None else [v.content.start, v.content.end],
        "aliases": list(v.aliases),
        "kind": v.kind,
        "resolved": v.resolved,
    }


def voice_from_json(value: object) -> Voice:
    """Inverse of :func:`voice_to_json`; ValueError on malformed content."""
    if not isinstance(value, dict) or value.get("voice") not in ("author", "reported"):
        raise ValueError("a voice must be an object with voice 'author' or 'reported'")
    if value["voice"] == "author":
        return Voice("author")
    aliases = value.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValueError("a voice's aliases must be strings")
    resolved = value.get("resolved", True)
    if not isinstance(resolved, bool):
        raise ValueError("a voice's resolved must be true or false")
    mention, content = value.get("mention"), value.get("content")
    return Voice(
        "reported",
        _field(value, "speaker", str),
        None if mention is None else _span(mention),
        None if content is None else _span(content),
        tuple(aliases),
        _field(value, "kind", str),
        resolved,
    )


def _field(record: Mapping[str, Any], name: str, kind: type) -> Any:
    value = record.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {name!r} is missing or not {kind.__name__}")
    return value


_META_FIELDS = frozenset(f.name for f in fields(DocumentMeta))


def documents_from_bytes(data: bytes) -> tuple[Document, ...]:
    """Inverse of :func:`documents_to_bytes`; ValueError on malformed content."""
    out = []
    for n, rec in enumerate(_jsonl_records(data), 1):
        if not isinstance(rec, dict):
            raise ValueError(f"line {n} is not a JSON object")
        try:
            meta = _field(rec, "meta", dict)
            # Unknown meta keys are ignored: metadata is descriptive and may gain/lose fields.
            kept = {k: v for k, v in meta.items() if k in _META_FIELDS}
            if not all(isinstance(v, str) for v in kept.values()):
                raise ValueError("meta values must be strings")
            out.append(
                Document(
                    id=_field(rec, "id", str),
                    text=_field(rec, "text", str),
                    meta=DocumentMeta(**kept),
                    sha256=_field(rec, "sha256", str),
                )
            )
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}") from exc
    return tuple(out)


def _span(value: object) -> Span:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError("a sentence must be [start, end]")
    return Span(value[0], value[1])


def chunks_from_bytes(data: bytes) -> tuple[Chunk, ...]:
    """Inverse of :func:`chunks_to_bytes`; ValueError on malformed content."""
    out = []
    for n, rec in enumerate(_jsonl_records(data), 1):
        if not isinstance(rec, dict):
            raise ValueError(f"line {n} is not a JSON object")
        try:
            out.append(
                Chunk(
                    id=_field(rec, "id", str),
                    doc_id=_field(rec, "doc_id", str),
                    paragraph=_field(rec, "paragraph", int),
                    part=_field(rec, "part", int),
                    start=_field(rec, "start", int),
                    end=_field(rec, "end", int),
                    text=_field(rec, "text", str),
                    sentences=tuple(_span(s) for s in _field(rec, "sentences", list)),
                    voices=tuple(voice_from_json(v) for v in rec.get("voices", [])),
                )
            )
            if out[-1].voices and len(out[-1].voices) != len(out[-1].sentences):
                raise ValueError("voices and sentences differ in number")
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}") from exc
    return tuple(out)


def array_to_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(data: bytes) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))


# --------------------------------------------------------------------------- consistency


def consistency_problem(
    *,
    dimension: int,
    index: FaissIndex,
    chunks: Sequence[Chunk],
    documents: Sequence[Document],
    sentence_vectors: np.ndarray,
) -> str | None:
    """The first inconsistency between the parts of a snapshot, or None."""
    if index.dim != dimension:
        return f"FAISS index dimension {index.dim} != {dimension}"
    sv = sentence_vectors
    if sv.dtype != np.float32 or sv.ndim != 2 or sv.shape[1] != dimension:
        return f"sentence vectors must be float32 (n, {dimension}), got {sv.dtype} {sv.shape}"
    docs = {d.id: d for d in documents}
    if len(docs) != len(documents):
        return "duplicate document ids"
    if len({c.id for c in chunks}) != len(chunks):
        return "duplicate chunk ids"
    try:
        keys = {chunk_key(c.id) for c in chunks}
    except ValueError as exc:
        return str(exc)
    if len(keys) != len(chunks):
        return "two chunk ids map to the same FAISS key"
    if len(index) != len(chunks):
        return f"{len(index)} vectors for {len(chunks)} chunks"
    if not keys.issuperset(index.ids().tolist()):
        return "the FAISS index holds ids of no chunk"
    n_sentences = sum(len(c.sentences) for c in chunks)
    if sv.shape[0] != n_sentences:
        return f"{sv.shape[0]} sentence vectors for {n_sentences} sentences"
    for c in chunks:
        doc = docs.get(c.doc_id)
        if doc is None:
            return f"chunk {c.id} names unknown document {c.doc_id!r}"
        if not 0 <= c.start <= c.end <= len(doc.text) or doc.text[c.start : c.end] != c.text:
            return f"chunk {c.id} text differs from {c.doc_id}[{c.start}:{c.end}]"
    return None


# --------------------------------------------------------------------------- file system


def _gen_name(generation: int) -> str:
    return f"gen-{generation:06d}"


def _gen_number(name: str) -> int | None:
    m = _GEN_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read_current(index_dir: Path) -> str | None:
    """The live generation's name; None if there is no CURRENT; IndexCorrupt if invalid."""
    path = index_dir / CURRENT
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorrupt(f"cannot read {path}: {exc}") from exc
    try:
        name = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        name = ""
    if _gen_number(name) is None:
        raise IndexCorrupt(f"{path} does not name a generation: {raw[:40]!r}")
    return name


def _generations(index_dir: Path) -> dict[int, Path]:
    """Finished generation directories by number."""
    out: dict[int, Path] = {}
    for p in index_dir.iterdir():
        n = _gen_number(p.name)
        if n is not None and p.is_dir():
            out[n] = p
    return out


def _delta_numbers(gen_dir: Path) -> list[int]:
    """The numbers of the finished delta files of a generation, ascending."""
    try:
        names = [p.name for p in (gen_dir / DELTAS).iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(m.group(1)) for n in names if (m := _DELTA_RE.fullmatch(n)))


def _newest_number(index_dir: Path) -> int:
    """The highest generation number used on disk: generations, CURRENT and deltas."""
    numbers = set(_generations(index_dir))
    current = _read_current_lenient(index_dir)
    if current is not None:
        numbers.add(_gen_number(current) or 0)
    for n in list(numbers):
        numbers.update(_delta_numbers(index_dir / _gen_name(n)))
    return max(numbers, default=0)


def next_generation(index_dir: Path) -> int:
    """The number the next write (a delta or a whole generation) will get."""
    return _newest_number(Path(index_dir)) + 1 if Path(index_dir).is_dir() else 1


def _live_name(index_dir: Path) -> str:
    name = _read_current(index_dir)
    if name is None:
        raise IndexNotFound(f"no index at {index_dir}; build it with `rag index`")
    return name


def _prune(index_dir: Path, keep: set[str]) -> None:
    """Delete generations not in ``keep`` and stray temporary files; never fails."""
    for p in index_dir.iterdir():
        old_gen = _gen_number(p.name) is not None and p.name not in keep
        stale = old_gen or _TMP_RE.fullmatch(p.name) is not None
        if stale and p.is_dir():
            try:
                shutil.rmtree(p)
            except OSError as exc:
                logger.warning("could not delete old index generation %s: %s", p, exc)
    remove_strays(index_dir)


def find_strays(index_dir: Path) -> list[Path]:
    """The temporary files and folders of interrupted writes (or of one in progress)."""
    index_dir = Path(index_dir)
    found: list[Path] = []
    if not index_dir.is_dir():
        return found
    for p in index_dir.iterdir():
        if _TMP_RE.fullmatch(p.name) or p.name == f"{CURRENT}.tmp":
            found.append(p)
        elif _gen_number(p.name) is not None and (p / DELTAS).is_dir():
            found.extend(q for q in (p / DELTAS).iterdir() if ".tmp-" in q.name)
    return found


def remove_strays(index_dir: Path) -> list[Path]:
    """Delete what an interrupted write leaves behind: ``gen-*.tmp-*`` folders, a
    ``CURRENT.tmp`` and ``delta-*.tmp-*`` files. Only under the exclusive writer lock (a
    writer in progress owns its temporary files). Returns what was deleted; never fails."""
    found = find_strays(index_dir)
    for p in found:
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not delete %s left by an interrupted write: %s", p, exc)
    return found


# --------------------------------------------------------------------------- save


def save_snapshot(
    index_dir: Path,
    *,
    model: str,
    dimension: int,
    chunker_version: str,
    index: FaissIndex,
    chunks: Sequence[Chunk],
    documents: Sequence[Document],
    sentence_vectors: np.ndarray,
    extra: Mapping[str, str] | None = None,
    generation: int | None = None,
) -> Manifest:
    """Write a new generation atomically, make it live, prune old ones; return its manifest.

    Its number is one past every generation and delta on disk, unless ``generation`` names
    the live one (a merge of the live generation's deltas: the same content, so readers that
    have it need not reload). Raises ValueError if the parts are inconsistent (nothing is
    written then).
    """
    index_dir = Path(index_dir)
    sv = np.ascontiguousarray(sentence_vectors, dtype=np.float32)
    problem = consistency_problem(
        dimension=dimension, index=index, chunks=chunks, documents=documents, sentence_vectors=sv
    )
    if problem is not None:
        raise ValueError(f"refusing to save an inconsistent index: {problem}")
    if not np.isfinite(sv).all():
        raise ValueError("sentence vectors contain non-finite values")

    payload = {
        VECTORS: index.to_bytes(),
        CHUNKS: chunks_to_bytes(chunks),
        DOCUMENTS: documents_to_bytes(documents),
        SENTENCES: array_to_bytes(sv),
    }
    if not index_dir.is_dir():
        index_dir.mkdir(parents=True)
        _fsync_dir(index_dir.parent)
    previous = _read_current_lenient(index_dir)
    existing = _generations(index_dir)
    if previous is None and existing:  # CURRENT missing or unreadable: keep the newest
        previous = existing[max(existing)].name
    newest = _newest_number(index_dir)
    if generation is None:
        generation = newest + 1
    elif generation in existing or generation != newest:
        raise ValueError(f"generation {generation} is not the live one ({newest}) to merge")
    name = _gen_name(generation)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        generation=generation,
        model=model,
        dimension=dimension,
        chunker_version=chunker_version,
        faiss_version=faiss.__version__,
        documents={d.id: sha256_text(d.text) for d in documents},
        counts={
            "documents": len(documents),
            "chunks": len(chunks),
            "vectors": len(index),
            "sentences": int(sv.shape[0]),
        },
        files={fname: hashlib.sha256(data).hexdigest() for fname, data in payload.items()},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        extra=dict(extra or {}),
        index_type=index.kind,
    )

    tmp = index_dir / f"{name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for fname, data in payload.items():
            _write_durable(tmp / fname, data)
        manifest_bytes = manifest_to_bytes(manifest)
        _write_durable(tmp / MANIFEST, manifest_bytes)
        _write_durable(tmp / MANIFEST_SUM, _sum_line(manifest_bytes))
        _fsync_dir(tmp)
        os.rename(tmp, index_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(index_dir)

    current_tmp = index_dir / f"{CURRENT}.tmp"
    try:
        _write_durable(current_tmp, (name + "\n").encode("ascii"))
    except BaseException:
        # e.g. a full disk: the new generation never became live; do not leave it (or a
        # partial CURRENT.tmp) taking the space the next write needs.
        current_tmp.unlink(missing_ok=True)
        shutil.rmtree(index_dir / name, ignore_errors=True)
        raise
    os.replace(current_tmp, index_dir / CURRENT)
    _fsync_dir(index_dir)

    _prune(index_dir, keep={name} | ({previous} if previous else set()))
    return manifest


def _read_current_lenient(index_dir: Path) -> str | None:
    """CURRENT's generation name, or None if it is missing or invalid."""
    try:
        return _read_current(index_dir)
    except IndexCorrupt:
        return None


# --------------------------------------------------------------------------- load


def _sum_line(data: bytes) -> bytes:
    return (hashlib.sha256(data).hexdigest() + "\n").encode("ascii")


def _read_manifest_file(gen_dir: Path) -> Manifest:
    path = gen_dir / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IndexCorrupt(f"cannot read {path}: {exc}") from exc
    # A damaged manifest must read as corrupt (and fall back), not as an index built with
    # other settings. Generations written before manifest.sha256 existed have none.
    sum_path = gen_dir / MANIFEST_SUM
    try:
        expected = sum_path.read_bytes()
    except FileNotFoundError:
        expected = None
    except OSError as exc:
        raise IndexCorrupt(f"cannot read {sum_path}: {exc}") from exc
    if expected is not None and expected != _sum_line(data):
        raise IndexCorrupt(f"{path} fails its checksum ({MANIFEST_SUM})")
    try:
        manifest = manifest_from_dict(_parse_json(data.decode("utf-8")))
    except (ValueError, RecursionError) as exc:
        raise IndexCorrupt(f"{path} is invalid: {exc}") from exc
    if manifest.generation != _gen_number(gen_dir.name):
        raise IndexCorrupt(f"{path} says generation {manifest.generation}")
    return manifest


def read_manifest(index_dir: Path) -> Manifest:
    """The live generation's manifest (reads only CURRENT and manifest.json; no fallback)."""
    index_dir = Path(index_dir)
    return _read_manifest_file(index_dir / _live_name(index_dir))


def _read_verified(gen_dir: Path, manifest: Manifest) -> dict[str, bytes]:
    if set(manifest.files) != set(DATA_FILES):
        raise IndexCorrupt(f"{gen_dir / MANIFEST} lists files {sorted(manifest.files)}")
    out = {}
    for fname in DATA_FILES:
        path = gen_dir / fname
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IndexCorrupt(f"cannot read {path}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != manifest.files[fname]:
            raise IndexCorrupt(f"{path} fails its checksum")
        out[fname] = data
    return out


def _load_generation(gen_dir: Path, expect: Expectation | None) -> IndexSnapshot:
    manifest = _read_manifest_file(gen_dir)
    if expect is not None:
        check_manifest(manifest, expect)
    raw = _read_verified(gen_dir, manifest)

    parsers: list[tuple[str, Callable[[bytes], Any]]] = [
        (VECTORS, FaissIndex.from_bytes),
        (CHUNKS, chunks_from_bytes),
        (DOCUMENTS, documents_from_bytes),
        (SENTENCES, array_from_bytes),
    ]
    parsed: dict[str, Any] = {}
    for fname, parse in parsers:
        try:
            parsed[fname] = parse(raw[fname])
        except (ValueError, TypeError, OSError, RecursionError) as exc:
            raise IndexCorrupt(f"{gen_dir / fname} cannot be parsed: {exc}") from exc
    index: FaissIndex = parsed[VECTORS]
    chunks: tuple[Chunk, ...] = parsed[CHUNKS]
    documents: tuple[Document, ...] = parsed[DOCUMENTS]
    sentence_vectors: np.ndarray = parsed[SENTENCES]
    sentence_vectors.flags.writeable = False

    problem = consistency_problem(
        dimension=manifest.dimension,
        index=index,
        chunks=chunks,
        documents=documents,
        sentence_vectors=sentence_vectors,
    )
    if problem is None and manifest.documents != {d.id: sha256_text(d.text) for d in documents}:
        problem = "documents differ from the manifest"
    counts = {
        "documents": len(documents),
        "chunks": len(chunks),
        "vectors": len(index),
        "sentences": int(sentence_vectors.shape[0]),
    }
    if problem is None and manifest.counts != counts:
        problem = f"counts {counts} differ from the manifest's {manifest.counts}"
    if problem is not None:
        raise IndexCorrupt(f"{gen_dir}: {problem}")
    return IndexSnapshot(manifest, index, chunks, documents, sentence_vectors)


def _load_with_deltas(gen_dir: Path, expect: Expectation | None) -> IndexSnapshot:
    snapshot = _load_generation(gen_dir, expect)
    deltas = _read_deltas(gen_dir, snapshot.manifest, snapshot.manifest.generation)
    try:
        return apply_deltas(snapshot, deltas, index_type=snapshot.index.index_type)
    except ValueError as exc:
        raise IndexCorrupt(f"{gen_dir / DELTAS}: {exc}") from exc


def load_snapshot(index_dir: Path, expect: Expectation | None = None) -> IndexSnapshot:
    """Load and verify the live generation (its base and deltas), falling back to the
    previous base (and its deltas) if the live base is corrupt.

    Raises IndexNotFound (no CURRENT), IndexMismatch (``expect`` differs; checked before the
    big files are read) or IndexCorrupt (live generation corrupt and no intact previous one).
    """
    index_dir = Path(index_dir)
    live = _live_name(index_dir)
    try:
        return _load_with_deltas(index_dir / live, expect)
    except IndexCorrupt as live_error:
        live_number = _gen_number(live) or 0
        older = [n for n in _generations(index_dir) if n < live_number]
        if not older:
            raise
        fallback = index_dir / _gen_name(max(older))
        try:
            snapshot = _load_with_deltas(fallback, expect)
        except (IndexCorrupt, IndexMismatch) as exc:
            raise IndexCorrupt(
                f"{live_error}; the previous generation {fallback.name} is unusable too: {exc}"
            ) from live_error
        logger.warning(
            "index generation %s is corrupt (%s); falling back to previous generation %s",
            live,
            live_error,
            fallback.name,
        )
        return snapshot


# --------------------------------------------------------------------------- deltas


@dataclass(frozen=True)
class Delta:
    """One document written since the base generation: its new version (``document`` with
    its chunks and their vectors), or its removal (``document`` None, nothing else)."""

    generation: int
    doc_id: str
    document: Document | None
    chunks: tuple[Chunk, ...]
    chunk_vectors: np.ndarray  # float32 (len(chunks), dim)
    sentence_vectors: np.ndarray  # float32 (sentences of the chunks, dim), in chunk order


def _delta_name(generation: int) -> str:
    return f"delta-{generation:06d}"


def delta_to_bytes(delta: Delta, *, base: int) -> bytes:
    """A delta file: the sha256 of the rest, a JSON header, then its four sections."""
    sections = [
        documents_to_bytes([delta.document] if delta.document is not None else []),
        chunks_to_bytes(delta.chunks),
        array_to_bytes(np.ascontiguousarray(delta.chunk_vectors, dtype=np.float32)),
        array_to_bytes(np.ascontiguousarray(delta.sentence_vectors, dtype=np.float32)),
    ]
    header = _json_line(
        {
            "format": DELTA_FORMAT,
            "generation": delta.generation,
            "base": base,
            "doc_id": delta.doc_id,
            "sizes": [len(x) for x in sections],
        }
    )
    body = header + b"".join(sections)
    return _sum_line(body) + body


def delta_from_bytes(data: bytes, *, dimension: int) -> tuple[Delta, int]:
    """Inverse of :func:`delta_to_bytes`: the delta and its base generation; ValueError if
    the bytes are damaged or inconsistent."""
    head, sep, body = data.partition(b"\n")
    if not sep or head + b"\n" != _sum_line(body):
        raise ValueError("fails its checksum")
    header_line, sep, rest = body.partition(b"\n")
    header = _parse_json(header_line.decode("utf-8"))
    if not isinstance(header, dict) or header.get("format") != DELTA_FORMAT:
        raise ValueError("unknown delta format")
    sizes = header.get("sizes")
    if not (isinstance(sizes, list) and len(sizes) == 4 and all(map(_nonneg_int, sizes))):
        raise ValueError("bad section sizes")
    if sum(sizes) != len(rest):
        raise ValueError("sections do not add up to the file")
    parts, offset = [], 0
    for size in sizes:
        parts.append(rest[offset : offset + size])
        offset += size
    documents = documents_from_bytes(parts[0])
    chunks = chunks_from_bytes(parts[1])
    chunk_vectors, sentence_vectors = array_from_bytes(parts[2]), array_from_bytes(parts[3])
    generation, doc_id, base = header.get("generation"), header.get("doc_id"), header.get("base")
    if not (isinstance(generation, int) and isinstance(base, int) and isinstance(doc_id, str)):
        raise ValueError("bad header")
    document = documents[0] if documents else None
    problem = None
    if len(documents) > 1 or (document is not None and document.id != doc_id):
        problem = "documents differ from the header"
    elif document is None and (chunks or len(chunk_vectors) or len(sentence_vectors)):
        problem = "a removal carries chunks"
    elif any(c.doc_id != doc_id for c in chunks):
        problem = "chunks of another document"
    elif document is not None and any(document.text[c.start : c.end] != c.text for c in chunks):
        problem = "chunk text differs from the document"
    else:
        for name, array, rows in [
            ("chunk", chunk_vectors, len(chunks)),
            ("sentence", sentence_vectors, sum(len(c.sentences) for c in chunks)),
        ]:
            if array.dtype != np.float32 or array.shape != (rows, dimension):
                problem = (
                    f"{name} vectors {array.dtype} {array.shape}, expected ({rows}, {dimension})"
                )
            elif not np.isfinite(array).all():
                problem = f"{name} vectors contain non-finite values"
    if problem is not None:
        raise ValueError(problem)
    delta = Delta(generation, doc_id, document, chunks, chunk_vectors, sentence_vectors)
    return delta, base


def append_delta(index_dir: Path, delta: Delta) -> Manifest:
    """Persist ``delta`` as the next generation on top of the live one (caller holds the
    writer lock): written to a temporary file, fsynced, renamed into place. Its number must
    be the next one. Returns the base generation's manifest."""
    index_dir = Path(index_dir)
    live = _live_name(index_dir)
    base = _read_manifest_file(index_dir / live)
    expected = _newest_number(index_dir) + 1
    if delta.generation != expected:
        raise ValueError(f"delta {delta.generation} is not the next generation ({expected})")
    folder = index_dir / live / DELTAS
    if not folder.is_dir():
        folder.mkdir()
        _fsync_dir(index_dir / live)
    data = delta_to_bytes(delta, base=base.generation)
    name = _delta_name(delta.generation)
    tmp = folder / f"{name}.tmp-{secrets.token_hex(4)}"
    try:
        _write_durable(tmp, data)
        os.rename(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return base


def _doc_ranges(chunks: Sequence[Chunk]) -> dict[str, tuple[int, int, int, int]]:
    """Each document's chunk rows and sentence-vector rows, ``(c0, c1, s0, s1)``. The chunks of
    one document are contiguous in every saved generation (documents in order, then their
    chunks); ValueError if they are not."""
    out: dict[str, list[int]] = {}
    row = 0
    last = None
    for i, chunk in enumerate(chunks):
        n = len(chunk.sentences)
        if chunk.doc_id != last:
            if chunk.doc_id in out:
                raise ValueError(f"the chunks of {chunk.doc_id!r} are not contiguous")
            out[chunk.doc_id] = [i, i, row, row]
            last = chunk.doc_id
        entry = out[chunk.doc_id]
        entry[1], entry[3] = i + 1, row + n
        row += n
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


def apply_deltas(
    snapshot: IndexSnapshot, deltas: Sequence[Delta], *, index_type: IndexType = "auto"
) -> IndexSnapshot:
    """The snapshot with ``deltas`` applied in order, as a new snapshot (``snapshot`` is never
    modified: a live service may be searching it). A written document goes to the end of the
    corpus order, as a whole-generation write puts it."""
    if not deltas:
        return snapshot
    index = snapshot.index.copy(index_type)
    documents = {d.id: d for d in snapshot.documents}
    chunks = list(snapshot.chunks)
    vectors = snapshot.sentence_vectors
    generation = snapshot.manifest.generation
    for delta in deltas:
        if delta.generation != generation + 1:
            raise ValueError(f"delta {delta.generation} does not follow generation {generation}")
        generation = delta.generation
        span = _doc_ranges(chunks).get(delta.doc_id)
        pieces = [vectors]
        if span is not None:
            c0, c1, s0, s1 = span
            index.remove(np.array([chunk_key(c.id) for c in chunks[c0:c1]], dtype=np.int64))
            del chunks[c0:c1]
            pieces = [vectors[:s0], vectors[s1:]]
        documents.pop(delta.doc_id, None)
        if delta.document is not None:
            documents[delta.doc_id] = delta.document
            if delta.chunks:
                keys = np.array([chunk_key(c.id) for c in delta.chunks], dtype=np.int64)
                index.add(keys, delta.chunk_vectors)
                chunks.extend(delta.chunks)
                pieces.append(delta.sentence_vectors)
        if len(pieces) > 1:  # one copy of the sentence vectors per delta
            vectors = np.concatenate(pieces)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors.flags.writeable = False
    docs = tuple(documents.values())
    manifest = replace(
        snapshot.manifest,
        generation=generation,
        documents={d.id: d.sha256 for d in docs},
        counts={
            "documents": len(docs),
            "chunks": len(chunks),
            "vectors": len(index),
            "sentences": int(vectors.shape[0]),
        },
    )
    return IndexSnapshot(manifest, index, tuple(chunks), docs, vectors)


def _read_deltas(gen_dir: Path, base: Manifest, after: int) -> list[Delta]:
    """The deltas of ``gen_dir`` numbered above ``after``, in order, up to the first gap or
    damaged file (logged: the chain ends there)."""
    out: list[Delta] = []
    expected = max(after, base.generation) + 1
    for number in _delta_numbers(gen_dir):
        if number <= after:
            continue
        path = gen_dir / DELTAS / _delta_name(number)
        try:
            if number != expected:
                raise ValueError(f"expected generation {expected} next")
            delta, delta_base = delta_from_bytes(path.read_bytes(), dimension=base.dimension)
            if delta_base != base.generation or delta.generation != number:
                raise ValueError("belongs to another generation")
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            logger.warning(
                "index delta %s is unusable (%s): serving generation %s", path, exc, expected - 1
            )
            break
        out.append(delta)
        expected += 1
    return out


def live_generation(index_dir: Path) -> int:
    """The live generation's number: its last delta's, or the base's (IndexNotFound,
    IndexCorrupt for a bad CURRENT). Reads CURRENT and lists one folder: cheap to poll."""
    index_dir = Path(index_dir)
    live = _live_name(index_dir)
    numbers = _delta_numbers(index_dir / live)
    return max(numbers) if numbers else _gen_number(live) or 0


def has_deltas(index_dir: Path) -> bool:
    """Whether the live generation has deltas."""
    try:
        return bool(_delta_numbers(Path(index_dir) / _live_name(Path(index_dir))))
    except RagError:
        return False


def compaction_due(index_dir: Path) -> bool:
    """True when the live generation's deltas should be merged (:data:`COMPACT_RATIO`,
    :data:`COMPACT_MAX_DELTAS`)."""
    index_dir = Path(index_dir)
    try:
        gen_dir = index_dir / _live_name(index_dir)
        numbers = _delta_numbers(gen_dir)
        if len(numbers) >= COMPACT_MAX_DELTAS:
            return True
        delta_bytes = sum((gen_dir / DELTAS / _delta_name(n)).stat().st_size for n in numbers)
        base_bytes = sum((gen_dir / f).stat().st_size for f in DATA_FILES)
    except (RagError, OSError):
        return False
    return bool(numbers) and delta_bytes >= COMPACT_RATIO * base_bytes


def load_newer(
    index_dir: Path, snapshot: IndexSnapshot, expect: Expectation | None = None
) -> IndexSnapshot:
    """``snapshot`` brought up to the live generation by applying only the deltas it has not
    seen. They are in the live base's ``deltas/`` if the live base is not newer than
    ``snapshot``, or else still in the base it was merged from (kept until the next merge);
    generation numbers are never reused, so the state at a number is the same in any chain.
    Otherwise (or if those deltas are damaged) the whole live generation is loaded, as
    :func:`load_snapshot` loads it."""
    index_dir = Path(index_dir)
    have = snapshot.manifest.generation
    target = live_generation(index_dir)
    if target == have:
        return snapshot
    bases = sorted((n for n in _generations(index_dir) if n <= have), reverse=True)
    for number in bases[:2]:
        gen_dir = index_dir / _gen_name(number)
        try:
            base = _read_manifest_file(gen_dir)
            if expect is not None:
                check_manifest(base, expect)
            newer = _read_deltas(gen_dir, base, have)
            if newer and newer[-1].generation == target:
                return apply_deltas(snapshot, newer, index_type=snapshot.index.index_type)
        except (IndexCorrupt, ValueError):
            continue
    return load_snapshot(index_dir, expect)


#: File in the index folder that writers lock (none of the index's own files has this name).
WRITE_LOCK = ".write.lock"


@contextmanager
def writer_lock(index_dir: Path, *, exclusive: bool = True) -> Iterator[None]:
    """Hold the index folder's lock (blocking): exclusive to change the index, shared to read
    it consistently. It serialises every writer across processes: ``rag index`` and each
    worker of a running service."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / WRITE_LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
