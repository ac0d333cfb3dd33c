"""Lexicon Schemas: the project's data dictionary, and what it changes (docs/lexicon.md).

model.py    SchemaEntry and schemaJson, validated strictly (an unknown key is a 400 naming it)
store.py    schemas in the catalog database, per project, entity type and name
effects.py  what schemas do: dropped events refused at ingestion, hidden ones left out of discovery
api.py      `/api/app/projects/{projectId}/schemas[/{entityType}[/{name}]]`
"""
