"""Fixtures shared by the integration tests: the real database servers (session-scoped)."""

from .db_servers import mariadb, postgres, redis

__all__ = ["mariadb", "postgres", "redis"]
