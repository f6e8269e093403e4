"""The one thing read from SQL text: its operation keyword (``SELECT``, ``INSERT``, ...).

Never the table names, literals or parameters. Leading whitespace and comments are
skipped; ``WITH ... SELECT`` is the statement after its common table expressions;
anything not in `KEYWORDS` is ``OTHER``. Results are cached per statement text
(statements repeat), in a bounded cache.
"""

from __future__ import annotations

KEYWORDS = frozenset({
    "ALTER", "ANALYZE", "BEGIN", "CALL", "CLOSE", "COMMIT", "COPY", "CREATE", "DEALLOCATE",
    "DECLARE", "DELETE", "DESCRIBE", "DROP", "END", "EXEC", "EXECUTE", "EXPLAIN", "FETCH",
    "GRANT", "INSERT", "LISTEN", "LOAD", "LOCK", "MERGE", "MOVE", "NOTIFY", "PRAGMA", "PREPARE",
    "RELEASE", "RENAME", "REPLACE", "RESET", "REVOKE", "ROLLBACK", "SAVEPOINT", "SELECT", "SET",
    "SHOW", "START", "TRUNCATE", "UNLISTEN", "UPDATE", "UPSERT", "USE", "VACUUM", "VALUES",
})
_MAIN_AFTER_WITH = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES"})
_CACHE_LIMIT = 4096
_CACHEABLE = 1024  # longer statements are parsed each time: the cache keeps no large texts
_cache: dict[object, str] = {}


def _skip_space_and_comments(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        char = text[i]
        if char.isspace() or char == ";":
            i += 1
        elif text.startswith("--", i) or char == "#":  # "#": MySQL's comment; no statement starts with it
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("(", i):  # "(SELECT ...) UNION ..." starts with a parenthesis
            i += 1
        else:
            break
    return i


def _word(text: str, i: int) -> tuple[str, int]:
    start = i
    n = len(text)
    while i < n and (text[i].isalnum() or text[i] == "_"):
        i += 1
    return text[start:i].upper(), i


def _after_with(text: str, i: int) -> str:
    """The main statement after ``WITH [RECURSIVE] name AS (...), ...``: the first main
    keyword outside parentheses, skipping quoted strings and identifiers."""
    depth = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            end = text.find(char, i + 1)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("--", i) or text.startswith("/*", i):
            i = _skip_space_and_comments(text, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and (char.isalpha() or char == "_"):
            word, i = _word(text, i)
            if word in _MAIN_AFTER_WITH:
                return word
            continue
        i += 1
    return "OTHER"


def _parse(statement: str) -> str:
    i = _skip_space_and_comments(statement, 0)
    word, i = _word(statement, i)
    if word == "WITH":
        return _after_with(statement, i)
    return word if word in KEYWORDS else "OTHER"


def _text(statement: object, depth: int = 0) -> str | None:
    if isinstance(statement, str):
        return statement
    if isinstance(statement, bytes):
        return statement[:4096].decode("utf-8", "replace")
    # Composed SQL objects keep their parts in `_obj` (psycopg 3) or `_wrapped`
    # (psycopg2); the first part starts the statement. Their str() is a repr, not SQL.
    parts = getattr(statement, "_obj", None)
    if parts is None:
        parts = getattr(statement, "_wrapped", None)
    if depth < 4 and isinstance(parts, (str, bytes)):
        return _text(parts, depth + 1)
    if depth < 4 and isinstance(parts, list) and parts:
        return _text(parts[0], depth + 1)
    return None


def operation(statement: object) -> str:
    """``db.operation.name`` for *statement* (str, bytes, or psycopg/psycopg2 composed SQL)."""
    cacheable = isinstance(statement, (str, bytes)) and len(statement) <= _CACHEABLE
    if cacheable:
        found = _cache.get(statement)
        if found is not None:
            return found
    try:
        text = _text(statement)
    except Exception:  # an exotic statement object; the driver will judge it
        return "OTHER"
    name = "OTHER" if text is None else _parse(text)
    if cacheable and len(_cache) < _CACHE_LIMIT:
        _cache[statement] = name
    return name
