"""A full disk, for real: the data and index folders of a real ``rag serve`` live on a small
tmpfs, which the test fills. A document write that runs out of space is a clear 507 (never
a 500, never a hang); questions keep being answered; the index on disk stays loadable and
unchanged; the data folder still agrees with it; nothing half-written is left taking space;
and once space is freed the same write succeeds."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api_support import ADMIN_TOKEN, LiveServer, assert_error_shape
from test_reliability_support import (
    check_index,
    real_paragraphs,
    record_figures,
)

from rag.load import load_data_dir

DISK_BYTES = 16 * 1024 * 1024
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount_point = tmp_path_factory.mktemp("small-disk")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def server(disk, tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):
    root = tmp_path_factory.mktemp("reliability-disk")  # the log stays off the small disk
    data, index = disk / "data", disk / "index"
    shutil.copytree(squad_data_dir, data)
    shutil.copytree(squad_settings.index_dir, index)
    srv = LiveServer(
        root,
        data,
        index,
        settings={"RAG_ADMIN_TOKEN": ADMIN_TOKEN, "RAG_ASK_RATE_LIMIT": ""},
    )
    srv.start()
    yield srv
    srv.stop()


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the free space but ``leave`` bytes."""
    filler = disk / "filler.bin"
    with open(filler, "wb") as fh:
        block = b"\0" * 65536
        todo = free_bytes(disk) - leave
        while todo > 0:
            fh.write(block[: min(todo, len(block))])
            todo -= len(block)
    return filler


def stray_files(disk: Path) -> list[str]:
    """Temporary files or generations a failed write left behind."""
    return sorted(
        str(p.relative_to(disk)) for p in disk.rglob("*") if ".tmp" in p.name and p.exists()
    )


#: Free space left by the filler: none at all (the write's note, rag/journal.py, fails first),
#: and enough for the note and the article files (three 4 KiB pages) but not for the index
#: delta, whose vectors take ~1.5 KiB per sentence (~60 KiB for this article).
LEAVE = {"article_write": 0, "index_write": 32 * 1024}


def test_full_disk_write_is_507_and_nothing_breaks(server: LiveServer, disk: Path) -> None:
    text = "\n\n".join(real_paragraphs()[:4])
    before = check_index(server.index_dir)
    figures: dict[str, object] = {"disk_bytes": DISK_BYTES}
    with server.client() as client:
        for case, leave in LEAVE.items():
            filler = fill(disk, leave)
            try:
                response = client.put("/documents/full-disk", json={"text": text}, headers=AUTH)
                message = assert_error_shape(response, 507, "insufficient_storage")
                assert "disk space" in message
                # Queries and reads keep working, from the unchanged index.
                asked = client.post("/ask", json={"question": "Who were the Normans?"})
                assert asked.status_code == 200 and asked.json()["passages"]
                assert client.get("/documents/full-disk").status_code == 404
                assert client.get("/readyz").json()["generation"] == before.manifest.generation
                # The index on disk is loadable and unchanged; the data folder agrees with it.
                after = check_index(server.index_dir)
                assert after.manifest == before.manifest
                on_disk = {d.id: d.text for d in load_data_dir(server.data_dir)}
                assert on_disk == {d.id: d.text for d in after.documents}
                assert stray_files(disk) == [], stray_files(disk)
                if leave == 0:
                    # A deletion needs its note too: refused the same way, nothing removed.
                    deleted = client.delete("/documents/squad2-Normans", headers=AUTH)
                    assert_error_shape(deleted, 507, "insufficient_storage")
                    assert client.get("/documents/squad2-Normans").status_code == 200
                    assert stray_files(disk) == []
                figures[case] = {"status": response.status_code, "free_bytes": leave}
            finally:
                filler.unlink()
        # With space again, the same write succeeds.
        response = client.put("/documents/full-disk", json={"text": text}, headers=AUTH)
        assert response.status_code == 201, response.text
        assert client.get("/documents/full-disk").json()["text"] == text
    check_index(server.index_dir)
    logs = server.logs()
    assert "Traceback" not in logs and "unhandled error" not in logs
    assert "lack of disk space" in logs
    record_figures("full_disk", figures)


def test_article_write_failing_halfway_leaves_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidecar is written, then the text hits a full disk: the folder is as it was (not
    a new sidecar beside the old text), with no temporary file left."""
    from core.types import Document, DocumentMeta
    from rag import load

    old = Document("doc", "Old text. Two sentences.", DocumentMeta(title="Old"))
    load.write_article(tmp_path, old)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = load._write_atomic

    def no_space_for_text(path: Path, data: bytes) -> None:
        if path.suffix == ".txt":
            with open(path.with_name(f".{path.name}.tmp-x"), "wb") as fh:
                fh.write(data[:3])  # a partial write, as a full disk leaves it
            path.with_name(f".{path.name}.tmp-x").unlink()
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(load, "_write_atomic", no_space_for_text)
    new = Document("doc", "New text.", DocumentMeta(title="New"))
    with pytest.raises(OSError, match="No space"):
        load.replace_article(tmp_path, new, "doc")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(OSError, match="No space"):
        load.replace_article(tmp_path, Document("other", "Other text."), "other")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_partial_temporary_file_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag import load

    def fail_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(load.os, "fsync", fail_fsync)
    with pytest.raises(OSError):
        load._write_atomic(tmp_path / "a.txt", b"some bytes")
    assert list(tmp_path.iterdir()) == []
