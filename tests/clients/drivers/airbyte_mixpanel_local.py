"""Runs the unmodified PyPI `airbyte-source-mixpanel` 4.0.2 exactly like its `source-mixpanel` console script,
pointed at MP_BASE (real-clients §5). No option exists, so at run time this wrapper:
- rewrites the `url_base` values of the packaged manifest and of the two Python streams to MP_BASE;
- removes the two 1-request-per-60-s rate budgets (the manifest's `api_budget` and the custom requesters'
  `DEFAULT_API_BUDGET`), which would otherwise make each request wait a minute.
Nothing inside the installed package is edited."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from airbyte_cdk.sources.declarative.yaml_declarative_source import (  # type: ignore[import-not-found]
    YamlDeclarativeSource,
)

BASE = os.environ["MP_BASE"].rstrip("/")
_orig_read = YamlDeclarativeSource._read_and_parse_yaml_file


def _rewrite(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "url_base" and isinstance(value, str):
                node[key] = re.sub(r"^https://.*?mixpanel\.com", BASE, value)
            else:
                _rewrite(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite(value)


def _read(self: Any, path: str) -> Any:
    manifest = _orig_read(self, path)
    manifest.pop("api_budget", None)
    _rewrite(manifest)
    return manifest


YamlDeclarativeSource._read_and_parse_yaml_file = _read

import source_mixpanel.components as components  # type: ignore[import-not-found]  # noqa: E402
import source_mixpanel.streams as streams  # type: ignore[import-not-found]  # noqa: E402
from airbyte_cdk.sources.streams.call_rate import APIBudget  # type: ignore[import-not-found]  # noqa: E402
from source_mixpanel.run import run  # type: ignore[import-not-found]  # noqa: E402

components.DEFAULT_API_BUDGET = APIBudget(policies=[])
streams.MixpanelStream.url_base = property(lambda self: f"{BASE}/api/query/")
streams.Export.url_base = property(lambda self: f"{BASE}/api/2.0/")

if __name__ == "__main__":
    sys.exit(run())
