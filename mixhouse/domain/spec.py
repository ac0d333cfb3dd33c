"""The questions the domain asks an engine. Each is a frozen dataclass deriving from `Spec[R]`, where `R`
is the type of the engine's answer, so that `Engine.query(spec)` is typed end to end:

    rows = engine.query(SeriesSpec(...))      # list[SeriesRow], checked by mypy

Specs carry values and expression trees (mixhouse.expr.plan.EventExpr), never an engine's SQL."""

from __future__ import annotations

from typing import Generic, TypeVar

R = TypeVar("R", covariant=True)


class Spec(Generic[R]):
    """Base of every engine question; `R` is its answer's type."""

    __slots__ = ()


__all__ = ["R", "Spec"]
