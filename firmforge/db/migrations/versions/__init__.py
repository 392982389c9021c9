"""One module per schema revision, numbered ``0001_…``; Alembic loads them by path."""
