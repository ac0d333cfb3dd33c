"""Saved objects of a project (cohorts, bookmarks), each in a small store over the catalog's SQLite
database. A store owns its table (created on first use) and knows nothing of HTTP or of the engine."""
