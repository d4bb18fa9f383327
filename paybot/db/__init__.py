"""Database: SQLModel tables, the engine/session provider and Alembic migrations."""
