"""Alembic migrations of firmforge's database (run by ``Database.migrate``; not imported)."""
