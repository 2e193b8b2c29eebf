"""SQuAD 2.0 articles as documents, and their questions with gold spans into those documents.

Read from ``../shared/benchmarks/squad2_dev`` at run time; nothing of it is copied into the
repository. Each Wikipedia article becomes one :class:`~core.types.Document` whose paragraphs are
joined by a blank line, so its paragraph *n* is the chunker's paragraph *n* and every gold
answer offset maps to an exact span of the document text.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from core.types import Document, DocumentMeta, Span
from rag.load import slugify, write_article

PARAGRAPH_SEPARATOR = "\n\n"
DEFAULT_PATH = (
    Path(__file__).resolve().parent.parent.parent / "shared/benchmarks/squad2_dev/dev-v2.0.json"
)


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    doc_id: str
    paragraph: int  # 1-based, in the document built from the article
    answers: tuple[Span, ...]  # gold spans into the document text; empty when unanswerable
    impossible: bool


@dataclass(frozen=True)
class SquadArticle:
    document: Document
    paragraph_spans: tuple[Span, ...]
    questions: tuple[SquadQuestion, ...]


def _article(raw: dict) -> SquadArticle:
    doc_id = slugify(f"squad2-{raw['title']}")
    texts = [p["context"].strip() for p in raw["paragraphs"]]
    spans: list[Span] = []
    pos = 0
    for text in texts:
        spans.append(Span(pos, pos + len(text)))
        pos += len(text) + len(PARAGRAPH_SEPARATOR)
    body = PARAGRAPH_SEPARATOR.join(texts) + "\n"
    document = Document(
        id=doc_id,
        text=body,
        meta=DocumentMeta(
            title=raw["title"].replace("_", " "),
            publisher="Wikipedia (SQuAD 2.0 dev set)",
            license="CC BY-SA 4.0",
        ),
    )
    questions = []
    for number, (para, span) in enumerate(zip(raw["paragraphs"], spans, strict=True), start=1):
        lead = len(para["context"]) - len(para["context"].lstrip())
        for qa in para["qas"]:
            answers = []
            for ans in qa.get("answers", []):
                start = span.start + ans["answer_start"] - lead
                end = start + len(ans["text"])
                if body[start:end] == ans["text"]:
                    answers.append(Span(start, end))
            impossible = bool(qa.get("is_impossible", False))
            if not impossible and not answers:
                continue  # an answer whose offset does not match its text: skip, not guess
            questions.append(
                SquadQuestion(
                    id=qa["id"],
                    question=qa["question"],
                    doc_id=doc_id,
                    paragraph=number,
                    answers=tuple(dict.fromkeys(answers)),
                    impossible=impossible,
                )
            )
    return SquadArticle(document=document, paragraph_spans=tuple(spans), questions=tuple(questions))


def load_squad2(path: Path = DEFAULT_PATH, titles: list[str] | None = None) -> list[SquadArticle]:
    """Articles of a SQuAD 2.0 file (optionally only those with the given titles, in order)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)["data"]
    by_title = {a["title"]: a for a in data}
    if titles is None:
        return [_article(a) for a in data]
    missing = [t for t in titles if t not in by_title]
    if missing:
        raise KeyError(f"no article titled {missing} in {path}")
    return [_article(by_title[t]) for t in titles]


def main(argv: list[str] | None = None) -> int:
    """``python -m eval.squad --out DIR [--titles T ...]``: write SQuAD 2.0 articles as
    article files plus sidecars, ready for ``rag index --data-dir DIR``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--squad", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--titles", nargs="+", help="article titles (default: all)")
    args = parser.parse_args(argv)
    if not args.squad.is_file():
        print(f"error: {args.squad} not found (../shared/benchmarks missing)", file=sys.stderr)
        return 1
    try:
        articles = load_squad2(args.squad, args.titles)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    for article in articles:
        print(write_article(args.out, article.document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
