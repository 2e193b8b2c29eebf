"""The test tiers (tests/README.md): the lists in tests/conftest.py that mark tests ``slow``
name fixtures, modules and tests that exist, and the fake-model tests stay in the fast tier."""

from __future__ import annotations

import re
from pathlib import Path

import conftest
import pytest

TESTS = Path(__file__).resolve().parent


def sources() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in TESTS.glob("*.py")}


def test_the_slow_marker_is_registered(pytestconfig: pytest.Config) -> None:
    assert any(m.startswith("slow:") for m in pytestconfig.getini("markers"))


def test_every_listed_fixture_module_and_test_exists() -> None:
    code = sources()
    for name in conftest.SLOW_FIXTURES:
        defined = re.compile(rf"@pytest\.fixture[^\n]*\n(?:[^\n]*\n)?def {name}\(")
        assert any(defined.search(text) for text in code.values()), f"no fixture {name}"
    for module in conftest.SLOW_MODULES:
        assert module in code, f"no tests/{module}.py"
    for test in conftest.SLOW_TESTS:
        file, function = test.split("::")
        assert f"def {function}(" in code.get(Path(file).stem, ""), f"no test {test}"


def test_fake_model_tests_are_fast_and_real_model_tests_are_slow(
    request: pytest.FixtureRequest,
) -> None:
    """Over the tests of this session (all of them under plain ``pytest``)."""
    for item in request.session.items:
        slow = item.get_closest_marker("slow") is not None
        if item.path.name.startswith("test_unit_"):
            assert not slow, f"{item.nodeid} uses a slow fixture"
        if "encoder" in getattr(item, "fixturenames", ()):
            assert slow, item.nodeid
