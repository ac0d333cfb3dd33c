"""Lookup tables (docs/lookup-tables.md): CSV tables of a project, keyed by their first column, that
enrich event properties at query time. `csvtable` parses and types a CSV upload (RFC 4180, no HTTP),
`store` keeps tables in the catalog database, `http` serves Mixpanel's `/lookup-tables` routes and the
App API routes that create and read them."""
