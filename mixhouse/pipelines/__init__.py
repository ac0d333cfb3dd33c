"""Data pipelines (docs/pipelines.md): Mixpanel's pipelines API, exporting a project's events to object
stores (raw JSON lines or schematized Parquet) by day or hour of the project's timezone, and its profiles
with their identity mappings (`mp_people_data`, `mp_identity_mappings_data`), run by the server's job runner
and kept in sync with late data, merges and GDPR deletions."""
