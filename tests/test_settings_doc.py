"""The README's table of settings is generated from the settings classes (``rag settings``),
so it cannot drift: it must equal what the generator makes now, list every field of every
settings class under the variable that really sets it, and show no secret's default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cli.main as cli
from api.config import ApiSettings
from cli.settings_doc import END, START, extract_block, replace_block, settings_markdown
from rag.settings import Settings, Tuning

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\| `(RAG_[A-Z0-9_]+)` \| (.*?) \| (.*) \|$", re.MULTILINE)


def table_rows(text: str) -> dict[str, tuple[str, str]]:
    """Variable -> (default cell, description cell) of every row in ``text``."""
    rows: dict[str, tuple[str, str]] = {}
    for variable, default, description in ROW.findall(text):
        assert variable not in rows, f"{variable} is listed twice"
        rows[variable] = (default, description)
    return rows


def expected_variables() -> set[str]:
    names = {f"RAG_{name.upper()}" for name in Settings.model_fields if name != "tuning"}
    names |= {f"RAG_TUNING__{name.upper()}" for name in Tuning.model_fields}
    names |= {f"RAG_{name.upper()}" for name in ApiSettings.model_fields}
    return names


def test_readme_settings_block_is_the_generated_table() -> None:
    block = extract_block(README.read_text("utf-8"))
    assert block == settings_markdown().rstrip("\n"), (
        "README.md's settings table is out of date: run `rag settings --write README.md`"
    )


def test_every_field_of_every_settings_class_is_listed() -> None:
    rows = table_rows(settings_markdown())
    assert set(rows) == expected_variables()
    readme_rows = table_rows(extract_block(README.read_text("utf-8")))
    assert set(readme_rows) == expected_variables()


def test_no_variable_sets_two_settings() -> None:
    """Settings and ApiSettings read the same RAG_ prefix: a name in both would be one
    variable configuring two things."""
    assert not set(Settings.model_fields) & set(ApiSettings.model_fields)


def test_defaults_and_descriptions_come_from_the_fields() -> None:
    rows = table_rows(settings_markdown())
    assert rows["RAG_TOP_K"][0] == f"`{Settings.model_fields['top_k'].default}`"
    assert rows["RAG_MAX_QUESTION_CHARS"][0] == "`1000`"
    assert rows["RAG_TUNING__CANDIDATES"][0] == f"`{Tuning.model_fields['candidates'].default}`"
    assert rows["RAG_BM25_STEMMING"][0] == "`true`"
    assert rows["RAG_ANSWER_MODE"][0] == "*unset*"
    assert rows["RAG_QUERY_PREFIX"][0] == "*empty*"
    assert rows["RAG_CORS_ORIGINS"][0] == "`[]`"
    # Machine-dependent: described, never this machine's value.
    assert rows["RAG_ASK_CONCURRENCY"][0] == "the number of CPUs"
    # The values a Literal allows, from the type itself.
    assert rows["RAG_ANSWER_MODE"][1].endswith("Values: `fast`, `accurate`.")
    assert rows["RAG_RETRIEVAL_MODE"][1].endswith("Values: `dense`, `bm25`, `hybrid`.")
    assert "Passages returned" in rows["RAG_TOP_K"][1]
    # Markdown-safe: an HTML-looking <NAME> is escaped.
    assert "<" not in "".join(d for _, d in rows.values())


def test_secrets_have_no_default() -> None:
    rows = table_rows(settings_markdown())
    default, _ = rows["RAG_ADMIN_TOKEN"]
    assert default == "*none (a secret)*"


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("RAG_TOP_K", "7", lambda: Settings().top_k == 7),
        ("RAG_TUNING__CANDIDATES", "17", lambda: Settings().tuning.candidates == 17),
        (
            "RAG_TUNING__RERANK_WINDOW_WORDS",
            "60",
            lambda: Settings().tuning.rerank_window_words == 60,
        ),
        ("RAG_ASK_QUEUE_LIMIT", "9", lambda: ApiSettings().ask_queue_limit == 9),
    ],
)
def test_listed_names_are_the_variables_that_set_them(monkeypatch, variable, value, read) -> None:  # type: ignore[no-untyped-def]
    assert variable in table_rows(settings_markdown())
    monkeypatch.setenv(variable, value)
    assert read()


def test_rag_settings_prints_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["settings"]) == 0
    assert capsys.readouterr().out == settings_markdown()


def test_rag_settings_write_refreshes_a_stale_block(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(f"# Title\n\nText.\n\n{START}\n| `RAG_OLD` | `1` | gone |\n{END}\n\nMore.\n")
    assert cli.main(["settings", "--write", str(page)]) == 0
    text = page.read_text("utf-8")
    assert text.startswith("# Title\n\nText.\n\n") and text.endswith(f"{END}\n\nMore.\n")
    assert extract_block(text) == settings_markdown().rstrip("\n")
    assert replace_block(text, settings_markdown()) == text  # idempotent


def test_rag_settings_write_needs_the_markers(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "README.md"
    page.write_text("# No markers\n")
    assert cli.main(["settings", "--write", str(page)]) == cli.EXIT_ERROR
    assert "marker" in capsys.readouterr().err
    assert page.read_text("utf-8") == "# No markers\n"


def test_every_setting_named_in_the_docs_exists() -> None:
    """A renamed setting leaves no stale name behind in the README, docs/ or the code's
    help texts (RAG_PAIR_MARGIN became RAG_TUNING__PAIR_MARGIN, for instance)."""
    repo = README.parent
    known = expected_variables() | {"RAG_"}  # "RAG_" alone: the prefix, named as such
    files = [README, *sorted((repo / "docs").glob("*.md")), repo / "eval" / "report.md"]
    files += [p for d in ("rag", "api", "cli", "eval", "bench") for p in (repo / d).rglob("*.py")]
    stale = {
        f"{path.relative_to(repo)}: {name}"
        for path in files
        for name in re.findall(r"\bRAG_[A-Z0-9_]*[A-Z0-9]\b|\bRAG_\b", path.read_text("utf-8"))
        # RAG_RELIABILITY_*: the reliability benchmark's own knobs; RAG_EVAL_*: what the
        # evaluation client (`rag eval --url`) reads; neither is a service setting
        if name not in known and not name.startswith(("RAG_RELIABILITY_", "RAG_EVAL_"))
    }
    assert not stale, sorted(stale)
