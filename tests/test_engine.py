"""The façade (rag.engine.Engine): built once from settings, it loads the encoder, the
cross-encoder, the abstention models and the corpus, and answers typed requests. The CLI, the
API, eval and bench all go through it, so no other module wires the models by hand."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from api.schemas import CARD_QUESTION
from core.errors import ModelError, NotReady
from rag.engine import Engine, Request, reranker_use
from rag.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
#: The functions that turn settings into models; only the façade may call them.
WIRING = {"make_encoder", "make_reranker", "models_for", "make_fast_encoder"}


@pytest.fixture(scope="module")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("data")
    for path in DATA.glob("sasse-*"):
        shutil.copy(path, data / path.name)
    return Settings(data_dir=data, index_dir=tmp_path_factory.mktemp("index") / "index")


@pytest.fixture(scope="module")
def engine(seed_settings: Settings, encoder) -> Engine:  # type: ignore[no-untyped-def]
    return Engine(seed_settings, encoder=encoder).load()


def test_construction_is_cheap_and_loading_is_explicit(seed_settings: Settings) -> None:
    engine = Engine(seed_settings.model_copy(update={"model": "/no/such/model"}))
    with pytest.raises(NotReady, match="load"):
        engine.ask(Request(CARD_QUESTION))
    with pytest.raises(ModelError):
        engine.load_models()


def test_engine_answers_the_card_question_from_the_seed_article(engine: Engine) -> None:
    result = engine.ask(Request(CARD_QUESTION))
    assert result.mode == "accurate" and not result.abstained
    quote = result.answer
    assert quote is not None and "Merz" in quote.text
    document = engine.corpus.documents[quote.doc_id]
    assert document.text[quote.start : quote.end] == quote.text
    fast = engine.ask(Request(CARD_QUESTION, mode="fast", top_k=1))
    assert fast.mode == "fast" and len(fast.passages) == 1


def test_engine_loads_the_learned_abstention_models_for_its_models(engine: Engine) -> None:
    assert set(engine.abstention) == {"fast", "accurate"}
    assert engine.reranker is not None
    refused = engine.ask(Request("How many troops will Germany send?"))
    assert refused.abstained and refused.reason


def test_with_settings_shares_the_models_and_changes_only_the_settings(engine: Engine) -> None:
    other = engine.with_settings(engine.settings.model_copy(update={"top_k": 1}))
    assert other.encoder is engine.encoder and other.reranker is engine.reranker
    # (not the card question: a speaker's answer lists only that speaker's passages)
    question = "How many countries took part in the latest Paris talks?"
    assert len(other.ask(Request(question)).passages) == 1
    assert len(engine.ask(Request(question)).passages) == 3  # the default, unchanged


def test_a_missing_cross_encoder_is_fatal_only_when_required(
    seed_settings: Settings,
    encoder,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    broken = seed_settings.model_copy(update={"reranker": str(tmp_path / "no-model")})
    with pytest.raises(ModelError):
        Engine(broken, encoder=encoder, use_reranker="required").load_models()
    models = Engine(broken, encoder=encoder).load_models()  # auto: fast mode, with the reason
    assert models.reranker is None and models.reranker_error
    assert Engine(broken, encoder=encoder, use_reranker="off").load_models().reranker is None


def test_reranker_use_follows_the_mode_asked_for() -> None:
    settings = Settings()
    assert reranker_use(settings, "fast") == "off"
    assert reranker_use(settings, "accurate") == "required"
    assert reranker_use(settings, None) == "auto"
    assert reranker_use(settings.model_copy(update={"answer_mode": "fast"}), None) == "off"


def _wiring_calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in WIRING:
                called.add(name)
    return called


def test_only_the_facade_wires_models_from_settings() -> None:
    """The CLI, the API, eval and bench get their models from the Engine: none of them calls
    the settings-to-model functions itself (the four hand-written copies are gone)."""
    offenders = {
        str(path.relative_to(REPO)): calls
        for package in ("cli", "api", "eval", "bench")
        for path in sorted((REPO / package).rglob("*.py"))
        if (calls := _wiring_calls(path))
    }
    assert offenders == {}


def test_the_architecture_docs_example_runs(
    seed_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/architecture.md's façade example, run as written (on a copy of the seed article),
    so the doc cannot drift from the code."""
    import re

    from rag.settings import get_settings

    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    monkeypatch.setenv("RAG_DATA_DIR", str(seed_settings.data_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(seed_settings.index_dir))
    get_settings.cache_clear()
    try:
        scope: dict[str, object] = {}
        exec(compile(example, "docs/architecture.md", "exec"), scope)
    finally:
        get_settings.cache_clear()
    result = scope["answer"]
    assert getattr(result, "answer", None) is not None
    assert "Merz" in result.answer.text  # type: ignore[attr-defined]
