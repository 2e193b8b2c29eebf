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
from eval.squad import DEFAULT_PATH as SQUAD2_PATH

EVAL_DIR = Path(__file__).resolve().parent
REPO = EVAL_DIR.parent
DEFAULT_BASELINE = EVAL_DIR / "baseline.json"
DEFAULT_CACHE = REPO / "var" / "cache"
DEFAULT_TOLERANCE = 0.02  # eval.gate.DEFAULT_TOLERANCE (not imported: no models at parse time)
PLOT_NAME = "recall_at_k.png"
EXIT_FAIL = 1
SUBCOMMANDS = ("own", "check", "bench", "squad2", "learn-abstention")

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
        p.add_argument("--out-dir", type=Path, default=EVAL_DIR, help="where reports are written")
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


def _own_parser(p: argparse.ArgumentParser) -> None:
    _set_options(p, BOTH_SETS)
    _run_options(p)
    _baseline_option(p)
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


def _learn_parser(p: argparse.ArgumentParser) -> None:
    _set_options(p, "question file (default: eval/questions.jsonl, the seed-article set)")
    _run_options(p, modes=False)
    p.set_defaults(func=cmd_learn_abstention)


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
            description="The regression gate: rerun the question sets and compare them with "
            "eval/baseline.json and eval/baseline-squad.json. Writes nothing.",
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
    if args.threshold is not None:
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
    """Run ``command`` with this run's command line; a bad question file or option exits 1
    with its message."""
    try:
        return command(args, command_line(getattr(args, "_argv", None)))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL


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


def cmd_learn_abstention(args: argparse.Namespace) -> int:
    """``rag eval learn-abstention``: learn and write the abstention models."""
    return _guarded(_learn_abstention, args)


def _run_sets(args: argparse.Namespace, command: str) -> int:
    sets = [args.questions] if args.questions else [DEFAULT_QUESTIONS, SQUAD_QUESTIONS]
    if args.baseline is not None and len(sets) > 1:
        raise DatasetError("--baseline names one set's baseline: give --questions too")
    code = 0
    for path in sets:
        if len(sets) > 1:
            print(f"== {_shown(path)}")
        code |= run_own_set(argparse.Namespace(**{**vars(args), "questions": path}), command)
    return code


def set_name(questions: Path) -> str:
    """ "" for the seed-article set (eval/questions.jsonl), else the part of the file name
    after ``questions-`` ("squad")."""
    stem = questions.stem
    return "" if stem == "questions" else stem.removeprefix("questions-")


def run_own_set(args: argparse.Namespace, command: str) -> int:
    """One question set: run it, then check it against its baseline (``args.check``) or
    write its report (and, with ``args.update_baseline``, its baseline)."""
    from eval.calibration import calibrate
    from eval.dataset import SQUAD_PREFIX, load_question_set, parse_questions
    from eval.gate import make_baseline, run_check
    from eval.plots import plot_recall
    from eval.render import (
        calibration_markdown,
        calibration_section,
        markdown_report,
        text_table,
        update_report_file,
    )
    from eval.report import Baseline, build_report, report_meta
    from eval.runner import available_modes, eval_engine, mode_options, run_set

    name = set_name(args.questions)
    baseline_path: Path = args.baseline or EVAL_DIR / (
        f"baseline-{name}.json" if name else "baseline.json"
    )
    needs_squad = any(
        (q.doc_id or "").startswith(SQUAD_PREFIX) for q in parse_questions(args.questions)
    )
    if needs_squad and not args.squad.is_file():
        print(f"skipped: the stand-in articles need {args.squad} (../shared/benchmarks absent)")
        return 0
    settings = _settings(args)
    baseline: Baseline | None = None
    if args.check:
        if not baseline_path.is_file():
            print(
                f"error: no baseline at {baseline_path}; create it with "
                "`rag eval own --update-baseline`"
            )
            return EXIT_FAIL
        baseline = Baseline.read(baseline_path)
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
        modes = [_default_mode(settings)]
    else:
        modes = list(available)
    runnable = [m for m in modes if m in available]
    engine = eval_engine(settings, runnable)
    run = run_set(qset, engine, runnable, args.cache_dir, progress=not args.quiet)
    default_mode = _default_mode(settings)
    calibration = None
    if default_mode in run.outcomes and not name:  # thresholds are chosen on the seed set
        rule = "learned" if mode_options(default_mode).answer in engine.abstention else "threshold"
        calibration = calibrate(run.outcomes[default_mode], default_mode, rule)
    report = build_report(
        run.outcomes,
        0.0,  # outcomes hold margins over each mode's own threshold
        report_meta(run, command, engine.encoder.name),
        calibration,
    )
    if name:  # issue 14's targets are about the seed article; other sets are for breadth
        report = replace(report, targets=())
    print(text_table(report))
    missed = [t for t in report.targets if not t.met and t.mode in report.modes]
    for t in missed:
        print(f"target not met: {t.mode} {t.metric} {t.op} {t.target} (measured {t.value})")
    if args.calibrate and report.calibration is not None:
        print()
        print("\n".join(calibration_markdown(report.calibration)))
    questions = {q.id: q for q in qset.questions}
    if baseline is not None:
        code, text = run_check(baseline, report, questions)
        print()
        print(text)
        return code
    if args.no_write:
        return 0
    out: Path = args.out_dir
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
    if args.update_baseline:
        make_baseline(report, args.tolerance).write(baseline_path)
        print(f"baseline written: {baseline_path}")
    return 0


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
        update_report_file(args.out_dir / "report.md", {name: text})
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
        update_report_file(args.out_dir / "report.md", {"squad2": text})
    return 0


def _learn_abstention(args: argparse.Namespace, command: str) -> int:
    from eval.abstention import markdown, run_learning, write_models
    from eval.dataset import load_question_set
    from eval.render import update_report_file
    from eval.runner import ACCURATE, eval_engine

    settings = _settings(args)
    # The models are learned on signals seen without any learned abstention.
    engine = eval_engine(settings, [ACCURATE], abstention={})
    if engine.reranker is None:
        print("error: learning the accurate mode's rule needs the reranker", file=sys.stderr)
        return EXIT_FAIL
    questions = args.questions or DEFAULT_QUESTIONS
    qset = load_question_set(questions, squad_path=args.squad, data_dir=settings.data_dir)
    learned = run_learning(qset, engine, args.cache_dir, command=command, progress=not args.quiet)
    text = markdown(learned, command)
    print(text)
    if not args.no_write:
        write_models({mode: model for mode, (model, _) in learned.items()})
        update_report_file(args.out_dir / "report.md", {"abstention": text})
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
