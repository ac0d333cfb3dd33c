"""One error tree: every error class of the package descends from MixhouseError, declares its own stable
`code` and its status as class attributes, and is listed in docs/errors.md; no code sets a status or a
code on an error instance."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import mixhouse
from mixhouse.errors import BadRequest, MixhouseError

ROOT = Path(__file__).parent.parent


def _error_classes() -> list[type[MixhouseError]]:
    for info in pkgutil.walk_packages(mixhouse.__path__, "mixhouse."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    found: list[type[MixhouseError]] = []
    stack: list[type[MixhouseError]] = [MixhouseError]
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("mixhouse."):
            found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_its_own_code_and_a_status() -> None:
    classes = _error_classes()
    assert len(classes) >= 15
    codes: dict[str, str] = {}
    for cls in classes:
        assert "code" in vars(cls), f"{cls.__qualname__} declares no code of its own"
        assert re.fullmatch(r"[a-z][a-z_]*", cls.code), cls
        assert isinstance(cls.status, int) and 400 <= cls.status <= 599, cls
        assert cls.code not in codes, f"{cls.__qualname__} reuses the code of {codes[cls.code]}"
        codes[cls.code] = cls.__qualname__


def test_the_tree_is_documented() -> None:
    rows = {
        m.group(1): (m.group(2), int(m.group(3)), m.group(4))
        for m in re.finditer(
            r"^\| `(\w+)` \| `([\w.]+)` \| (\d+) \| `(\w+)` \|", (ROOT / "docs/errors.md").read_text(), re.M
        )
    }
    classes = _error_classes()
    assert sorted(rows) == sorted(c.__qualname__ for c in classes)
    for cls in classes:
        assert rows[cls.__qualname__] == (cls.__module__, cls.status, cls.code), cls


def test_expression_errors_are_bad_requests_with_the_caret() -> None:
    from mixhouse.expr import ExpressionError, parse

    try:
        parse('properties["a"] ==')
    except ExpressionError as exc:
        assert isinstance(exc, BadRequest) and isinstance(exc, ValueError)
        assert exc.status == 400
        assert str(exc).endswith("^") and str(exc).startswith(exc.message)
    else:
        raise AssertionError("a truncated expression parsed")


def test_no_status_or_code_is_set_on_an_instance() -> None:
    """`err.status = 405` would make the status a property of one instance: a subclass says it instead."""
    offenders = []
    for path in (ROOT / "mixhouse").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign | ast.AugAssign)
                else []
            )
            for target in targets:
                on_self = (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in ("self", "cls")
                )
                if isinstance(target, ast.Attribute) and target.attr in ("status", "code") and not on_self:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
