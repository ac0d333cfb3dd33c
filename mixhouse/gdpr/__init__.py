"""GDPR and CCPA requests, API v3 (docs/gdpr.md): data retrievals and data deletions as jobs of the
job runner (mixhouse/jobs), authorized by personal OAuth tokens (`mixhouse gdpr-tokens create`).

`tokens` keeps the OAuth tokens, `model` validates requests and shapes answers (no HTTP), `kinds` are
the two job kinds, `http` the routes, `cli` the command."""
