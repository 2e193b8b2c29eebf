"""The README's console and JSON examples are run, and their output must match: they cannot
drift. Text, spans and order must be the same; scores may differ a little on another CPU
(float kernels round differently), so numbers with a decimal point are compared with a
tolerance."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BIN = Path(sys.executable).parent
DECIMAL = re.compile(r"-?\d+\.\d+")
#: How far a printed score may move on another CPU before the example counts as changed.
REL, ABS = 0.05, 0.05


def console_blocks(text: str) -> list[list[tuple[str, str]]]:
    """Each ```console block as (command, expected output) pairs."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append([(cmd, "\n".join(out).strip("\n")) for cmd, out in steps])
    return blocks


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    if argv[0] == "rag":
        return [str(BIN / "rag"), *argv[1:]]
    raise AssertionError(f"README example runs an unexpected program: {argv[0]}")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def same_text(shown: str, actual: str) -> bool:
    """Equal, except that decimal numbers need only be close."""
    if DECIMAL.split(shown) != DECIMAL.split(actual):
        return False
    ours, theirs = DECIMAL.findall(shown), DECIMAL.findall(actual)
    return len(ours) == len(theirs) and all(
        close(float(a), float(b)) for a, b in zip(ours, theirs, strict=True)
    )


def same_json(shown: Any, actual: Any) -> bool:
    """Equal, except that floats need only be close."""
    if isinstance(shown, float) or isinstance(actual, float):
        return isinstance(actual, int | float) and close(float(shown), float(actual))
    if isinstance(shown, dict):
        return (
            isinstance(actual, dict)
            and shown.keys() == actual.keys()
            and all(same_json(shown[k], actual[k]) for k in shown)
        )
    if isinstance(shown, list):
        return (
            isinstance(actual, list)
            and len(shown) == len(actual)
            and all(same_json(a, b) for a, b in zip(shown, actual, strict=True))
        )
    return bool(shown == actual)


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A fresh folder holding a copy of the repository's data/, as after a clone."""
    shutil.copytree(REPO / "data", tmp_path / "data")
    return tmp_path


def test_readme_has_examples() -> None:
    assert console_blocks(README.read_text("utf-8"))


def test_tolerant_comparison_still_sees_changed_text() -> None:
    assert same_text("score 0.9727 [2005-2300]", "score 0.9701 [2005-2300]")
    assert not same_text("score 0.9727 [2005-2300]", "score 0.9727 [2005-2301]")
    assert not same_text("score 0.97", "score 0.47")
    assert same_json({"a": [1, 0.5]}, {"a": [1, 0.51]})
    assert not same_json({"a": "x"}, {"a": "y"})


@pytest.mark.parametrize("block", console_blocks(README.read_text("utf-8")))
def test_readme_console_example(block, workdir: Path) -> None:
    for command, expected in block:
        done = subprocess.run(
            _argv(command), cwd=workdir, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        actual = done.stdout.strip("\n")
        assert same_text(expected, actual), f"output of `{command}` changed:\n{actual}"


def test_readme_api_example_is_the_real_response(workdir: Path) -> None:
    """The README's JSON example is what the service answers on the seed article
    (``rag ask --json`` prints the same body as ``POST /ask``; test_cli checks that)."""
    text = README.read_text("utf-8")
    shown = json.loads(re.findall(r"```json\n(.*?)```", text, re.DOTALL)[0])
    question = shown["question"]
    done = subprocess.run(
        _argv(f"rag ask {shlex.quote(question)} --top-k 1 --json"),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    actual = json.loads(done.stdout)
    assert same_json(shown, actual), json.dumps(actual, indent=4, ensure_ascii=False)
