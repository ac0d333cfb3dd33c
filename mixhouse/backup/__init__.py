"""Online backup and restore of a data folder (docs/storage.md#backup-and-restore)."""
