"""Organisations and their service accounts (docs/auth.md).

    hashing.py  secrets at rest (argon2id; PBKDF2 read once, to upgrade) and the cache of verified secrets
    schema.py   the catalog tables and their migration from older data folders
    store.py    organisations, service accounts and their project roles
    api.py      the Service Accounts API handlers (`/api/app/organizations/{orgId}/service-accounts`, ...)
    cli.py      `mixhouse service-accounts list|delete|rotate`

Only hashing.py and schema.py may be imported by mixhouse.catalog (the others build on the catalog).
"""
