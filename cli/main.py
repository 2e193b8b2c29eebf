"""The ``rag`` command: ``index``, ``ask``, ``serve`` (the API), ``settings`` (the table of
every setting) and ``eval`` (the evaluation).

Every expected failure (bad input, a missing article, a mismatched index) prints one line,
``error: ...``, and exits non-zero; tracebacks are only shown with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from pydantic import SecretStr

from core.errors import RagError
from rag.settings import MAX_TOP_K, AnswerMode, RetrievalMode, Settings, get_settings

if TYPE_CHECKING:  # imported where used: `rag --help` and `rag serve` start fast
    from rag.engine import Engine

EXIT_USAGE = 2
EXIT_ERROR = 1


def _settings(args: argparse.Namespace) -> Settings:
    base = get_settings()
    overrides = {
        key: value
        for key, value in {
            "data_dir": getattr(args, "data_dir", None),
            "index_dir": getattr(args, "index_dir", None),
            "retrieval_mode": getattr(args, "retrieval", None),
        }.items()
        if value is not None
    }
    url = getattr(args, "database_url", None)
    if url is not None:
        overrides["database_url"] = SecretStr(url) if url else None
    return base.model_copy(update=overrides) if overrides else base


def _engine(settings: Settings, mode: str | None = None) -> Engine:
    """The loaded models for answering in ``mode``: an explicit or configured ``accurate``
    fails if the cross-encoder cannot load; by default a missing one means ``fast`` mode,
    with a note."""
    from rag.engine import Engine, reranker_use

    engine = Engine(settings, use_reranker=reranker_use(settings, mode))
    models = engine.load_models()
    if models.reranker is None and models.reranker_error and reranker_use(settings, mode) != "off":
        print(f"note: answering in fast mode: {models.reranker_error}", file=sys.stderr)
    return engine


def cmd_index(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    settings = _settings(args)
    if args.shard is not None:
        return index_shard(args, settings)
    engine = Engine(settings, use_reranker="off")
    engine.load_models()
    report = engine.build_index(rebuild=args.rebuild, progress=True)
    m = report.manifest
    print(
        f"index {engine.storage.describe()} (generation {m.generation}): "
        f"{m.counts.get('documents', 0)} documents, {m.counts.get('chunks', 0)} chunks; "
        f"added {len(report.added)}, updated {len(report.updated)}, "
        f"removed {len(report.removed)}, unchanged {len(report.unchanged)}; "
        f"embedded {report.chunks_embedded} chunks and {report.sentences_embedded} sentences"
    )
    return 0


def index_shard(args: argparse.Namespace, settings: Settings) -> int:
    """``rag index --shard i/n``: store this machine's part of the data folder's archive in
    the database (docs/scale-out.md). Checks its input before loading the model."""
    try:
        from rag.pgstore import PostgresStorage, Shard
    except ImportError:
        print("error: --shard needs the `postgres` extra (psycopg)", file=sys.stderr)
        return EXIT_USAGE
    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.database_url is None or not settings.database_url.get_secret_value():
        print(
            "error: --shard needs the database the shards share: set RAG_DATABASE_URL "
            "(or --database-url)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.rebuild:
        print(
            "error: --shard cannot --rebuild: a rebuild replaces the whole index, other "
            "shards' documents included; run `rag index --rebuild` once, without --shard",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from rag.engine import Engine

    engine = Engine(settings, use_reranker="off")
    storage = engine.storage
    assert isinstance(storage, PostgresStorage)
    engine.load_models()
    done = storage.build_shard(shard, engine.encoder, progress=True)
    r, m = done.report, done.report.manifest
    print(
        f"index {storage.describe()} (generation {m.generation}), shard {shard}: "
        f"{len(r.added) + len(r.updated) + len(r.unchanged)} documents in this shard "
        f"({done.outside} in others); added {len(r.added)}, updated {len(r.updated)}, "
        f"unchanged {len(r.unchanged)} in {done.transactions} transactions; embedded "
        f"{r.chunks_embedded} chunks and {r.sentences_embedded} sentences; the database "
        f"holds {m.counts.get('documents', 0)} documents, {m.counts.get('chunks', 0)} chunks"
    )
    return 0


def said_by(quote: dict) -> str:
    """Who says a quote, for a reader: "Friedrich Merz (reported by Gwendolyn Sasse)", or
    "Gwendolyn Sasse (author)"; "" when the index holds no attribution."""
    speaker = quote.get("speaker")
    if not speaker:
        return ""
    if quote.get("voice") == "reported":
        by = speaker.get("reported_by")
        return f"{speaker['name']} (reported by {by})" if by else speaker["name"]
    return f"{speaker['name']} (author)"


def format_answer(body: dict) -> str:
    """The response body as text a person reads in a terminal."""
    lines = [f"Q: {body['question']}"]
    if body.get("searched_as"):
        lines.append(f"   (searched for: {body['searched_as']})")
    lines.append("")
    ans = body["answer"]
    confidence = body.get("confidence")
    how = f"{body.get('mode', 'fast')} mode" + (
        f", confidence {confidence:.2f}" if confidence is not None else ""
    )
    if ans is None:
        lines.append(f"No answer ({how}). {body['reason']}")
    else:
        lines.append(
            f"Answer ({ans['doc_id']}, paragraph {ans['paragraph']}, "
            f"characters {ans['start']}-{ans['end']}; {how}):"
        )
        lines.extend(
            textwrap.wrap(f"“{ans['text']}”", 88, initial_indent="  ", subsequent_indent="  ")
        )
        if said_by(ans):
            lines.append(f"  — {said_by(ans)}")
    if body["passages"]:
        lines += ["", "Passages:"]
    for n, p in enumerate(body["passages"], start=1):
        rerank = p.get("rerank_score")
        scores = f"score {p['score']:.4f}" + (
            f", reranker {rerank:.2f}" if rerank is not None else ""
        )
        lines.append(
            f"{n}. {p['doc_id']}, paragraph {p['paragraph']}, characters "
            f"{p['start']}-{p['end']} ({scores})"
        )
        for q in p["quotes"]:
            lines.extend(
                textwrap.wrap(
                    f"“{q['text']}” [{q['start']}-{q['end']}, support {q['score']:.2f}]"
                    + (f" — {said_by(q)}" if q.get("voice") == "reported" else ""),
                    88,
                    initial_indent="   > ",
                    subsequent_indent="     ",
                )
            )
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace) -> int:
    from api.schemas import AskResponse
    from rag.engine import Request
    from rag.pipeline import validate_question, validate_top_k
    from rag.response import answer_dict

    settings = _settings(args)
    # Check the input before the (slow) model load, so a typo fails fast.
    validate_question(args.question, settings.max_question_chars)
    if args.top_k is not None:
        validate_top_k(args.top_k)
    engine = _engine(settings, args.mode).load(progress=True)
    result = engine.ask(
        Request(
            args.question,
            top_k=args.top_k,
            doc_ids=tuple(args.doc_id) if args.doc_id else None,
            author=args.author,
            speaker=args.speaker,
            mode=args.mode,
        )
    )
    body = AskResponse.model_validate(answer_dict(result))
    if args.json:
        print(body.model_dump_json())
    else:
        print(format_answer(body.model_dump()))
    return 0


def cmd_speakers(args: argparse.Namespace) -> int:
    """List the speakers the articles quote, and the authors (what GET /speakers returns)."""
    from rag import speakers

    engine = _engine(_settings(args), "fast").load(progress=True)
    for e in speakers.registry(engine.corpus):
        also = f"; also {', '.join(e.aliases)}" if e.aliases else ""
        docs = ", ".join(e.documents)
        print(f"{e.name} ({e.kind}): {e.statements} statement(s) in {docs}{also}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API under uvicorn; each worker loads the model and index once."""
    import os
    import signal

    import uvicorn
    from pydantic import ValidationError

    from api.config import ApiSettings
    from api.logs import log_config

    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    # Workers build the app from the environment (uvicorn's factory takes no arguments).
    for name, value in (
        ("RAG_DATA_DIR", args.data_dir),
        ("RAG_INDEX_DIR", args.index_dir),
        ("RAG_DATABASE_URL", args.database_url),
    ):
        if value is not None:
            os.environ[name] = str(value)
    try:  # fail fast, in one line, on a bad setting
        api_settings = ApiSettings()
        Settings()
    except ValidationError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: make that exit status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host or api_settings.host,
        port=api_settings.port if args.port is None else args.port,
        workers=args.workers or api_settings.workers,
        log_config=log_config(api_settings.log_level),
        log_level=api_settings.log_level,
        access_log=False,  # the app writes its own structured access log
    )
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Print the settings table generated from the settings classes, or update a file's."""
    from cli.settings_doc import replace_block, settings_markdown

    table = settings_markdown()
    if args.write is None:
        print(table, end="")
        return 0
    path: Path = args.write
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        updated = replace_block(text, table)
    except ValueError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if updated != text:
        path.write_text(updated, "utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Answer questions about commentary articles with exact quotes."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def paths(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="articles folder (RAG_DATA_DIR)")
        p.add_argument("--index-dir", type=Path, help="index folder (RAG_INDEX_DIR)")

    def database(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--database-url",
            metavar="URL",
            help="keep the index in this PostgreSQL database instead of the index folder "
            "(RAG_DATABASE_URL, which keeps a password out of the process list; "
            "docs/scale-out.md)",
        )

    p_index = sub.add_parser("index", help="build or update the index from the data folder")
    paths(p_index)
    database(p_index)
    p_index.add_argument("--rebuild", action="store_true", help="re-embed everything")
    p_index.add_argument(
        "--shard",
        metavar="I/N",
        help="with a database: store only part I of N of the data folder's articles (by a "
        "stable hash of each id), so N machines index one archive together; idempotent "
        "(docs/scale-out.md)",
    )
    p_index.set_defaults(func=cmd_index)

    p_ask = sub.add_parser("ask", help="answer a question with quotes")
    paths(p_ask)
    p_ask.add_argument("question")
    p_ask.add_argument(
        "--top-k", type=int, help=f"passages to return (1-{MAX_TOP_K}; default RAG_TOP_K)"
    )
    p_ask.add_argument("--json", action="store_true", help="print the HTTP API's response body")
    p_ask.add_argument("--doc-id", action="append", help="only this document (repeatable)")
    p_ask.add_argument("--author", help="only documents by this author")
    p_ask.add_argument(
        "--speaker",
        help="only this speaker's statements (a name, title or 'the author'; see `rag speakers`)",
    )
    p_ask.add_argument(
        "--mode",
        choices=get_args(AnswerMode),
        help="accurate: re-rank with the cross-encoder (default when it is installed)",
    )
    p_ask.add_argument(
        "--retrieval", choices=get_args(RetrievalMode), help="first-stage retrieval mode"
    )
    p_ask.set_defaults(func=cmd_ask)

    p_speakers = sub.add_parser("speakers", help="list the speakers the articles quote")
    paths(p_speakers)
    p_speakers.set_defaults(func=cmd_speakers)

    p_serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    paths(p_serve)
    database(p_serve)
    p_serve.add_argument("--host", help="address to listen on (RAG_HOST, default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, help="port to listen on (RAG_PORT, default 8000)")
    p_serve.add_argument("--workers", type=int, help="worker processes (RAG_WORKERS, default 1)")
    p_serve.set_defaults(func=cmd_serve)

    p_settings = sub.add_parser(
        "settings", help="print every RAG_* setting as a Markdown table (the README's)"
    )
    p_settings.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="replace the table between the settings markers in FILE (e.g. README.md) "
        "instead of printing it",
    )
    p_settings.set_defaults(func=cmd_settings)

    from eval.cli import register as register_eval

    register_eval(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except RagError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
