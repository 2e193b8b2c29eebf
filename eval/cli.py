"""``rag eval``: the question sets in every retrieval mode, the regression gate, the abstention
calibration and learning, and the external benchmarks.

``register(subparsers)`` adds the ``eval`` command to ``rag``'s parser; it also runs as
``python -m eval.cli SUBCOMMAND [options]``.

* ``rag eval own`` (also plain ``rag eval``) — run both question sets (the seed article's,
  ``eval/questions.jsonl``, and the SQuAD stand-ins', ``eval/questions-squad.jsonl``;
  ``--questions`` picks one) in each mode, print one table per set, write ``eval/report.md``,
  ``eval/report[-squad].json`` and ``eval/recall_at_k[-squad].png``. ``--update-baseline``
  also rewrites the baselines; ``--calibrate`` chooses the abstention threshold on the
  calibration part of the set.
* ``rag eval check`` — compare each set with its baseline (``eval/baseline.json``,
  ``eval/baseline-squad.json``); exit 1 on a regression and list the questions whose result
  changed. Writes nothing.
* ``rag eval bench DIR`` and ``rag eval squad2 FILE`` — the external benchmarks.
* ``rag eval learn-abstention`` — learn the abstention models on the tuning half of the
  seed-article set and write ``rag/abstention/*.json``.
* ``rag eval static-query`` — build the static question table that
  ``RAG_FAST_QUERY_ENCODER=static`` uses (:mod:`rag.static_build`), from the external
  benchmark's training-half questions, into the model cache.
* ``rag eval distill-reranker`` — distil the bundled cross-encoder into a student with every
  other layer (:mod:`eval.distill`), labelled and trained on the benchmark's training-half
  questions, written as an ONNX folder that ``RAG_RERANKER=<folder>`` serves.
* ``rag eval attribution`` — speaker attribution (issue 18) scored against the hand-labelled
  sentences (:mod:`eval.attribution`), written to ``eval/report.md``'s attribution section.
* ``rag eval topic-margin`` — the who-said-what topic gap on the speaker questions, and the
  margin the tuning half chooses (:mod:`eval.topic_margin`), written to ``eval/report.md``.
* ``rag eval init`` — a starter question file from the articles (one line per paragraph,
  the span filled in, the question left blank); ``rag eval validate FILE`` — every line of a
  question file whose record is invalid or whose gold span no longer matches its article.

``own`` and ``check`` take ``--url URL`` to evaluate a running service over HTTP instead of
in process (:mod:`eval.http`), and ``--junit FILE``, ``--summary FILE`` and ``--report FILE``
to write JUnit XML, a Markdown summary and the report's JSON (:mod:`eval.ci`).
The issue's spelling ``rag eval --url URL --check --junit FILE`` is written
``rag eval check --url URL --junit FILE`` (the subcommand names what ``--check`` did).

Exit codes: 0 passed (or nothing to gate), 1 a regression (``check``) or problems found
(``validate``), 2 a usage or input error: a bad option, an unreadable or invalid question
file, a missing baseline, a service that cannot be reached or evaluated.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.dataset import DEFAULT_QUESTIONS, SQUAD_QUESTIONS, DatasetError
from eval.errors import HttpEvalError
from eval.squad import DEFAULT_PATH as SQUAD2_PATH

EVAL_DIR = Path(__file__).resolve().parent
REPO = EVAL_DIR.parent
DEFAULT_BASELINE = EVAL_DIR / "baseline.json"
DEFAULT_CACHE = REPO / "var" / "cache"
DEFAULT_BENCH = REPO.parent / "shared" / "benchmarks" / "retrieval_bench"
#: The benchmark's paragraphs split in two (eval.bench.split_by_paragraph): the static table
#: trains on questions about one half; bench/static_query.py evaluates on the other.
STATIC_SPLIT_SEED = 0
#: eval.distill.DEFAULT_LAYERS (not imported: no torch at parse time)
DISTILL_LAYERS = (0, 2, 4, 6, 8, 10)
DEFAULT_TOLERANCE = 0.02  # eval.gate.DEFAULT_TOLERANCE (not imported: no models at parse time)
PLOT_NAME = "recall_at_k.png"
EXIT_OK = 0
EXIT_FAIL = 1  # a regression (check), problems found (validate)
EXIT_USAGE = 2  # a usage or input error (argparse exits 2 on a bad option too)
TOKEN_ENV = "RAG_EVAL_TOKEN"  # eval.http.TOKEN_ENV (not imported: httpx at parse time)
SUBCOMMANDS = (
    "own",
    "check",
    "bench",
    "squad2",
    "learn-abstention",
    "static-query",
    "distill-reranker",
    "attribution",
    "topic-margin",
    "init",
    "validate",
)

Command = Callable[[argparse.Namespace, str], int]


# --------------------------------------------------------------------------- the parser


def _run_options(p: argparse.ArgumentParser, *, modes: bool = True, write: bool = True) -> None:
    """Options every subcommand has: settings overrides, the cache, output and progress."""
    p.add_argument("--data-dir", type=Path, help="articles folder for other document ids")
    if modes:
        p.add_argument(
            "--mode",
            action="append",
            dest="modes",
            help="mode to run: bm25, dense, hybrid (fast answers with that retrieval) or "
            "accurate (reranked hybrid); repeatable; default: every mode available",
        )
    p.add_argument("--threshold", type=float, help="abstention threshold (default: setting)")
    if write:
        p.add_argument(
            "--out-dir",
            type=Path,
            help="where reports are written (default: eval/; an --url run writes them only "
            "when this is given)",
        )
        p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="index/vector cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _set_options(p: argparse.ArgumentParser, questions_help: str) -> None:
    p.add_argument("--questions", type=Path, help=questions_help)
    p.add_argument(
        "--squad",
        type=Path,
        default=SQUAD2_PATH,
        help="SQuAD 2.0 file the stand-in articles (squad2-*) come from",
    )


def _baseline_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baseline",
        type=Path,
        help="baseline file (default: eval/baseline.json for the seed-article set, "
        "eval/baseline-<name>.json for eval/questions-<name>.jsonl)",
    )


BOTH_SETS = (
    "question file (default: both sets, eval/questions.jsonl about the seed article "
    "and eval/questions-squad.jsonl about the stand-ins)"
)


def _url_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        help="evaluate the service running at URL over HTTP (POST /ask, GET /documents/{id}) "
        "instead of in process, waiting out 429/503 Retry-After; modes hybrid and accurate "
        "unless --mode (a fast mode must be the service's RAG_RETRIEVAL_MODE); docs/ci.md",
    )
    p.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="NAME",
        help=f"environment variable holding a bearer token for --url (default {TOKEN_ENV}; "
        "sent only when set)",
    )


def _ci_options(p: argparse.ArgumentParser) -> None:
    _url_option(p)
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML to FILE")
    p.add_argument("--summary", type=Path, metavar="FILE", help="write a Markdown summary")
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write the report as JSON (eval/report.json's format) to FILE; a second set's "
        "file gets -<set> before the suffix",
    )


def _own_parser(p: argparse.ArgumentParser) -> None:
    _set_options(p, BOTH_SETS)
    _run_options(p)
    _baseline_option(p)
    _ci_options(p)
    p.add_argument("--update-baseline", action="store_true", help="run, then rewrite the baseline")
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="tolerated drop per metric (with --update-baseline)",
    )
    p.add_argument("--calibrate", action="store_true", help="choose the abstention threshold")
    p.set_defaults(func=cmd_own, check=False)


def _check_parser(p: argparse.ArgumentParser) -> None:
    _set_options(p, BOTH_SETS)
    _run_options(p, write=False)
    _baseline_option(p)
    _ci_options(p)
    p.set_defaults(
        func=cmd_check,
        check=True,
        update_baseline=False,
        calibrate=False,
        tolerance=DEFAULT_TOLERANCE,
        out_dir=EVAL_DIR,
        no_write=True,
    )


def _bench_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("bench", type=Path, metavar="DIR", help="retrieval_bench folder")
    _run_options(p)
    p.add_argument("--sample", type=int, help="questions per source (default: all)")
    p.add_argument(
        "--paragraphs",
        type=int,
        help="index only the sampled questions' gold paragraphs plus random others, "
        "up to this many (default: the whole corpus)",
    )
    p.add_argument("--distractors", action="store_true", help="add the distractors")
    p.add_argument("--seed", type=int, default=13, help="sampling seed")
    p.set_defaults(func=cmd_bench)


def _squad2_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("squad2", type=Path, metavar="FILE", help="SQuAD 2.0 dev JSON file")
    _run_options(p)
    p.add_argument("--sample", type=int, help="answerable and unanswerable questions each")
    p.add_argument("--articles", type=int, help="index this many articles (seeded)")
    p.add_argument("--seed", type=int, default=13, help="sampling seed")
    p.set_defaults(func=cmd_squad2)


def _init_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="articles folder (default: RAG_DATA_DIR, data/)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("questions-mine.jsonl"),
        metavar="FILE",
        help="the question file to write (default: questions-mine.jsonl)",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(func=cmd_init)


def _validate_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE", help="the question file to check")
    p.add_argument("--data-dir", type=Path, help="articles folder (default: RAG_DATA_DIR, data/)")
    p.add_argument(
        "--squad",
        type=Path,
        default=SQUAD2_PATH,
        help="SQuAD 2.0 file the stand-in articles (squad2-*) come from",
    )
    _url_option(p)
    p.set_defaults(func=cmd_validate)


def _learn_parser(p: argparse.ArgumentParser) -> None:
    _set_options(p, "question file (default: eval/questions.jsonl, the seed-article set)")
    _run_options(p, modes=False)
    p.set_defaults(func=cmd_learn_abstention)


def _static_query_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bench",
        type=Path,
        default=DEFAULT_BENCH,
        help="retrieval_bench folder whose questions train the table (default: "
        "../shared/benchmarks/retrieval_bench)",
    )
    p.add_argument(
        "--fit",
        type=int,
        help="train on this many of the training-half questions (default: all of them)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="where to write the table (default: RAG_STATIC_QUERY_TABLE, else the model cache)",
    )
    p.add_argument(
        "--vocabulary-from",
        type=Path,
        metavar="FILE",
        help="distil only the tokens of the training questions and of this text file, not "
        "the whole vocabulary (a quick table for tests)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_static_query)


def _distill_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bench",
        type=Path,
        default=DEFAULT_BENCH,
        help="retrieval_bench folder whose training-half questions are labelled (default: "
        "../shared/benchmarks/retrieval_bench)",
    )
    p.add_argument(
        "--questions",
        type=int,
        default=3000,
        help="training-half questions to label, 4 pairs each (default: 3000)",
    )
    p.add_argument(
        "--layers",
        default=",".join(str(i) for i in DISTILL_LAYERS),
        help="teacher layers the student keeps, comma-separated (default: every other one)",
    )
    p.add_argument("--steps", type=int, default=200, help="training steps of 32 pairs")
    p.add_argument(
        "--out",
        type=Path,
        help="student folder (default: the model cache, reranker-student-<layers>)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_distill)


def _attribution_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timing",
        action="store_true",
        help="also time attribution against indexing per paragraph (loads the encoder)",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        help="where report.md is updated and attribution.json written (default: eval/, and "
        "eval/attribution/report.json)",
    )
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.set_defaults(func=cmd_attribution)


def _topic_margin_parser(p: argparse.ArgumentParser) -> None:
    _set_options(p, "question file (default: eval/questions.jsonl, the seed-article set)")
    _run_options(p, modes=False)
    p.set_defaults(func=cmd_topic_margin)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommands of ``rag eval`` on ``p``; without one, ``rag eval`` runs ``own``."""
    sub = p.add_subparsers(dest="eval_command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    own = sub.add_parser(
        "own",
        help="run the question sets, print and write the reports (the default)",
        description="Run both question sets (or --questions) in each mode and write "
        "eval/report.md, eval/report[-squad].json and the Recall@k plots.",
    )
    _own_parser(own)
    _check_parser(
        sub.add_parser(
            "check",
            help="compare each set with its baseline; exit 1 on a regression",
            description="The regression gate: rerun the question sets (in process, or against "
            "a running service with --url) and compare them with eval/baseline.json and "
            "eval/baseline-squad.json. Writes only the --junit, --summary and --report files. "
            "Exit 0 passed, 1 regression, 2 usage or input error.",
        )
    )
    _bench_parser(
        sub.add_parser(
            "bench",
            help="the external retrieval benchmark (retrieval_bench)",
            description="Paragraph retrieval on ../shared/benchmarks/retrieval_bench.",
        )
    )
    _squad2_parser(
        sub.add_parser(
            "squad2",
            help="SQuAD 2.0 dev: answer spans and abstention",
            description="SQuAD 2.0 dev articles indexed and their questions asked.",
        )
    )
    _learn_parser(
        sub.add_parser(
            "learn-abstention",
            help="learn the abstention models and write rag/abstention/*.json",
            description="Learn the abstention models on the tuning half of the question set "
            "(--questions), report on the other half, and write rag/abstention/*.json.",
        )
    )
    _static_query_parser(
        sub.add_parser(
            "static-query",
            help="build the static question table for RAG_FAST_QUERY_ENCODER=static",
            description="Fit the static question table (rag/static_build.py, "
            "docs/static-query.md) on the questions about the half of the benchmark's "
            "paragraphs that its evaluations leave out (split seed 0), and write it with "
            "a JSON sidecar where the service looks for it. Takes about a minute.",
        )
    )
    _distill_parser(
        sub.add_parser(
            "distill-reranker",
            help="distil the bundled cross-encoder into a smaller one for RAG_RERANKER",
            description="Label (question, paragraph) pairs of the benchmark's training-half "
            "questions with the bundled cross-encoder, train a student made of every other "
            "teacher layer on them, and write it as a float32 ONNX folder (eval/distill.py, "
            "docs/benchmarks.md). About 40 minutes on two cores.",
        )
    )
    _attribution_parser(
        sub.add_parser(
            "attribution",
            help="score speaker attribution against the labelled sentences",
            description="Speaker attribution (issue 18, rag/attribution.py) against the "
            "hand-labelled sentences of eval/attribution/ (python -m eval.attribution's "
            "scoring): print it and rewrite eval/report.md's attribution section.",
        )
    )
    _topic_margin_parser(
        sub.add_parser(
            "topic-margin",
            help="measure the who-said-what topic gap; the margin the tuning half chooses",
            description="Ask the question set's speaker questions in fast and accurate mode, "
            "report how far the speaker's best statement scores below the best sentence "
            "(rag.pipeline.topic_gap) for the answerable and unanswerable ones, and the margin "
            "the tuning half chooses (eval/report.md's topic-margin section).",
        )
    )
    _init_parser(
        sub.add_parser(
            "init",
            help="write a starter question file from the articles",
            description="Write a starter question file: one line per paragraph of every "
            "article in the data folder, with the paragraph's span and text filled in and the "
            "question left blank for a person to write (docs/ci.md).",
        )
    )
    _validate_parser(
        sub.add_parser(
            "validate",
            help="check a question file against the articles; name the stale lines",
            description="Check every line of a question file: its record, and that its gold "
            "spans still match the article text (the data folder's, or the service's with "
            "--url). Exit 1 naming each line with a problem.",
        )
    )

    def own_by_default(args: argparse.Namespace) -> int:
        defaults = own.parse_args([])
        return cmd_own(argparse.Namespace(**{**vars(defaults), **vars(args)}))

    p.set_defaults(func=own_by_default)


def register(subparsers: Any) -> None:
    """Add ``eval`` to ``rag``'s sub-commands (``subparsers`` from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate retrieval, quoting and abstention",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_arguments(p)


def command_line(argv: Sequence[str] | None = None) -> str:
    """How this run was started, for the report."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "eval":
        args = args[1:]
    via_module = Path(sys.argv[0]).name == "cli.py" and argv is None
    prefix = "python -m eval.cli" if via_module else "rag eval"
    return " ".join([prefix, *(shlex.quote(a) for a in args)])


# --------------------------------------------------------------------------- wiring


def _settings(args: argparse.Namespace) -> Any:
    from rag.settings import get_settings

    settings = get_settings()
    updates: dict[str, Any] = {}
    if args.data_dir is not None:
        updates["data_dir"] = args.data_dir
    if getattr(args, "threshold", None) is not None:  # init and validate have none
        updates["abstain_threshold"] = args.threshold
    return settings.model_copy(update=updates) if updates else settings


def _default_mode(settings: Any) -> str:
    """The evaluated mode the service answers in by default."""
    from eval.runner import ACCURATE, available_modes

    wanted = settings.answer_mode or ("accurate" if settings.reranker else "fast")
    if wanted == "accurate" and ACCURATE in available_modes(settings.reranker):
        return ACCURATE
    return str(settings.retrieval_mode)


def _modes(args: argparse.Namespace) -> list[str]:
    from eval.runner import available_modes

    known = available_modes(_settings(args).reranker)
    modes = args.modes or list(known)
    unknown = [m for m in modes if m not in known]
    if unknown:
        raise DatasetError(f"unknown mode(s) {unknown}; the pipeline has {list(known)}")
    return modes


def _date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _shown(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def _guarded(command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` with this run's command line; a bad question file or option, or a
    service that cannot be evaluated, exits 2 with its message."""
    try:
        return command(args, command_line(getattr(args, "_argv", None)))
    except (DatasetError, HttpEvalError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# --------------------------------------------------------------------------- subcommands


def cmd_own(args: argparse.Namespace) -> int:
    """``rag eval own``: run the question sets and write the reports."""
    return _guarded(_run_sets, args)


def cmd_check(args: argparse.Namespace) -> int:
    """``rag eval check``: the regression gate (exit 1 on a regression)."""
    return _guarded(_run_sets, args)


def cmd_bench(args: argparse.Namespace) -> int:
    """``rag eval bench DIR``: the external retrieval benchmark."""
    return _guarded(_bench, args)


def cmd_squad2(args: argparse.Namespace) -> int:
    """``rag eval squad2 FILE``: SQuAD 2.0 dev answer spans and abstention."""
    return _guarded(_squad2, args)


def cmd_static_query(args: argparse.Namespace) -> int:
    """``rag eval static-query``: build the static question table."""
    return _guarded(_static_query, args)


def cmd_distill(args: argparse.Namespace) -> int:
    """``rag eval distill-reranker``: distil the bundled cross-encoder."""
    return _guarded(_distill, args)


def cmd_learn_abstention(args: argparse.Namespace) -> int:
    """``rag eval learn-abstention``: learn and write the abstention models."""
    return _guarded(_learn_abstention, args)


def cmd_attribution(args: argparse.Namespace) -> int:
    """``rag eval attribution``: speaker attribution against the labelled sentences."""
    return _guarded(_attribution, args)


def cmd_topic_margin(args: argparse.Namespace) -> int:
    """``rag eval topic-margin``: the who-said-what topic gap and its margin."""
    return _guarded(_topic_margin, args)


def cmd_init(args: argparse.Namespace) -> int:
    """``rag eval init``: a starter question file from the articles."""
    return _guarded(_init, args)


def cmd_validate(args: argparse.Namespace) -> int:
    """``rag eval validate FILE``: exit 1 naming every line with a problem."""
    return _guarded(_validate, args)


def _init(args: argparse.Namespace, command: str) -> int:
    from eval.authoring import starter_records, write_records
    from rag.load import load_data_dir

    data_dir: Path = args.data_dir or _settings(args).data_dir
    if not data_dir.is_dir():
        raise DatasetError(f"no articles folder at {data_dir}")
    out: Path = args.out
    if out.exists() and not args.force:
        raise DatasetError(f"{out} exists: give --force to overwrite it")
    documents = load_data_dir(data_dir)
    if not documents:
        raise DatasetError(f"no articles in {data_dir}")
    n = write_records(out, starter_records(documents))
    print(
        f"wrote {n} starter records ({len(documents)} article(s), one per paragraph) to {out}: "
        "write each question, narrow its gold span, then `rag eval validate " + f"{out}`"
    )
    return EXIT_OK


def _validate(args: argparse.Namespace, command: str) -> int:
    from collections.abc import Mapping
    from contextlib import suppress

    from core.types import Document
    from eval.authoring import validate_file
    from eval.dataset import SQUAD_PREFIX, resolve_documents

    path: Path = args.file
    if not path.is_file():
        raise DatasetError(f"no question file at {path}")
    answerer = None
    if args.url:
        from eval.http import HttpAnswerer

        answerer = HttpAnswerer.from_env(args.url, args.token_env)

    def documents_for(ids: list[str]) -> Mapping[str, Document]:
        if answerer is not None:
            found = {i: answerer.document(i) for i in ids}
            return {i: d for i, d in found.items() if d is not None}
        data_dir = args.data_dir or _settings(args).data_dir
        documents: dict[str, Document] = {}
        local = [i for i in ids if not i.startswith(SQUAD_PREFIX)]
        squad = [i for i in ids if i.startswith(SQUAD_PREFIX)]
        if local and data_dir.is_dir():
            from rag.load import load_data_dir

            documents.update({d.id: d for d in load_data_dir(data_dir) if d.id in local})
        for doc_id in squad:  # one at a time: a missing one is a problem of its lines only
            with suppress(DatasetError):
                documents.update(resolve_documents([doc_id], squad_path=args.squad, data_dir=None))
        return documents

    try:
        problems, count = validate_file(path, documents_for)
    finally:
        if answerer is not None:
            answerer.close()
    for problem in problems:
        print(f"{path}: {problem}")
    lines = len({p.line for p in problems})
    if problems:
        stale = sum(1 for p in problems if p.kind == "stale")
        print(
            f"{lines} of {count} line(s) need attention ({stale} with a gold span that no "
            "longer matches its article)"
        )
        return EXIT_FAIL
    print(f"{path}: all {count} records valid; every gold span matches its article")
    return EXIT_OK


def _run_sets(args: argparse.Namespace, command: str) -> int:
    sets = [args.questions] if args.questions else [DEFAULT_QUESTIONS, SQUAD_QUESTIONS]
    if args.baseline is not None and len(sets) > 1:
        raise DatasetError("--baseline names one set's baseline: give --questions too")
    url = getattr(args, "url", None)
    if url and args.calibrate:
        raise DatasetError("--calibrate needs the confidence margins of an in-process run")
    if url and args.threshold is not None:
        raise DatasetError("--threshold applies in process; a service keeps its own thresholds")
    results: list[Any] = []
    answerer = None
    if url:
        from eval.http import HttpAnswerer

        answerer = HttpAnswerer.from_env(url, args.token_env)
    try:
        code = EXIT_OK
        for path in sets:
            if len(sets) > 1:
                print(f"== {_shown(path)}")
            set_args = argparse.Namespace(
                **{**vars(args), "questions": path, "named_set": bool(args.questions)}
            )
            code = max(code, run_own_set(set_args, command, results=results, answerer=answerer))
    finally:
        if answerer is not None:
            answerer.close()
    if answerer is not None and not results:
        raise DatasetError(f"{url} serves none of the documents of the question sets")
    _write_ci_outputs(args, results)
    return code


def _write_ci_outputs(args: argparse.Namespace, results: list[Any]) -> None:
    """``--junit``, ``--summary`` and ``--report`` of the sets that ran."""
    junit: Path | None = getattr(args, "junit", None)
    summary: Path | None = getattr(args, "summary", None)
    report_path: Path | None = getattr(args, "report", None)
    if not (junit or summary or report_path):
        return
    from eval.ci import junit_xml, summary_markdown
    from eval.report import write_text

    if junit is not None:
        write_text(junit, junit_xml(results))
        print(f"JUnit XML written: {junit}")
    if summary is not None:
        write_text(summary, summary_markdown(results))
        print(f"summary written: {summary}")
    if report_path is not None:
        for n, result in enumerate(results):
            path = report_path
            if n:
                path = report_path.with_name(f"{report_path.stem}-{result.key}{report_path.suffix}")
            result.report.write(path)
            print(f"report written: {path}")


def set_name(questions: Path) -> str:
    """ "" for the seed-article set (eval/questions.jsonl), else the part of the file name
    after ``questions-`` ("squad")."""
    stem = questions.stem
    return "" if stem == "questions" else stem.removeprefix("questions-")


def _http_modes(args: argparse.Namespace, baseline_modes: Sequence[str] | None) -> list[str]:
    from eval.http import DEFAULT_HTTP_MODES, check_http_modes

    if args.modes:
        return check_http_modes(args.modes)
    if baseline_modes is not None:
        return [m for m in DEFAULT_HTTP_MODES if m in baseline_modes]
    return list(DEFAULT_HTTP_MODES)


def run_own_set(
    args: argparse.Namespace,
    command: str,
    *,
    results: list[Any] | None = None,
    answerer: Any = None,
) -> int:
    """One question set: run it (in process, or over HTTP with ``answerer``), then check it
    against its baseline (``args.check``) or write its report (and, with
    ``args.update_baseline``, its baseline). ``results`` collects an
    :class:`eval.ci.SetResult` for the CI outputs."""
    from eval.calibration import calibrate
    from eval.ci import SetResult
    from eval.dataset import SQUAD_PREFIX, load_question_set, parse_questions
    from eval.gate import check_against_baseline, format_check, make_baseline
    from eval.plots import plot_recall
    from eval.render import (
        calibration_markdown,
        calibration_section,
        markdown_report,
        text_table,
        update_report_file,
    )
    from eval.report import Baseline, build_report, report_meta

    name = set_name(args.questions)
    baseline_path: Path = args.baseline or EVAL_DIR / (
        f"baseline-{name}.json" if name else "baseline.json"
    )
    settings = _settings(args)
    baseline: Baseline | None = None
    if args.check:
        if not baseline_path.is_file():
            raise DatasetError(
                f"no baseline at {baseline_path}; create it with "
                f"`rag eval own --questions {args.questions} --update-baseline"
                + (f" --url {answerer.url}`" if answerer is not None else "`")
            )
        baseline = Baseline.read(baseline_path)
    calibration = None
    default_mode = _default_mode(settings) if answerer is None else None
    if answerer is not None:
        from eval.http import run_set as run_http_set
        from eval.http import served_question_set

        model = str(answerer.ready().get("model", ""))
        served = served_question_set(args.questions, answerer)
        if served is None:
            message = f"{answerer.url} serves none of {_shown(args.questions)}'s documents"
            if getattr(args, "named_set", False):  # the set asked for: an input error
                raise DatasetError(message)
            print(f"skipped: {message}")
            return EXIT_OK
        modes = _http_modes(args, list(baseline.modes) if baseline is not None else None)
        if baseline is not None:
            baseline = baseline.only(modes)
        qset = served
        run = run_http_set(qset, answerer, modes, settings, progress=not args.quiet)
        if answerer.retried:
            print(
                f"{answerer.url} asked to wait {answerer.retried} times "
                f"({answerer.waited:.0f} s in all, Retry-After honoured)"
            )
    else:
        from eval.runner import available_modes, eval_engine, mode_options, run_set

        needs_squad = any(
            (q.doc_id or "").startswith(SQUAD_PREFIX) for q in parse_questions(args.questions)
        )
        if needs_squad and not args.squad.is_file():
            print(f"skipped: the stand-in articles need {args.squad} (../shared/benchmarks absent)")
            return EXIT_OK
        qset = load_question_set(args.questions, squad_path=args.squad, data_dir=settings.data_dir)
        available = available_modes(settings.reranker)
        if args.modes:
            modes = _modes(args)
            if baseline is not None:  # check only the modes asked for
                baseline = baseline.only(modes)
        elif baseline is not None:
            modes = [m for m in available if m in baseline.modes]
            modes += [m for m in baseline.modes if m not in modes]  # a missing mode fails
        elif args.calibrate and not args.update_baseline:
            modes = [str(default_mode)]
        else:
            modes = list(available)
        runnable = [m for m in modes if m in available]
        engine = eval_engine(settings, runnable)
        run = run_set(qset, engine, runnable, args.cache_dir, progress=not args.quiet)
        model = engine.encoder.name
        if default_mode in run.outcomes and not name:  # thresholds are chosen on the seed set
            rule = (
                "learned" if mode_options(default_mode).answer in engine.abstention else "threshold"
            )
            calibration = calibrate(run.outcomes[default_mode], default_mode, rule)
    report = build_report(
        run.outcomes,
        0.0,  # outcomes hold margins over each mode's own threshold
        report_meta(run, command, model),
        calibration,
    )
    if name:  # the issues' targets are about the seed article; other sets are for breadth
        report = replace(report, targets=())
    print(text_table(report))
    missed = [t for t in report.targets if not t.met and t.mode in report.modes]
    for t in missed:
        print(f"target not met: {t.mode} {t.metric} {t.op} {t.target} (measured {t.value})")
    if args.calibrate and report.calibration is not None:
        print()
        print("\n".join(calibration_markdown(report.calibration)))
    questions = {q.id: q for q in qset.questions}
    check = check_against_baseline(baseline, report) if baseline is not None else None
    if results is not None:
        results.append(
            SetResult(
                name=str(_shown(args.questions)),
                report=report,
                questions=questions,
                baseline=baseline,
                check=check,
                source=f"service at {answerer.url}" if answerer is not None else "in process",
            )
        )
    if baseline is not None and check is not None:
        print()
        print(format_check(check, questions))
        return EXIT_OK if check.ok else EXIT_FAIL
    out: Path | None = args.out_dir
    if answerer is not None and args.update_baseline:
        make_baseline(report, args.tolerance).write(baseline_path)
        print(f"baseline written: {baseline_path}")
    # An HTTP run writes this repository's reports only when --out-dir is given.
    if args.no_write or (out is None and answerer is not None):
        return EXIT_OK
    out = out or EVAL_DIR
    sections: dict[str, str] = {}
    if args.calibrate and set(modes) == {default_mode}:
        if report.calibration is not None:  # a calibration run only rewrites its section
            sections["calibration"] = calibration_section(report.calibration)
    else:
        plot = f"recall_at_k-{name}.png" if name else PLOT_NAME
        plot_recall(report, out / plot)
        report.write(out / (f"report-{name}.json" if name else "report.json"))
        sections[f"own-{name}" if name else "own"] = markdown_report(report, questions, plot)
        if report.calibration is not None:
            sections["calibration"] = calibration_section(report.calibration)
    update_report_file(out / "report.md", sections)
    if args.update_baseline and answerer is None:
        make_baseline(report, args.tolerance).write(baseline_path)
        print(f"baseline written: {baseline_path}")
    return EXIT_OK


def _bench(args: argparse.Namespace, command: str) -> int:
    from eval.bench import bench_markdown, run_bench
    from eval.render import update_report_file
    from eval.runner import eval_engine

    root: Path = args.bench
    if not (root / "corpus.jsonl").is_file():
        print(f"skipped: no retrieval benchmark at {root} (../shared/benchmarks absent)")
        return 0
    modes = _modes(args)
    result = run_bench(
        root,
        eval_engine(_settings(args), modes),
        modes,
        args.cache_dir,
        sample=args.sample,
        paragraphs=args.paragraphs,
        distractors=args.distractors,
        seed=args.seed,
        progress=not args.quiet,
    )
    text = bench_markdown(result, command, _date())
    print(text)
    if not args.no_write:
        name = "bench-distractors" if args.distractors else "bench"
        update_report_file((args.out_dir or EVAL_DIR) / "report.md", {name: text})
    return 0


def _squad2(args: argparse.Namespace, command: str) -> int:
    from eval.bench import run_squad2, squad2_markdown
    from eval.render import update_report_file
    from eval.runner import eval_engine

    path: Path = args.squad2
    if not path.is_file():
        print(f"skipped: no SQuAD 2.0 file at {path} (../shared/benchmarks absent)")
        return 0
    modes = _modes(args)
    result = run_squad2(
        path,
        eval_engine(_settings(args), modes),
        modes,
        args.cache_dir,
        sample=args.sample,
        articles=args.articles,
        seed=args.seed,
        progress=not args.quiet,
    )
    text = squad2_markdown(result, command, _date())
    print(text)
    if not args.no_write:
        update_report_file((args.out_dir or EVAL_DIR) / "report.md", {"squad2": text})
    return 0


def _attribution(args: argparse.Namespace, command: str) -> int:
    from eval import attribution
    from eval.render import attribution_section, update_report_file
    from rag.attribution import load as load_parser

    parts: tuple[str, ...] = attribution.PARTS
    if not attribution.BENCHMARKS.is_dir():
        print(f"the stand-in sentences need {attribution.BENCHMARKS}: scoring the seed only")
        parts = ("seed",)
    parser = load_parser()
    scores, elapsed, paragraphs = attribution.run(parser, parts=parts)
    print(attribution.render(scores))
    timing = None
    if args.timing:
        timing = attribution.timing(attribution.timing_documents(), parser).summary()
        print(f"indexing with attribution: {timing['ratio_with_attribution']}x without")
    text = attribution_section(
        {p: s.summary() for p, s in scores.items()}, command, _date(), timing
    )
    if not args.no_write and parts == attribution.PARTS:
        update_report_file((args.out_dir or EVAL_DIR) / "report.md", {"attribution": text})
        json_out = attribution.REPORT if args.out_dir is None else args.out_dir / "attribution.json"
        attribution.write_report(json_out, scores, elapsed, paragraphs, timing)
    return EXIT_OK


def _topic_margin(args: argparse.Namespace, command: str) -> int:
    from eval import topic_margin
    from eval.dataset import load_question_set
    from eval.render import update_report_file
    from eval.runner import ACCURATE, eval_engine, index_dir_for, open_eval_corpus

    settings = _settings(args)
    engine = eval_engine(settings, [ACCURATE])
    questions = args.questions or DEFAULT_QUESTIONS
    qset = load_question_set(questions, squad_path=args.squad, data_dir=settings.data_dir)
    corpus = open_eval_corpus(
        list(qset.documents.values()),
        engine.encoder,
        settings,
        index_dir_for(args.cache_dir, engine.encoder),
        progress=not args.quiet,
    )
    gaps = topic_margin.measure(qset.questions, corpus, engine, progress=not args.quiet)
    if not any(g.gap is not None for g in gaps):
        raise DatasetError(f"no speaker question of {questions} had its topic gap measured")
    text = topic_margin.markdown(gaps, command, _date())
    print(text)
    if not args.no_write:
        update_report_file((args.out_dir or EVAL_DIR) / "report.md", {"topic-margin": text})
    return EXIT_OK


def _static_query(args: argparse.Namespace, command: str) -> int:
    import random

    from eval.bench import load_bench, split_by_paragraph
    from rag.embed import resolve_model_path
    from rag.engine import Engine
    from rag.settings import get_settings
    from rag.static_build import fit, write
    from rag.static_query import table_path

    settings = get_settings()
    if not (args.bench / "queries.jsonl").is_file():
        raise DatasetError(f"no benchmark questions at {args.bench / 'queries.jsonl'}")
    if args.fit is not None and args.fit < 20:
        raise DatasetError(f"--fit must be at least 20, not {args.fit}")
    vocab = None if args.vocabulary_from is None else args.vocabulary_from.read_text("utf-8")
    train, _ = split_by_paragraph(load_bench(args.bench), STATIC_SPLIT_SEED)
    if args.fit and args.fit < len(train):
        train = random.Random(STATIC_SPLIT_SEED).sample(sorted(train, key=lambda q: q.id), args.fit)
    say = (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    # The teacher is the model the service encodes passages with (not the table being built).
    model_only = settings.model_copy(update={"fast_query_encoder": "model"})
    teacher = Engine(model_only, use_reranker="off").load_models().encoder
    folder = Path(resolve_model_path(settings.model))
    fitted = fit(
        folder,
        teacher,
        [q.text for q in train],
        vocabulary=None if vocab is None else vocab.splitlines(),
        say=say,
    )
    out = args.out or table_path(settings)
    write(
        fitted,
        out,
        command=command,
        data=f"{args.bench.name}: split seed "
        f"{STATIC_SPLIT_SEED}, the training half's {len(train)} questions",
    )
    cosine = fitted.provenance["validation_cosine"]["tuned"]
    print(f"wrote {out} ({len(train)} questions, validation cosine {cosine:.3f})")
    return EXIT_OK


def _distill(args: argparse.Namespace, command: str) -> int:
    import random
    from dataclasses import asdict

    from eval.bench import load_bench, split_by_paragraph
    from eval.distill import (
        STAND_IN_TITLES,
        TrainConfig,
        dequantize,
        export,
        student_state,
        teacher_pairs,
        train,
    )
    from rag.embed import default_model_cache
    from rag.engine import Engine
    from rag.onnx import resolve_onnx_model
    from rag.rerank import BUNDLED_RERANKER
    from rag.settings import get_settings

    try:
        layers = tuple(int(v) for v in args.layers.split(","))
    except ValueError:
        raise DatasetError(f"--layers takes comma-separated numbers, not {args.layers!r}") from None
    if args.questions < 10 or args.steps < 1:
        raise DatasetError("--questions must be at least 10 and --steps at least 1")
    if not (args.bench / "queries.jsonl").is_file():
        raise DatasetError(f"no benchmark questions at {args.bench / 'queries.jsonl'}")
    say = (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    settings = get_settings().model_copy(update={"reranker": BUNDLED_RERANKER})
    folder = resolve_onnx_model(BUNDLED_RERANKER)
    config = TrainConfig(layers=layers, steps=args.steps)
    state = student_state(dequantize(folder / "model.onnx"), layers)  # checks the layers
    data = load_bench(args.bench)
    titles = _bench_titles(args.bench)
    train_half, _ = split_by_paragraph(data, STATIC_SPLIT_SEED)
    pool = sorted(
        (q for q in train_half if titles.get(q.relevant[0]) not in STAND_IN_TITLES),
        key=lambda q: q.id,
    )
    chosen = random.Random(STATIC_SPLIT_SEED).sample(pool, min(args.questions, len(pool)))
    # exact integer arithmetic: the same labels on every CPU (the VNNI ones)
    engine = Engine(settings, use_reranker="required", exact_reranker=True)
    teacher = engine.load_models().reranker
    if teacher is None:  # pragma: no cover - "required" raises first
        raise DatasetError("the bundled cross-encoder is not installed (make setup)")
    say(f"labelling {len(chosen)} questions with the bundled cross-encoder")
    pairs = teacher_pairs(
        teacher.score, [(q.text, q.relevant[0]) for q in chosen], data.texts, say=say
    )
    say(f"training a {len(layers)}-layer student for {config.steps} steps")
    model = train(state, pairs, folder, config, say=say)
    name = "reranker-student-" + "-".join(str(i) for i in layers)
    out = (
        args.out
        or (Path(settings.model_cache_dir) if settings.model_cache_dir else default_model_cache())
        / name
    )
    export(
        model,
        out,
        folder,
        {
            "command": command,
            "teacher": BUNDLED_RERANKER,
            "data": f"{args.bench.name}: split seed {STATIC_SPLIT_SEED}, {len(chosen)} "
            f"training-half questions, {len(pairs)} pairs",
            "train": asdict(config),  # JSON writes the layers tuple as a list
        },
    )
    print(f"wrote {out} (serve it with RAG_RERANKER={out})")
    return EXIT_OK


def _bench_titles(bench: Path) -> dict[str, str]:
    """Paragraph id -> article title, from the benchmark's corpus file (load_bench keeps no
    titles)."""
    from eval.bench import read_jsonl

    return {row["_id"]: row.get("title", "") for row in read_jsonl(bench / "corpus.jsonl")}


def _learn_abstention(args: argparse.Namespace, command: str) -> int:
    from eval.abstention import markdown, run_learning, write_folder_model, write_models
    from eval.dataset import load_question_set
    from eval.render import update_report_file
    from eval.runner import ACCURATE, eval_engine
    from rag.abstain import reranker_folder

    settings = _settings(args)
    # The models are learned on signals seen without any learned abstention.
    engine = eval_engine(settings, [ACCURATE], abstention={})
    if engine.reranker is None:
        print("error: learning the accurate mode's rule needs the reranker", file=sys.stderr)
        return EXIT_FAIL
    questions = args.questions or DEFAULT_QUESTIONS
    qset = load_question_set(questions, squad_path=args.squad, data_dir=settings.data_dir)
    # Static questions (RAG_FAST_QUERY_ENCODER=static) have fast-mode parameters of their own,
    # in their own file and report section; accurate mode never uses them. A cross-encoder
    # served from a folder gets accurate parameters of its own, written into its folder: the
    # shipped files and the report's section stay the bundled models'.
    variant = "static" if settings.fast_query_encoder == "static" else ""
    folder = reranker_folder(engine.reranker.name)
    modes = ("fast",) if variant else ("accurate",) if folder else ("fast", "accurate")
    learned = run_learning(
        qset, engine, args.cache_dir, command=command, progress=not args.quiet, modes=modes
    )
    text = markdown(learned, command, variant)
    print(text)
    if args.no_write:
        return 0
    if folder is not None:
        path = write_folder_model(learned[ACCURATE][0], folder)
        print(f"wrote {path} (served with RAG_RERANKER={folder})", file=sys.stderr)
        return 0
    write_models({mode: model for mode, (model, _) in learned.items()}, variant=variant)
    section = f"abstention-{variant}" if variant else "abstention"
    update_report_file((args.out_dir or EVAL_DIR) / "report.md", {section: text})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eval.cli SUBCOMMAND [options]``."""
    parser = argparse.ArgumentParser(prog="rag eval", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args._argv = argv
    from core.errors import RagError

    try:
        return int(args.func(args))
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
