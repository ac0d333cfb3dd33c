"""Which analyses may read lookup tables, the same on every engine.

An analysis not named here refuses a lookup read (`properties["p"]["column"]`) with its caret; user
profile queries read the tables mapped to profile properties (group profiles read none)."""

from __future__ import annotations

from typing import Any

from mixhouse.domain.query import engage as engage_spec
from mixhouse.domain.query import funnels as funnels_spec
from mixhouse.domain.query import retention as retention_spec
from mixhouse.domain.query import segmentation as segmentation_spec

LOOKUP_SPECS: frozenset[type] = frozenset(
    {
        segmentation_spec.SeriesSpec,
        segmentation_spec.NumberRangeSpec,
        funnels_spec.FunnelSpec,
        retention_spec.RetentionSpec,
        retention_spec.AddictionSpec,
    }
)
# Profile queries whose `where` reads lookup tables mapped to profile properties.
PROFILE_LOOKUP_SPECS: frozenset[type] = frozenset({engage_spec.EngageSpec})


def lookup_reads(spec: Any) -> tuple[bool, bool]:
    """(supported, profiles): whether `spec`'s analysis may read lookup tables, and whether its records are
    user profiles (so `properties[...]` reads a profile property's mapping)."""
    profiles = type(spec) in PROFILE_LOOKUP_SPECS and getattr(spec, "group_key", None) is None
    return type(spec) in LOOKUP_SPECS or profiles, profiles
