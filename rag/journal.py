"""Keeping the data folder and the index in step across a crash.

A document write in the embedded default changes two things: the article's files in
``data/`` and the index. It does them in this order:

1. a note, ``PENDING.json`` in the index folder, written durably before anything else: which
   document, the generation the write will make live, and the article's previous files;
2. the article's files in ``data/``;
3. the index (one delta, or a whole generation): the commit point;
4. the note is removed.

A crash between 1 and 3 leaves a note whose generation is not live: :func:`recover` puts the
previous files back (the write never happened). A crash between 3 and 4 leaves a note whose
generation is live: the data folder already holds the write, and only the note goes. So an
unacknowledged write is completed or rolled back when the next writer (or the service, at
start) takes the lock, never left for a later ``rag index`` to apply. :func:`recover` also
deletes the temporary files an interrupted write left in both folders.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from core.errors import IndexNotFound, RagError
from core.types import Document
from index.persist import find_strays, live_generation, remove_strays
from rag.load import article_files, restore_articles, write_atomic

log = logging.getLogger(__name__)

PENDING = "PENDING.json"


@dataclass(frozen=True)
class Pending:
    """A document write in progress: what :func:`recover` needs to finish or undo it."""

    generation: int
    doc_id: str
    previous: dict[str, bytes]  # file name in the data folder -> its bytes before the write


def previous_files(data_dir: Path, doc_id: str) -> dict[str, bytes]:
    """The files of ``doc_id`` in the data folder now, by name."""
    return {p.name: p.read_bytes() for p in article_files(data_dir, doc_id)}


def write_pending(index_dir: Path, pending: Pending) -> None:
    """Record ``pending`` durably (atomically replaced: whole or absent)."""
    body = {
        "generation": pending.generation,
        "doc_id": pending.doc_id,
        "previous": {k: base64.b64encode(v).decode("ascii") for k, v in pending.previous.items()},
    }
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(index_dir) / PENDING, json.dumps(body, sort_keys=True).encode("utf-8"))


def read_pending(index_dir: Path) -> Pending | None:
    """The recorded write, or None. A note that cannot be read is logged and treated as
    absent (it is written atomically, so only damage to the disk makes one)."""
    path = Path(index_dir) / PENDING
    try:
        body = json.loads(path.read_bytes())
        previous = {
            str(name): base64.b64decode(data, validate=True)
            for name, data in body["previous"].items()
        }
        pending = Pending(int(body["generation"]), str(body["doc_id"]), previous)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if any("/" in name or name.startswith(".") for name in pending.previous):
        log.warning("ignoring %s: it names files outside the data folder", path)
        return None
    return pending


def clear_pending(index_dir: Path) -> None:
    (Path(index_dir) / PENDING).unlink(missing_ok=True)


def needs_recovery(index_dir: Path) -> bool:
    """Whether a write was interrupted, or is in progress (cheap: a stat and two folder
    listings; no lock needed to ask)."""
    index_dir = Path(index_dir)
    return (index_dir / PENDING).exists() or bool(find_strays(index_dir))


def recover(index_dir: Path, data_dir: Path) -> str | None:
    """Finish or undo an interrupted document write, and delete temporary files it left.
    The caller holds the index's exclusive writer lock. Returns what was done (for the log),
    or None if nothing was pending."""
    index_dir, data_dir = Path(index_dir), Path(data_dir)
    strays = [*remove_strays(index_dir), *index_dir.glob(f".{PENDING}.tmp-*")]
    for stray in strays:
        stray.unlink(missing_ok=True)
        log.info("deleted %s, left by an interrupted index write", stray)
    pending = read_pending(index_dir)
    if pending is None:
        clear_pending(index_dir)
        return None
    try:
        live = live_generation(index_dir)
    except IndexNotFound:
        live = 0
    except RagError:
        live = -1  # a bad CURRENT: the write did not switch it, so it did not happen
    if live >= pending.generation:
        outcome = f"completed: generation {pending.generation} holds it"
    else:
        restore_articles(
            data_dir,
            pending.doc_id,
            {data_dir / name: data for name, data in pending.previous.items()},
            stray=Document(pending.doc_id, ""),
        )
        outcome = "rolled back: it never reached the index"
    if data_dir.is_dir():
        for tmp in data_dir.glob(f".{pending.doc_id}.*.tmp-*"):
            tmp.unlink(missing_ok=True)
    clear_pending(index_dir)
    message = f"interrupted write of {pending.doc_id!r} {outcome}"
    log.warning(message)
    return message
