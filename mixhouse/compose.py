"""The composition root: the one place that turns settings into the server's parts (the engine, the
catalog). Everything else receives them; nothing else picks an implementation or reads the environment."""

from __future__ import annotations

from mixhouse.catalog import Catalog
from mixhouse.domain.catalog import CatalogPort
from mixhouse.engine.base import CommitObserver, Engine
from mixhouse.errors import SettingsError
from mixhouse.private import private_dir
from mixhouse.settings import ENGINES, Settings


def check_engine(settings: Settings) -> None:
    """Refuse an engine this build does not know before anything is opened."""
    if settings.engine not in ENGINES:
        raise SettingsError(f"engine must be one of {', '.join(ENGINES)}, got {settings.engine!r}")


def open_engine(
    settings: Settings, commit_observers: tuple[CommitObserver, ...] = (), catalog: CatalogPort | None = None
) -> Engine:
    """The engine the settings name, open on their data folder. With the `catalog`, queries can read
    lookup tables mapped to properties (docs/lookup-tables.md)."""
    check_engine(settings)
    if settings.engine == "duckdb":
        from mixhouse.engine.duckdb import DuckDBEngine
        from mixhouse.lookup.resolve import LookupResolver

        lookups = LookupResolver(catalog) if catalog is not None else None
        return DuckDBEngine.from_settings(settings, commit_observers, lookups)
    if settings.engine in ("chdb", "clickhouse"):
        from mixhouse.engine.clickhouse import ClickHouseEngine
        from mixhouse.lookup.resolve import LookupResolver

        resolver = LookupResolver(catalog) if catalog is not None else None
        return ClickHouseEngine.from_settings(settings, commit_observers, resolver)
    raise AssertionError(f"unreachable: {settings.engine}")  # pragma: no cover  (ENGINES is checked above)


def open_catalog(settings: Settings) -> CatalogPort:
    # The data folder holds the backup control socket (and the embedded engines' stores) whichever database
    # the catalog is in: with a shared catalog and a ClickHouse server nothing else would make it.
    private_dir(settings.data_dir)
    return Catalog(
        settings.data_dir,
        verified_cache_entries=settings.auth_cache_entries,
        url=settings.catalog_url,
        cache_projects=True,
    )
