"""The layers contract (pyproject.toml, docs/architecture.md) holds, and `lint-imports` fails on
an upward import: a copy of the tree with one injected ``index -> rag`` import is rejected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "index", "rag", "api", "eval", "bench", "cli")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in PACKAGES:
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("*.json*", "*.png"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_the_layers(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    store = root / "index" / "store.py"
    store.write_text(store.read_text() + "\nimport rag.settings  # upward: index -> rag\n")
    result = lint(root)
    assert result.returncode != 0
    assert "index.store -> rag.settings" in result.stdout
