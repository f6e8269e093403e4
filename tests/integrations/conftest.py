"""Fixtures shared by the integration tests: the real database servers (session-scoped)."""

from .db_servers import mariadb, postgres

__all__ = ["mariadb", "postgres"]
