"""Alembic migrations of the SQL state, shipped in the package and run by state/sql.py:upgrade at
start-up. A schema change is a new file in versions/ (see docs/state.md)."""
