"""Annotations: dated notes on a project's charts, with tags (docs/annotations.md).

`model` validates input and shapes answers (no HTTP, no SQL), `store` keeps them in the catalog database,
`api` is the App API and legacy `/api/2.0/annotations` handlers."""
