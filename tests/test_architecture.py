"""Boundaries that fail a test. Every module under mixhouse/ is parsed (ast, imports inside functions
included) and its imports are checked against the layering:

- `mixhouse/domain/` knows nothing of engines, SQL or HTTP: no `mixhouse.engine.<name>` package (the
  port, `mixhouse.engine.base`, is allowed), no duckdb, no starlette, no printer;
- `mixhouse/expr/` imports no domain, engine or HTTP module;
- `mixhouse/http/` does not import `mixhouse.engine.duckdb` (the composition root picks the engine);
- one engine does not import another (`mixhouse.engine.clickhouse` and `mixhouse.engine.duckdb`), and
  what they share, `mixhouse.engine.common`, imports neither, nor duckdb or chDB;
- only `mixhouse/engine/` (and the expression package itself) calls a printer or builds a `Scope`.

And only mixhouse/settings.py reads the environment.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "mixhouse"

# What `mixhouse.expr` re-exports from its printers (the SQL side of an expression).
PRINTER_NAMES = ("mixhouse.expr.Scope", "mixhouse.expr.compile_filter", "mixhouse.expr.compile_number")
PRINTER_NAMES += ("mixhouse.expr.compile_segment_key", "mixhouse.expr.printer", "mixhouse.expr.printers")

# Imports allowed to break a rule: none since the query families hand the engine trees. Never add one:
# move the code to the layer it belongs to.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

# Reads of the environment outside mixhouse/settings.py: (module, why).
ENVIRONMENT_EXCEPTIONS = {
    # numba reads NUMBA_CACHE_DIR itself; the kernels look where numba will have written its cache.
    "mixhouse.engine.kernels": "NUMBA_CACHE_DIR, numba's own variable",
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(name: str, path: Path) -> set[str]:
    """Every module (and `module.name` for `from module import name`) that `path` imports, anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(imported: str, prefix: str) -> bool:
    return imported == prefix or imported.startswith(prefix + ".")


def rule_broken(module: str, imported: str) -> str | None:
    """Why `module` may not import `imported` (None: it may)."""
    printer = any(_within(imported, p) for p in PRINTER_NAMES)
    if _within(module, "mixhouse.domain"):
        engine_package = _within(imported, "mixhouse.engine") and imported != "mixhouse.engine"
        if engine_package and not _within(imported, "mixhouse.engine.base"):
            return "the domain imports an engine package (only the port, mixhouse.engine.base)"
        if _within(imported, "duckdb") or _within(imported, "starlette"):
            return "the domain imports duckdb or starlette"
        if printer:
            return "the domain calls an expression printer"
    if _within(module, "mixhouse.expr") and any(
        _within(imported, p) for p in ("mixhouse.domain", "mixhouse.engine", "mixhouse.http")
    ):
        return "the expression package imports the domain, an engine or HTTP"
    if _within(module, "mixhouse.http") and _within(imported, "mixhouse.engine.duckdb"):
        return "HTTP imports the DuckDB engine (open it through mixhouse.compose)"
    engines = ("mixhouse.engine.duckdb", "mixhouse.engine.clickhouse")
    for mine in engines:
        if _within(module, mine) and any(_within(imported, e) for e in engines if e != mine):
            return "an engine imports another engine (share it through mixhouse.engine.common)"
    if _within(module, "mixhouse.engine.common") and any(
        _within(imported, p) for p in (*engines, "duckdb", "chdb", "clickhouse_connect")
    ):
        return "the engines' shared code imports an engine or a database driver"
    if printer and not (_within(module, "mixhouse.engine") or _within(module, "mixhouse.expr")):
        return "only engines call a printer or build a Scope"
    return None


def violations() -> dict[tuple[str, str], str]:
    found = {}
    for name, path in modules():
        for imported in imports(name, path):
            why = rule_broken(name, imported)
            if why is not None:
                found[(name, imported)] = why
    return found


def test_the_layers_hold() -> None:
    found = violations()
    new = {f"{m} imports {i}: {why}" for (m, i), why in found.items() if (m, i) not in KNOWN_VIOLATIONS}
    assert sorted(new) == []
    stale = KNOWN_VIOLATIONS - set(found)
    assert sorted(stale) == [], "these imports are gone: remove them from KNOWN_VIOLATIONS"


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    """The rules themselves, on imports that must be refused and ones that must pass."""
    assert rule_broken("mixhouse.domain.query.x", "mixhouse.engine.duckdb.engine")
    assert rule_broken("mixhouse.domain.x", "mixhouse.engine.duckdb")
    assert rule_broken("mixhouse.domain.x", "mixhouse.engine.kernels")
    assert rule_broken("mixhouse.domain.x", "duckdb")
    assert rule_broken("mixhouse.domain.x", "starlette.requests")
    assert rule_broken("mixhouse.domain.x", "mixhouse.expr.printers.duckdb")
    assert rule_broken("mixhouse.domain.x", "mixhouse.expr.compile_filter")
    assert rule_broken("mixhouse.expr.parser", "mixhouse.domain.dates")
    assert rule_broken("mixhouse.expr.x", "mixhouse.http.responses")
    assert rule_broken("mixhouse.http.app", "mixhouse.engine.duckdb")
    assert rule_broken("mixhouse.http.app", "mixhouse.engine.duckdb.writer")
    assert rule_broken("mixhouse.flags.x", "mixhouse.expr.Scope")
    assert rule_broken("mixhouse.engine.clickhouse.engine", "mixhouse.engine.duckdb.writer")
    assert rule_broken("mixhouse.engine.clickhouse.queries.x", "mixhouse.engine.duckdb.queries.engage._Snapshots")
    assert rule_broken("mixhouse.engine.duckdb.x", "mixhouse.engine.clickhouse.printer")
    assert rule_broken("mixhouse.engine.common.writer", "duckdb")
    assert rule_broken("mixhouse.engine.common.x", "mixhouse.engine.duckdb.relations")
    assert rule_broken("mixhouse.engine.clickhouse.engine", "mixhouse.engine.common.writer") is None
    assert rule_broken("mixhouse.engine.duckdb.writer", "mixhouse.engine.common.writer") is None
    assert rule_broken("mixhouse.engine.duckdb.engine", "mixhouse.engine.duckdb.writer") is None
    assert rule_broken("mixhouse.domain.x", "mixhouse.engine.base") is None
    assert rule_broken("mixhouse.domain.x", "mixhouse.expr.parse") is None
    assert rule_broken("mixhouse.domain.x", "duckdbx") is None
    assert rule_broken("mixhouse.engine.duckdb.queries.x", "mixhouse.expr.compile_filter") is None
    assert rule_broken("mixhouse.http.app", "mixhouse.compose") is None
    probe = tmp_path / "x.py"
    probe.write_text("def f():\n    from mixhouse.engine import duckdb\n    from .. import printers\n")
    found = imports("mixhouse.expr.sub.x", probe)
    assert {"mixhouse.engine.duckdb", "mixhouse.expr.printers"} <= found  # inside functions, relative too


def test_only_settings_reads_the_environment() -> None:
    readers = set()
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            reads = (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")) or (
                isinstance(node, ast.Name) and node.id in ("environ", "getenv")
            )
            if reads:
                readers.add(name)
    assert sorted(readers - {"mixhouse.settings"} - set(ENVIRONMENT_EXCEPTIONS)) == []
    assert sorted(set(ENVIRONMENT_EXCEPTIONS) - readers) == [], "no longer reads it: remove the exception"


# -- the route table ----------------------------------------------------------------------------------


def test_every_route_comes_from_the_route_table(tmp_path: Path) -> None:
    from mixhouse.http.app import create_app
    from mixhouse.http.routes import ENDPOINTS, MOUNTS, TableMount, TableRoute

    app_routes = create_app(tmp_path / "data").routes  # routes only; nothing is opened
    assert all(isinstance(r, TableRoute | TableMount) for r in app_routes)
    assert [r.spec for r in app_routes] == [*ENDPOINTS, *MOUNTS]
    assert len(ENDPOINTS) > 90


def test_no_route_is_declared_outside_the_table() -> None:
    """Starlette routes are made in mixhouse/http/routes.py only: anywhere else, a route would bypass the
    limiter's, the permissions' and the OpenAPI document's view of the table."""
    constructors = {"Route", "Mount", "WebSocketRoute", "Host", "Router"}
    found = []
    for name, path in modules():
        if name == "mixhouse.http.routes":
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("starlette")
            for alias in node.names
            if alias.name in constructors
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
                found.append(f"{name}:{node.lineno} {node.func.id}(...)")
    assert found == []


def test_the_table_is_consistent() -> None:
    from mixhouse.http.endpoint import Auth
    from mixhouse.http.routes import ENDPOINTS, UNROUTED_FAMILIES, family_of, lookup

    seen = set()
    for spec in ENDPOINTS:
        for method in spec.methods:
            assert (spec.path, method) not in seen, f"{method} {spec.path} is declared twice"
            seen.add((spec.path, method))
        # The envelope of an answer made without the handler (404/405 below it) is the endpoint's own.
        if any(spec.path.startswith(prefix) for prefix, _ in UNROUTED_FAMILIES):
            assert family_of(spec.path) is spec.family, spec.path
        # Authenticated APIs declare the role action of every method they take.
        if spec.auth in (Auth.QUERY, Auth.APP, Auth.IMPORT):
            assert set(spec.actions) == set(spec.methods), spec.path
        # A budget is spent by a caller the limiter can resolve before the handler runs (GDPR calls
        # name their project by its token).
        if spec.api is not None:
            assert spec.auth in (Auth.QUERY, Auth.APP, Auth.IMPORT, Auth.GDPR), spec.path
        concrete = spec.path.replace("{project_id}", "4242").replace("{", "").replace("}", "")
        found = lookup(concrete)
        assert found is not None and found.path == spec.path, (spec.path, found)
    assert lookup("/api/2.0/nope") is None


def test_every_path_spends_its_apis_budget() -> None:
    from mixhouse.domain.limits import Api
    from mixhouse.http.routes import budget_of

    def api(path: str) -> Api | None:
        spec = budget_of(path)
        return spec.api if spec is not None else None

    assert api("/api/query/segmentation") is Api.QUERY
    assert api("/api/2.0/funnels/list") is Api.QUERY
    assert api("/api/2.0/not-an-endpoint") is Api.QUERY  # counted, then 404
    assert api("/api/query/jql") is Api.JQL and api("/api/2.0/jql") is Api.JQL
    assert api("/api/2.0/export") is Api.EXPORT
    assert api("/import") is Api.INGESTION
    assert api("/api/app/projects/7/schemas/event") is Api.LEXICON
    assert api("/api/app/data-deletions/v3.0") is Api.GDPR
    assert api("/api/app/projects/7/funnels") is None
    assert api("/track") is None and api("/healthz") is None
