"""Data pipelines (docs/pipelines.md): Mixpanel's pipelines API, exporting a project's events to object
stores (raw JSON lines or schematized Parquet) by day or hour of the project's timezone, run by the
server's job runner and kept in sync with late data and GDPR deletions."""
