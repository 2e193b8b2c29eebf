"""The worked CI example of docs/ci.md cannot rot: the workflow (docs/ci/rag-eval.yml) runs
docs/ci/rag-eval.sh, which starts the service with `make run`'s command, and this test runs
that step's command with the job's environment against a real ``rag serve``, then checks
what the later steps publish (the JUnit XML, the summary in $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from test_api_support import REPO_DATA, free_port, prepare_dirs, server_env
from test_eval_url import assert_valid_junit

from eval.report import Report

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "docs" / "ci" / "rag-eval.yml"
SCRIPT = REPO / "docs" / "ci" / "rag-eval.sh"
STEP = "Evaluate the running service"


def workflow_job() -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    return dict(job)


def the_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("name") == STEP]
    return dict(step)


def job_env(job: dict[str, Any]) -> dict[str, str]:
    """The job's env as the runner sets it: an expression such as an unset secret is empty."""
    return {k: "" if "${{" in str(v) else str(v) for k, v in job.get("env", {}).items()}


def test_the_workflow_serves_with_make_runs_command_and_publishes_the_outputs() -> None:
    job = workflow_job()
    step = the_step(job)
    assert step["run"].strip() == "docs/ci/rag-eval.sh"
    assert os.access(SCRIPT, os.X_OK)
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^run: setup\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe is not None
    # $(VENV)/bin/rag serve --host $(HOST) --port $(PORT), with the shell's variables
    command = recipe.group(1).replace("$(VENV)/bin/rag", '"$RAG"')
    command = re.sub(r"\$\((\w+)\)", r'"$\1"', command)
    script = SCRIPT.read_text(encoding="utf-8")
    assert command in script, command
    assert 'RAG="${RAG:-.venv/bin/rag}"' in script
    assert job_env(job)["EVAL_OUT"] == "var/eval"
    published = {s.get("name"): s.get("with", {}) for s in job["steps"]}
    assert published["Publish the JUnit report"]["report_paths"] == "var/eval/junit.xml"
    assert published["Comment the summary on the pull request"]["path"] == "var/eval/summary.md"
    assert "GITHUB_STEP_SUMMARY" in script and "/readyz" in script


@pytest.mark.slow  # starts `rag serve` and runs the evaluation over HTTP
def test_the_ci_step_passes_against_a_real_service(tmp_path: Path) -> None:
    """The step's command, with the job's env (RAG_ASK_RATE_LIMIT lifted, no token), on a
    copy of data/, in hybrid mode only (accurate mode over HTTP takes a minute more)."""
    job = workflow_job()
    data, index = prepare_dirs(tmp_path, REPO_DATA, None)
    out = tmp_path / "eval"
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier steps' summary\n", encoding="utf-8")
    env = server_env(job_env(job))
    env.update(
        {
            "PORT": str(free_port()),
            "EVAL_OUT": str(out),
            "RAG": str(REPO / ".venv" / "bin" / "rag"),
            "RAG_DATA_DIR": str(data),
            "RAG_INDEX_DIR": str(index),
            "GITHUB_STEP_SUMMARY": str(step_summary),
            "EVAL_ARGS": "--mode hybrid",
            "READY_TIMEOUT": "180",
        }
    )
    assert env["RAG_ASK_RATE_LIMIT"] == "" and env["RAG_EVAL_TOKEN"] == ""
    done = subprocess.run(
        ["bash", "-c", the_step(job)["run"]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "check passed" in done.stdout
    report = Report.from_json((out / "report.json").read_text(encoding="utf-8"))
    assert list(report.modes) == ["hybrid"] and report.meta.n_questions > 100
    document = assert_valid_junit(out / "junit.xml")
    suites = {s.get("name"): s for s in document.getroot().iter("testsuite")}
    questions = suites["eval/questions.jsonl: hybrid"]
    assert int(questions.get("tests")) == report.meta.n_questions
    assert questions.get("failures") == "0"  # no question regressed
    assert suites["eval/questions.jsonl: gate"].get("failures") == "0"
    missed = [t for t in report.targets if t.mode == "hybrid" and not t.met]
    assert suites["eval/questions.jsonl: targets"].get("failures") == str(len(missed))
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("## Retrieval evaluation: passed")
    assert step_summary.read_text(encoding="utf-8") == "earlier steps' summary\n" + summary
    with pytest.raises(httpx.TransportError):  # the script stopped the server
        httpx.get(f"http://127.0.0.1:{env['PORT']}/readyz", timeout=5.0)
