"""The answer cache: LRU order, capacity, keys, thread safety."""

from __future__ import annotations

import threading

import pytest

from api.cache import LRUCache, ask_key


def key(question: str = "q", generation: int = 1, **options: object) -> tuple[object, ...]:
    base: dict[str, object] = {
        "top_k": None,
        "doc_ids": None,
        "author": None,
        "history": None,
        "mode": None,
    }
    base.update(options)
    return ask_key(generation, question, **base)  # type: ignore[arg-type]


def test_get_returns_what_was_put_and_counts() -> None:
    cache: LRUCache[bytes] = LRUCache(4)
    assert cache.get(key()) is None
    cache.put(key(), b"body")
    assert cache.get(key()) == b"body"
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_least_recently_used_goes_first() -> None:
    cache: LRUCache[str] = LRUCache(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C")
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")
    assert len(cache) == 2


def test_zero_capacity_stores_nothing_and_negative_is_refused() -> None:
    cache: LRUCache[str] = LRUCache(0)
    cache.put("a", "A")
    assert cache.get("a") is None and len(cache) == 0
    with pytest.raises(ValueError):
        LRUCache(-1)


def test_a_new_generation_is_a_different_key() -> None:
    assert key(generation=1) != key(generation=2)


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 2},
        {"doc_ids": ["a"]},
        {"author": "Smith"},
        {"history": ["Who?"]},
        {"mode": "fast"},
    ],
)
def test_every_option_is_part_of_the_key(options: dict[str, object]) -> None:
    assert key(**options) != key()
    assert key(**options) == key(**options)
    hash(key(**options))


def test_lists_and_tuples_give_the_same_key() -> None:
    assert key(doc_ids=["a", "b"], history=["x"]) == key(doc_ids=("a", "b"), history=("x",))
    assert key(doc_ids=[]) != key()


def test_clear_empties() -> None:
    cache: LRUCache[int] = LRUCache(3)
    cache.put(1, 1)
    cache.clear()
    assert cache.get(1) is None


def test_concurrent_use_keeps_capacity() -> None:
    cache: LRUCache[int] = LRUCache(50)

    def work(offset: int) -> None:
        for i in range(2000):
            cache.put((offset, i % 97), i)
            cache.get((offset, (i * 7) % 97))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
    assert cache.hits + cache.misses == 4 * 2000


def test_service_answers_a_repeat_from_the_cache_until_a_document_changes(
    tmp_path, squad_articles
) -> None:  # type: ignore[no-untyped-def]
    """The real service state over a real article: a repeat is a hit; a write invalidates."""
    import anyio

    from api.state import ServiceState
    from core.types import Answer
    from rag.load import write_article
    from rag.settings import Settings

    normans = next(a for a in squad_articles if a.document.id == "squad2-Normans")
    write_article(tmp_path / "data", normans.document)
    settings = Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "index", reranker="")
    state = ServiceState(settings, reload_interval=0, answer_cache_size=8)
    state._swap(state._load())
    renders: list[str] = []

    def render(result: Answer) -> str:
        body = result.answer.text if result.answer else "abstained"
        renders.append(body)
        return body

    async def scenario() -> tuple[str, str, str, str]:
        first = await state.ask("Who were the Normans?", render, top_k=1)
        again = await state.ask("Who were the Normans?", render, top_k=1)
        other_k = await state.ask("Who were the Normans?", render, top_k=2)
        changed = normans.document.__class__(
            id=normans.document.id,
            text="The Normans were a people of the cheese trade. "
            "They lived in a valley near the sea.",
            meta=normans.document.meta,
        )
        await state.upsert(changed)
        after = await state.ask("Who were the Normans?", render, top_k=1)
        return first, again, other_k, after

    first, again, _other_k, after = anyio.run(scenario)
    assert first == again and "Normans" in first
    assert len(renders) == 3  # the repeat was not rendered again; top_k=2 and the write were
    assert state.answer_cache.hits == 1
    assert after != first and "cheese" in after
