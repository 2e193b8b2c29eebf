"""The README's console examples are run, and their output must match: they cannot drift."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from eval.squad import DEFAULT_PATH

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent


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


def test_readme_has_examples() -> None:
    assert console_blocks(README.read_text("utf-8"))


@pytest.mark.parametrize("block", console_blocks(README.read_text("utf-8")))
def test_readme_console_example(block, tmp_path: Path) -> None:
    if not DEFAULT_PATH.is_file():
        pytest.skip("the README example reads ../shared/benchmarks, which is missing")
    for command, expected in block:
        done = subprocess.run(
            _argv(command), cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip("\n") == expected, f"output of `{command}` changed"


def test_readme_api_example_is_the_real_response(tmp_path: Path) -> None:
    """The README's JSON example is what the service answers on the README's demo articles
    (``rag ask --json`` prints the same body as ``POST /ask``; test_cli checks that)."""
    if not DEFAULT_PATH.is_file():
        pytest.skip("the README example reads ../shared/benchmarks, which is missing")
    import json

    shown = json.loads(re.findall(r"```json\n(.*?)```", README.read_text("utf-8"), re.DOTALL)[0])
    for command, _ in console_blocks(README.read_text("utf-8"))[0][:2]:
        subprocess.run(_argv(command), cwd=tmp_path, check=True, capture_output=True, timeout=600)
    done = subprocess.run(
        _argv(
            'rag ask "Who were the Normans?" --top-k 1 --json '
            "--data-dir var/demo/data --index-dir var/demo/index"
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert json.loads(done.stdout) == shown
