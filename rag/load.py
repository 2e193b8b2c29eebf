"""Load articles from files into :class:`~core.types.Document`.

An article is a text file (``.txt``) or a Markdown file (``.md``). Its metadata comes from a
sidecar ``<name>.json`` beside it, so the article file itself stays byte for byte as received
and every offset into it stays exact. A Markdown file may instead carry its metadata in a
front-matter block (``---`` lines at the top); the stored text is then the body after it.

The text is decoded as UTF-8 and kept exactly: no newline translation, no BOM removal, no
whitespace stripping.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from core.errors import DocumentError, InvalidDocumentId
from core.text import is_valid_unicode
from core.types import Document, DocumentMeta

ARTICLE_SUFFIXES = (".txt", ".md")
DOC_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
META_FIELDS = frozenset(f.name for f in fields(DocumentMeta))
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def validate_doc_id(doc_id: object) -> str:
    """Return ``doc_id`` if it is a slug of letters, digits, ``-`` and ``_``; else raise."""
    if not isinstance(doc_id, str) or not DOC_ID_PATTERN.fullmatch(doc_id):
        raise InvalidDocumentId(
            f"invalid document id {doc_id!r}: use 1-128 letters, digits, '-' or '_'"
        )
    return doc_id


def slugify(name: str) -> str:
    """A valid document id made from a file name or title."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:128]
    return slug or "document"


def parse_meta(raw: Mapping[str, Any], source: str) -> DocumentMeta:
    """Metadata from a mapping; unknown keys and non-string values are errors, not guesses."""
    unknown = set(raw) - META_FIELDS - {"id"}
    if unknown:
        raise DocumentError(
            f"{source}: unknown metadata field(s) {sorted(unknown)}; "
            f"known fields: {sorted(META_FIELDS | {'id'})}"
        )
    values: dict[str, str] = {}
    for key in META_FIELDS & set(raw):
        value = raw[key]
        if value is None:
            value = ""
        if not isinstance(value, str):
            # YAML turns 2026-01-07 into a date; keep its ISO form, refuse anything else.
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            else:
                raise DocumentError(f"{source}: metadata field {key!r} must be a string")
        values[key] = value.strip()
    return DocumentMeta(**values)


def make_document(doc_id: str, text: str, meta: DocumentMeta | None = None) -> Document:
    """A document from text already in memory (the HTTP API uses this)."""
    validate_doc_id(doc_id)
    if not isinstance(text, str):
        raise DocumentError(f"document {doc_id!r}: text must be a string")
    if not text.strip():
        raise DocumentError(f"document {doc_id!r}: text is empty")
    if "\x00" in text:
        raise DocumentError(f"document {doc_id!r}: text contains a NUL character")
    if not is_valid_unicode(text):
        raise DocumentError(f"document {doc_id!r}: text contains a lone surrogate")
    return Document(id=doc_id, text=text, meta=meta or DocumentMeta())


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read article {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"article {path} is not valid UTF-8 (byte {exc.start}): convert it to UTF-8"
        ) from exc


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DocumentError(f"metadata file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DocumentError(f"metadata file {path} must hold a JSON object")
    return raw


def split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    """Split a Markdown front-matter block from the body; no block gives ``({}, text)``."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        raw = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise DocumentError(f"{source}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DocumentError(f"{source}: front matter must be a mapping of fields")
    return raw, text[match.end() :]


def load_document(path: Path) -> Document:
    """Load one article file and its metadata (sidecar JSON, or Markdown front matter)."""
    path = Path(path)
    if path.suffix.lower() not in ARTICLE_SUFFIXES:
        raise DocumentError(f"{path}: articles must be .txt or .md files")
    if not path.is_file():
        raise DocumentError(f"article {path} does not exist")
    text = _read_text(path)
    raw: dict[str, Any] = {}
    if path.suffix.lower() == ".md":
        raw, text = split_front_matter(text, str(path))
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        raw = {**raw, **_read_sidecar(sidecar)}
    doc_id = raw.get("id", path.stem)
    try:
        validate_doc_id(doc_id)
    except InvalidDocumentId as exc:
        raise InvalidDocumentId(f"{path}: {exc} (set a valid 'id' in its metadata)") from exc
    meta = parse_meta(raw, str(sidecar if sidecar.is_file() else path))
    return make_document(doc_id, text, meta)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temporary file, fsync, rename)."""
    _write_atomic(path, data)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no partial file taking space
        raise


def write_article(folder: Path, doc: Document) -> Path:
    """Write ``doc`` as :func:`load_document` reads it: ``<id>.txt`` (exact text) plus a JSON
    sidecar with the known metadata fields. Each file is replaced atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{validate_doc_id(doc.id)}.txt"
    meta = {f.name: getattr(doc.meta, f.name) for f in fields(DocumentMeta)}
    sidecar = json.dumps({k: v for k, v in meta.items() if v}, ensure_ascii=False, indent=2)
    _write_atomic(folder / f"{doc.id}.json", (sidecar + "\n").encode("utf-8"))
    _write_atomic(path, doc.text.encode("utf-8"))
    return path


def article_files(folder: Path, doc_id: str) -> list[Path]:
    """The files in ``folder`` that hold document ``doc_id`` (article and sidecar)."""
    found = []
    for path in find_articles(folder) if Path(folder).is_dir() else []:
        if load_document(path).id == doc_id:
            found.append(path)
            if path.with_suffix(".json").is_file():
                found.append(path.with_suffix(".json"))
    return found


def replace_article(folder: Path, doc: Document | None, doc_id: str) -> dict[Path, bytes]:
    """Make ``folder`` hold ``doc`` as document ``doc_id`` (None: remove it), replacing any
    other files that held that id. Returns the previous files' bytes, for :func:`restore`."""
    old = {p: p.read_bytes() for p in article_files(folder, doc_id)}
    try:
        written = write_article(folder, doc) if doc is not None else None
    except BaseException:
        # e.g. the sidecar was written but the text hit a full disk: put the old files back
        # (a new sidecar beside the old text would be a document nobody wrote).
        restore_articles(folder, doc_id, old, stray=doc)
        raise
    keep = {written, written.with_suffix(".json")} if written else set()
    for path in old:
        if path not in keep:
            path.unlink(missing_ok=True)
    return old


def restore_articles(
    folder: Path, doc_id: str, previous: dict[Path, bytes], *, stray: Document | None = None
) -> None:
    """Undo :func:`replace_article`: put the previous files of ``doc_id`` back (``stray``:
    a document whose files may be half-written). Files that still hold their previous bytes
    are left alone, and extra files go first, so that on a full disk this needs no space
    beyond what the failed write freed."""
    current = set(article_files(folder, doc_id))
    if stray is not None:
        current |= {folder / f"{stray.id}.txt", folder / f"{stray.id}.json"}
    for path in current - set(previous):
        path.unlink(missing_ok=True)
    for path, data in previous.items():
        try:
            unchanged = path.read_bytes() == data
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            _write_atomic(path, data)


def find_articles(data_dir: Path) -> list[Path]:
    """Article files in ``data_dir`` (not recursive), sorted by name."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DocumentError(f"data folder {data_dir} does not exist")
    return sorted(
        p
        for p in data_dir.iterdir()
        if p.is_file()
        and p.suffix.lower() in ARTICLE_SUFFIXES
        and not p.name.startswith(".")
        and p.name.lower() != "readme.md"
    )


def load_documents(paths: Iterable[Path]) -> list[Document]:
    """Load several articles; two files claiming the same id is an error."""
    docs: dict[str, Document] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        doc = load_document(path)
        if doc.id in docs:
            raise DocumentError(
                f"document id {doc.id!r} is used by both {origin[doc.id]} and {path}"
            )
        docs[doc.id] = doc
        origin[doc.id] = path
    return list(docs.values())


def load_data_dir(data_dir: Path) -> list[Document]:
    return load_documents(find_articles(data_dir))
