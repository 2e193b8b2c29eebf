"""Output that CI systems read: JUnit XML (``--junit FILE``) and a Markdown summary
(``--summary FILE``) of ``rag eval own`` and ``rag eval check``, in process or ``--url``.

JUnit XML (the Jenkins/Ant ``junit-10.xsd`` dialect that Jenkins, GitLab, GitHub Actions
reporters, Azure Pipelines and CircleCI read), one ``<testsuite>`` per question set and mode:

* one ``<testcase>`` per question (``classname`` ``rag-eval.<set>.<mode>``, ``name`` the
  question id), with a ``<failure type="regression">`` when the question regressed: right in
  the baseline, wrong now (``rag eval check`` only; ``<system-out>`` says what it did);
* a ``<testsuite>`` ``<set>: gate`` with one test case per mode and gated metric, failed
  when the metric is below its floor (or above its ceiling) or moved by more than its
  tolerance, or the mode is missing;
* a ``<testsuite>`` ``<set>: targets`` with one test case per target of the report (issues
  14 and 18, seed-article set only), failed when the target is missed.

The exit code stays the gate's verdict (0 passed, 1 regression): the gate tolerates two
questions' worth of change per metric and reports targets without gating them, so a JUnit
failure for a flipped question or a missed target names it without failing the run by itself.

The summary is Markdown for a pull-request comment or a CI step summary
(``$GITHUB_STEP_SUMMARY``): per set the verdict, the headline table (with the baseline's
values when there is one), the gate's failures, the flips either way and the missed targets.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eval.dataset import EvalQuestion
from eval.gate import Change, CheckResult
from eval.render import LABELS, fmt
from eval.report import Baseline, Report

#: The summary's headline columns.
HEADLINE: tuple[str, ...] = (
    "recall@1",
    "recall@5",
    "mrr@10",
    "answer_hit",
    "span_iou",
    "quote_exactness",
    "abstention_recall",
    "false_abstention",
)


@dataclass(frozen=True)
class SetResult:
    """One question set's run: its report, and the gate's verdict when it was checked."""

    name: str  # the question file as shown, e.g. eval/questions.jsonl
    report: Report
    questions: Mapping[str, EvalQuestion]
    baseline: Baseline | None = None
    check: CheckResult | None = None
    source: str = "in process"  # or the service's URL

    @property
    def key(self) -> str:
        """A dotted name for JUnit class names: ``questions``, ``questions-squad``."""
        stem = self.name.rsplit("/", 1)[-1]
        return stem.removesuffix(".jsonl").replace(".", "_")

    @property
    def passed(self) -> bool:
        return self.check is None or self.check.ok

    def regressions(self, mode: str) -> dict[str, Change]:
        if self.check is None:
            return {}
        return {c.question: c for c in self.check.changes if c.mode == mode and not c.fixed}

    def metric_failures(self, mode: str, metric: str) -> list[str]:
        if self.check is None:
            return []
        return [f for f in self.check.failures if f.startswith(f"{mode} {metric} ")]


# --------------------------------------------------------------------------- JUnit XML


def _suite(parent: ET.Element, name: str, cases: list[ET.Element], stamp: str) -> None:
    failures = sum(1 for c in cases if c.find("failure") is not None)
    suite = ET.SubElement(
        parent,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        timestamp=stamp,
        hostname=socket.gethostname(),
    )
    suite.extend(cases)


def _case(classname: str, name: str, failure: str | None = None, *, kind: str = "") -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=name)
    if failure is not None:
        element = ET.SubElement(case, "failure", type=kind, message=failure.splitlines()[0])
        element.text = failure
    return case


def question_cases(result: SetResult, mode: str) -> list[ET.Element]:
    """One test case per question in ``mode``, failed when it regressed."""
    classname = f"rag-eval.{result.key}.{mode}"
    regressed = result.regressions(mode)
    cases = []
    for qid, status in result.report.questions.get(mode, {}).items():
        change = regressed.get(qid)
        failure = None
        if change is not None:
            failure = f"regressed: was {change.before}, now {change.after}"
            question = result.questions.get(qid)
            if question is not None:
                failure += f"\nquestion: {question.question}"
        case = _case(classname, qid, failure, kind="regression")
        out = ET.SubElement(case, "system-out")
        out.text = f"{status.category}: {status.describe()}" + (
            "" if status.right else " (not right)"
        )
        cases.append(case)
    return cases


def gate_cases(result: SetResult) -> list[ET.Element]:
    """One test case per mode and gated metric of the baseline."""
    if result.baseline is None or result.check is None:
        return []
    classname = f"rag-eval.{result.key}.gate"
    cases = []
    for mode, entries in result.baseline.modes.items():
        missing = f"{mode}: mode missing from this run"
        if missing in result.check.failures:
            cases.append(_case(classname, mode, missing, kind="regression"))
            continue
        for metric in entries:
            failures = result.metric_failures(mode, metric)
            failure = "\n".join(failures) if failures else None
            cases.append(_case(classname, f"{mode} {metric}", failure, kind="regression"))
    return cases


def target_cases(result: SetResult) -> list[ET.Element]:
    """One test case per target of the report's modes, failed when missed."""
    classname = f"rag-eval.{result.key}.targets"
    cases = []
    for t in result.report.targets:
        if t.mode not in result.report.modes:
            continue
        name = f"{t.mode} {t.metric} {t.op} {t.target}"
        failure = None if t.met else f"target not met: {name} (measured {fmt(t.value)})"
        cases.append(_case(classname, name, failure, kind="target"))
    return cases


def junit_xml(results: Sequence[SetResult], *, name: str = "rag eval") -> str:
    """The JUnit XML document of ``results`` (see the module's docstring)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites", name=name)
    for result in results:
        for mode in result.report.questions:
            _suite(root, f"{result.name}: {mode}", question_cases(result, mode), stamp)
        gate = gate_cases(result)
        if gate:
            _suite(root, f"{result.name}: gate", gate, stamp)
        targets = target_cases(result)
        if targets:
            _suite(root, f"{result.name}: targets", targets, stamp)
    suites = root.findall("testsuite")
    root.set("tests", str(sum(int(s.get("tests", 0)) for s in suites)))
    root.set("failures", str(sum(int(s.get("failures", 0)) for s in suites)))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# --------------------------------------------------------------------------- Markdown


def _cell(value: float | None, before: float | None) -> str:
    if before is None or value is None:
        return fmt(value)
    delta = value - before
    return fmt(value) if abs(delta) < 5e-5 else f"{fmt(value)} ({delta:+.3f})"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def headline_table(result: SetResult) -> list[str]:
    """Per mode, the headline metrics (and the change from the baseline's value)."""
    head = ["mode", *(LABELS[m] for m in HEADLINE)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(HEADLINE)]
    for mode, data in result.report.modes.items():
        entries = result.baseline.modes.get(mode, {}) if result.baseline else {}
        cells = [
            _cell(data.overall.get(m), entries[m].value if m in entries else None) for m in HEADLINE
        ]
        lines.append("| " + " | ".join([mode, *cells]) + " |")
    return lines


def flips_table(result: SetResult, changes: Sequence[Change]) -> list[str]:
    lines = ["| mode | id | category | before | now | question |", "|---|---|---|---|---|---|"]
    for c in changes:
        q = result.questions.get(c.question)
        text = _escape(q.question) if q else ""
        lines.append(
            f"| {c.mode} | {c.question} | {c.category} | {c.before} | {c.after} | {text} |"
        )
    return lines


def set_summary(result: SetResult) -> list[str]:
    report = result.report
    if result.check is None:
        verdict = "evaluated (no baseline compared)"
    else:
        verdict = "**passed**" if result.check.ok else "**regressed**"
    meta = report.meta
    table = headline_table(result)
    lines = [
        f"### `{result.name}`: {verdict}",
        "",
        f"{meta.n_questions} questions, {result.source}, model `{meta.model}`, {meta.date}.",
        "",
        *table,
        "",
    ]
    if any(" (" in row for row in table[2:]):
        lines += ["In brackets: the change from the baseline's value.", ""]
    if result.check is not None and result.check.failures:
        lines += ["**Gate failures**", ""]
        lines += [f"- {f}" for f in result.check.failures]
        lines.append("")
    if result.check is not None:
        worse = [c for c in result.check.changes if not c.fixed]
        better = [c for c in result.check.changes if c.fixed]
        for title, items in (("Was right, now wrong", worse), ("Was wrong, now right", better)):
            if items:
                lines += [f"**{title} ({len(items)})**", "", *flips_table(result, items), ""]
        if not result.check.changes:
            lines += ["No question changed from the baseline.", ""]
    missed = [t for t in report.targets if not t.met and t.mode in report.modes]
    if missed:
        lines += ["**Targets not met** (reported, not gated)", ""]
        lines += [f"- {t.mode} {t.metric} {t.op} {t.target}: {fmt(t.value)}" for t in missed]
        lines.append("")
    return lines


def summary_markdown(results: Sequence[SetResult]) -> str:
    """The Markdown summary of ``results``: one section per question set."""
    checked = [r for r in results if r.check is not None]
    if not checked:
        title = "## Retrieval evaluation"
    elif all(r.passed for r in checked):
        title = "## Retrieval evaluation: passed"
    else:
        title = "## Retrieval evaluation: regression"
    lines = [title, ""]
    for result in results:
        lines += set_summary(result)
    return "\n".join(lines).rstrip() + "\n"
