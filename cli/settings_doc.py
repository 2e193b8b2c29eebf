"""The table of every ``RAG_*`` setting, generated from the settings classes themselves.

``rag settings`` prints it; the README holds a copy between :data:`START` and :data:`END`,
which ``rag settings --write README.md`` refreshes and ``tests/test_settings_doc.py`` checks,
so the documentation cannot drift from the code: a variable's name comes from the class's
``env_prefix`` (and ``env_nested_delimiter`` for a nested group such as ``Settings.tuning``),
its default and description from the field, and the values a ``Literal`` allows from its type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePath
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from api.config import ApiSettings
from rag.settings import Settings

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"

#: The settings classes, in the order the table lists them, with a heading for each.
SOURCES: tuple[tuple[type[BaseSettings], str], ...] = (
    (Settings, "The pipeline (`rag.settings.Settings`; CLI and HTTP service)"),
    (ApiSettings, "The HTTP service only (`api.config.ApiSettings`)"),
)

#: Defaults computed on the machine that runs the service, described rather than shown (the
#: table must be the same everywhere). A new function of this kind must be added here.
FACTORY_DEFAULTS: dict[str, str] = {
    "api.config._cpu_count": "the number of CPUs",
}


@dataclass(frozen=True)
class Row:
    variable: str
    default: str
    description: str


@dataclass(frozen=True)
class Group:
    heading: str
    about: str
    rows: tuple[Row, ...]


def _text(text: str | None) -> str:
    """One line of Markdown (``<NAME>`` would be read as an HTML tag, ``|`` ends a cell)."""
    return " ".join((text or "").split()).replace("<", "&lt;").replace("|", "\\|")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and not issubclass(annotation, BaseSettings)
    ):
        return annotation
    return None


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types a union annotation allows (or the annotation itself)."""
    if get_origin(annotation) in (Union, UnionType):
        return tuple(m for arg in get_args(annotation) for m in _members(arg))
    return (annotation,)


def _choices(annotation: Any) -> tuple[object, ...]:
    return tuple(
        value
        for member in _members(annotation)
        if get_origin(member) is Literal
        for value in get_args(member)
    )


def _is_secret(annotation: Any) -> bool:
    return any(member in (SecretStr, SecretBytes) for member in _members(annotation))


def _env_text(value: object) -> str:
    """``value`` as it would be written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | dict | tuple):
        return json.dumps(value)
    return str(value)


def _code(text: str) -> str:
    return f"``{text}``" if "`" in text else f"`{text}`"


def _default(name: str, info: FieldInfo) -> str:
    if _is_secret(info.annotation):
        return "*none (a secret)*"
    if info.default_factory is not None:
        factory: Callable[..., Any] = info.default_factory
        key = f"{factory.__module__}.{factory.__qualname__}"
        if key in FACTORY_DEFAULTS:
            return FACTORY_DEFAULTS[key]
        if not isinstance(factory, type) and factory.__name__ != "<lambda>":
            raise ValueError(
                f"{name}: the default comes from {key}(); describe it in FACTORY_DEFAULTS"
            )
        value = factory()
    else:
        value = info.default
    if value is None:
        return "*unset*"
    text = _env_text(value)
    return _code(text) if text else "*empty*"


def _description(info: FieldInfo) -> str:
    text = _text(info.description)
    choices = _choices(info.annotation)
    if choices:
        values = ", ".join(_code(_env_text(c)) for c in choices)
        text = f"{text} Values: {values}.".strip()
    return text


def _rows(model: type[BaseModel], prefix: str) -> Iterator[Row]:
    for name, info in model.model_fields.items():
        yield Row(f"{prefix}{name}".upper(), _default(name, info), _description(info))


def setting_groups() -> list[Group]:
    """Every setting of every class in :data:`SOURCES`; a nested model (``Settings.tuning``)
    is a group of its own, its variables named ``<PREFIX><FIELD><DELIMITER><NAME>``."""
    groups: list[Group] = []
    for cls, heading in SOURCES:
        prefix = cls.model_config.get("env_prefix", "")
        delimiter = cls.model_config.get("env_nested_delimiter")
        rows: list[Row] = []
        nested: list[Group] = []
        for name, info in cls.model_fields.items():
            model = _nested_model(info.annotation)
            if model is not None and delimiter:
                group_prefix = f"{prefix}{name}{delimiter}".upper()
                nested.append(
                    Group(
                        f"`{group_prefix}<NAME>`: the `{name}` group "
                        f"(`{model.__module__}.{model.__qualname__}`)",
                        _text(info.description),
                        tuple(_rows(model, group_prefix)),
                    )
                )
            else:
                rows.append(
                    Row(f"{prefix}{name}".upper(), _default(name, info), _description(info))
                )
        groups.append(Group(heading, "", tuple(rows)))
        groups.extend(nested)
    return groups


def settings_markdown() -> str:
    """The Markdown tables of every setting (the README's settings block)."""
    parts = []
    for group in setting_groups():
        lines = [f"**{group.heading}**", ""]
        if group.about:
            lines += [group.about, ""]
        lines += ["| variable | default | description |", "|---|---|---|"]
        lines += [f"| `{r.variable}` | {r.default} | {r.description} |" for r in group.rows]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _bounds(text: str) -> tuple[int, int]:
    """Where the block's content starts and ends in ``text`` (just inside the markers)."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"expected one {START} and one {END} marker")
    start = text.index(START) + len(START)
    end = text.index(END)
    if end < start:
        raise ValueError(f"{END} comes before {START}")
    return start, end


def extract_block(text: str) -> str:
    """The settings block between the markers of ``text`` (without the newlines that
    separate it from them)."""
    start, end = _bounds(text)
    return text[start:end].removeprefix("\n").removesuffix("\n")


def replace_block(text: str, table: str) -> str:
    """``text`` with the settings block between its markers replaced by ``table``."""
    start, end = _bounds(text)
    return f"{text[:start]}\n{table.rstrip(chr(10))}\n{text[end:]}"
