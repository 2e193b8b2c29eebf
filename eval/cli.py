"""``rag eval``: the question set in every retrieval mode, the regression check, the abstention
calibration, and the external benchmarks.

``register(subparsers)`` adds the ``eval`` command to ``rag``'s parser; until it is wired in,
run it as ``python -m eval.cli [options]``.

* ``rag eval`` — run both question sets (the seed article's, ``eval/questions.jsonl``, and
  the SQuAD stand-ins', ``eval/questions-squad.jsonl``; ``--questions`` picks one) in each
  mode, print one table per set, write ``eval/report.md``, ``eval/report[-squad].json`` and
  ``eval/recall_at_k[-squad].png``.
* ``rag eval --check`` — compare each set with its baseline (``eval/baseline.json``,
  ``eval/baseline-squad.json``); exit 1 on a regression and list the questions whose result
  changed. Writes nothing. ``--update-baseline`` rewrites them.
* ``rag eval --calibrate`` — choose the abstention threshold on a calibration part of the set.
* ``rag eval --bench DIR`` and ``rag eval --squad2 FILE`` — the external benchmarks.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.dataset import DEFAULT_QUESTIONS, SQUAD_QUESTIONS, DatasetError
from eval.squad import DEFAULT_PATH as SQUAD2_PATH

EVAL_DIR = Path(__file__).resolve().parent
REPO = EVAL_DIR.parent
DEFAULT_BASELINE = EVAL_DIR / "baseline.json"
DEFAULT_CACHE = REPO / "var" / "cache"
PLOT_NAME = "recall_at_k.png"
EXIT_FAIL = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    own = p.add_argument_group("own question set")
    own.add_argument(
        "--questions",
        type=Path,
        help="question file (default: both sets, eval/questions.jsonl about the seed article "
        "and eval/questions-squad.jsonl about the stand-ins; --learn-abstention: the first)",
    )
    own.add_argument(
        "--squad",
        type=Path,
        default=SQUAD2_PATH,
        help="SQuAD 2.0 file the stand-in articles (squad2-*) come from",
    )
    own.add_argument("--data-dir", type=Path, help="articles folder for other document ids")
    own.add_argument(
        "--mode",
        action="append",
        dest="modes",
        help="mode to run: bm25, dense, hybrid (fast answers with that retrieval) or "
        "accurate (reranked hybrid); repeatable; default: every mode available",
    )
    own.add_argument("--threshold", type=float, help="abstention threshold (default: setting)")
    own.add_argument("--out-dir", type=Path, default=EVAL_DIR, help="where reports are written")
    own.add_argument("--no-write", action="store_true", help="print only, write no files")
    own.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="index/vector cache")
    own.add_argument("--quiet", action="store_true", help="no progress bars")

    gate = p.add_argument_group("regression gate")
    gate.add_argument("--check", action="store_true", help="compare with the baseline")
    gate.add_argument(
        "--baseline",
        type=Path,
        help="baseline file (default: eval/baseline.json for the seed-article set, "
        "eval/baseline-<name>.json for eval/questions-<name>.jsonl)",
    )
    gate.add_argument(
        "--update-baseline", action="store_true", help="run, then rewrite the baseline"
    )
    gate.add_argument(
        "--tolerance", type=float, default=0.02, help="tolerated drop per metric (baseline)"
    )
    gate.add_argument("--calibrate", action="store_true", help="choose the abstention threshold")

    ext = p.add_argument_group("external benchmarks (../shared/benchmarks)")
    ext.add_argument("--bench", type=Path, metavar="DIR", help="retrieval_bench folder")
    ext.add_argument("--squad2", type=Path, metavar="FILE", help="SQuAD 2.0 dev JSON file")
    ext.add_argument(
        "--sample",
        type=int,
        help="bench: questions per source; squad2: answerable and unanswerable questions each",
    )
    ext.add_argument(
        "--paragraphs",
        type=int,
        help="bench: index only the sampled questions' gold paragraphs plus random others, "
        "up to this many (default: the whole corpus)",
    )
    ext.add_argument("--distractors", action="store_true", help="bench: add the distractors")
    ext.add_argument("--articles", type=int, help="squad2: index this many articles (seeded)")
    ext.add_argument("--seed", type=int, default=13, help="sampling seed")
    ext.add_argument(
        "--learn-abstention",
        action="store_true",
        help="learn the abstention models on the tuning half of the question set (--questions), "
        "report on the other half, and write rag/abstention/*.json",
    )


def register(subparsers: Any) -> None:
    """Add ``eval`` to ``rag``'s sub-commands (``subparsers`` from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate retrieval, quoting and abstention",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_arguments(p)
    p.set_defaults(func=cmd_eval)


def command_line(argv: Sequence[str] | None = None) -> str:
    """How this run was started, for the report."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "eval":
        args = args[1:]
    via_module = Path(sys.argv[0]).name == "cli.py" and argv is None
    prefix = "python -m eval.cli" if via_module else "rag eval"
    return " ".join([prefix, *(shlex.quote(a) for a in args)])


def _settings(args: argparse.Namespace) -> Any:
    from rag.settings import get_settings

    settings = get_settings()
    updates: dict[str, Any] = {}
    if args.data_dir is not None:
        updates["data_dir"] = args.data_dir
    if args.threshold is not None:
        updates["abstain_threshold"] = args.threshold
    return settings.model_copy(update=updates) if updates else settings


def _encoder(settings: Any) -> Any:
    from rag.embed import make_encoder

    return make_encoder(settings).load()


def _reranker(settings: Any, modes: Sequence[str]) -> Any:
    """The loaded cross-encoder when ``accurate`` is among the modes, else None."""
    from eval.run import ACCURATE
    from rag.rerank import make_reranker

    # Exact integer arithmetic: the gate gives the same verdict on every CPU.
    reranker = make_reranker(settings, exact=True) if ACCURATE in modes else None
    return reranker.load() if reranker is not None else None


def _abstention(settings: Any, encoder: Any, reranker: Any) -> Any:
    """The learned abstention models that apply to these models (by mode)."""
    from rag.abstain import models_for

    return models_for(
        settings,
        encoder=encoder.query_name,
        reranker=reranker.name if reranker is not None else None,
    )


def _default_mode(settings: Any) -> str:
    """The evaluated mode the service answers in by default."""
    from eval.run import ACCURATE, available_modes

    wanted = settings.answer_mode or ("accurate" if settings.reranker else "fast")
    if wanted == "accurate" and ACCURATE in available_modes(settings.reranker):
        return ACCURATE
    return str(settings.retrieval_mode)


def _modes(args: argparse.Namespace) -> list[str]:
    from eval.run import available_modes

    known = available_modes(_settings(args).reranker)
    modes = args.modes or list(known)
    unknown = [m for m in modes if m not in known]
    if unknown:
        raise DatasetError(f"unknown mode(s) {unknown}; the pipeline has {list(known)}")
    return modes


def _date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def cmd_bench(args: argparse.Namespace, command: str) -> int:
    from eval.bench import bench_markdown, run_bench
    from eval.run import update_report_file

    root: Path = args.bench
    if not (root / "corpus.jsonl").is_file():
        print(f"skipped: no retrieval benchmark at {root} (../shared/benchmarks absent)")
        return 0
    settings = _settings(args)
    modes = _modes(args)
    result = run_bench(
        root,
        _encoder(settings),
        settings,
        modes,
        args.cache_dir,
        reranker=_reranker(settings, modes),
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


def cmd_squad2(args: argparse.Namespace, command: str) -> int:
    from eval.bench import run_squad2, squad2_markdown
    from eval.run import update_report_file

    path: Path = args.squad2
    if not path.is_file():
        print(f"skipped: no SQuAD 2.0 file at {path} (../shared/benchmarks absent)")
        return 0
    settings = _settings(args)
    modes = _modes(args)
    encoder = _encoder(settings)
    reranker = _reranker(settings, modes)
    result = run_squad2(
        path,
        encoder,
        settings,
        modes,
        args.cache_dir,
        reranker=reranker,
        abstention=_abstention(settings, encoder, reranker),
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


def set_name(questions: Path) -> str:
    """ "" for the seed-article set (eval/questions.jsonl), else the part of the file name
    after ``questions-`` ("squad")."""
    stem = questions.stem
    return "" if stem == "questions" else stem.removeprefix("questions-")


def cmd_own(args: argparse.Namespace, command: str) -> int:
    from eval import run as R
    from eval.dataset import SQUAD_PREFIX, load_question_set, parse_questions

    name = set_name(args.questions)
    if args.baseline is None:
        args.baseline = EVAL_DIR / (f"baseline-{name}.json" if name else "baseline.json")

    needs_squad = any(
        (q.doc_id or "").startswith(SQUAD_PREFIX) for q in parse_questions(args.questions)
    )
    if needs_squad and not args.squad.is_file():
        print(f"skipped: the stand-in articles need {args.squad} (../shared/benchmarks absent)")
        return 0
    settings = _settings(args)
    baseline: dict[str, Any] | None = None
    if args.check:
        if not args.baseline.is_file():
            print(f"error: no baseline at {args.baseline}; create it with --update-baseline")
            return EXIT_FAIL
        baseline = json.loads(args.baseline.read_text(encoding="utf-8"))
    qset = load_question_set(args.questions, squad_path=args.squad, data_dir=settings.data_dir)
    if args.modes:
        modes = _modes(args)
        if baseline is not None:  # check only the modes asked for
            baseline = {
                **baseline,
                "modes": {m: v for m, v in baseline["modes"].items() if m in modes},
                "questions": {m: v for m, v in baseline["questions"].items() if m in modes},
            }
    elif baseline is not None:
        modes = [m for m in R.available_modes(settings.reranker) if m in baseline["modes"]]
        modes += [m for m in baseline["modes"] if m not in modes]  # a missing mode fails
    elif args.calibrate and not args.update_baseline:
        modes = [_default_mode(settings)]
    else:
        modes = list(R.available_modes(settings.reranker))
    encoder = _encoder(settings)
    runnable = [m for m in modes if m in R.available_modes(settings.reranker)]
    reranker = _reranker(settings, runnable)
    abstention = _abstention(settings, encoder, reranker)
    run = R.run_set(
        qset,
        encoder,
        settings,
        runnable,
        args.cache_dir,
        progress=not args.quiet,
        reranker=reranker,
        abstention=abstention,
    )
    default_mode = _default_mode(settings)
    calibration = None
    if default_mode in run.outcomes and not name:  # thresholds are chosen on the seed set
        options = R.answer_options(default_mode)
        rule = "learned" if options["mode"] in abstention else "threshold"
        calibration = R.calibrate(run.outcomes[default_mode], default_mode, rule)
    report = R.build_report(
        run.outcomes,
        0.0,  # outcomes hold margins over each mode's own threshold
        R.report_meta(run, command, encoder),
        calibration,
    )
    if name:  # issue 14's targets are about the seed article; other sets are for breadth
        report["targets"] = []
    print(R.text_table(report))
    missed = [t for t in report["targets"] if not t["met"] and t["mode"] in report["modes"]]
    for t in missed:
        print(
            f"target not met: {t['mode']} {t['metric']} {t['op']} {t['target']} "
            f"(measured {t['value']})"
        )
    cal_json = report.get("calibration")
    if args.calibrate and cal_json:
        print()
        print("\n".join(R.calibration_markdown(cal_json)))
    questions = {q.id: q for q in qset.questions}
    if baseline is not None:
        code, text = R.run_check(baseline, report, questions)
        print()
        print(text)
        return code
    if args.no_write:
        return 0
    out: Path = args.out_dir
    sections: dict[str, str] = {}
    if args.calibrate and set(modes) == {default_mode}:
        if cal_json:  # a calibration run only rewrites the calibration section
            sections["calibration"] = "## Abstention threshold\n\n" + "\n".join(
                R.calibration_markdown(cal_json)
            )
    else:
        plot = f"recall_at_k-{name}.png" if name else PLOT_NAME
        R.plot_recall(report, out / plot)
        _write_json(out / (f"report-{name}.json" if name else "report.json"), report)
        sections[f"own-{name}" if name else "own"] = R.markdown_report(report, questions, plot)
        if cal_json:
            sections["calibration"] = "## Abstention threshold\n\n" + "\n".join(
                R.calibration_markdown(cal_json)
            )
    R.update_report_file(out / "report.md", sections)
    if args.update_baseline:
        _write_json(args.baseline, R.make_baseline(report, args.tolerance))
        print(f"baseline written: {args.baseline}")
    return 0


def cmd_learn_abstention(args: argparse.Namespace, command: str) -> int:
    from eval.abstention import markdown, run_learning, write_models
    from eval.dataset import load_question_set
    from eval.run import update_report_file

    settings = _settings(args)
    reranker = _reranker(settings, ["accurate"])
    if reranker is None:
        print("error: learning the accurate mode's rule needs the reranker", file=sys.stderr)
        return EXIT_FAIL
    questions = args.questions or DEFAULT_QUESTIONS
    qset = load_question_set(questions, squad_path=args.squad, data_dir=settings.data_dir)
    learned = run_learning(
        qset,
        _encoder(settings),
        reranker,
        settings,
        args.cache_dir,
        command=command,
        progress=not args.quiet,
    )
    text = markdown(learned, command)
    print(text)
    if not args.no_write:
        write_models({mode: model for mode, (model, _) in learned.items()})
        update_report_file(args.out_dir / "report.md", {"abstention": text})
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    command = command_line(getattr(args, "_argv", None))
    try:
        if args.learn_abstention:
            return cmd_learn_abstention(args, command)
        if args.bench is not None or args.squad2 is not None:
            code = 0
            if args.bench is not None:
                code |= cmd_bench(args, command)
            if args.squad2 is not None:
                code |= cmd_squad2(args, command)
            return code
        sets = [args.questions] if args.questions else [DEFAULT_QUESTIONS, SQUAD_QUESTIONS]
        if args.baseline is not None and len(sets) > 1:
            raise DatasetError("--baseline names one set's baseline: give --questions too")
        code = 0
        for path in sets:
            if len(sets) > 1:
                print(f"== {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
            code |= cmd_own(argparse.Namespace(**{**vars(args), "questions": path}), command)
        return code
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag eval", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args._argv = argv
    from core.errors import RagError

    try:
        return cmd_eval(args)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
