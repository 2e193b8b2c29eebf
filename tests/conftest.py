"""Shared fixtures: the real bundled model, and real articles to index.

The retrieval tests use real data: articles and human-written questions of the SQuAD 2.0 dev
set, read from ``../shared/benchmarks`` (never copied into the repository), and the seed article
in ``data/`` when it is there.
"""

from __future__ import annotations

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
