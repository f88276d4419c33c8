"""`?` placeholders and literal `%` as psycopg wants them, checked on the real server."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from daemon.storage.postgres.sql import PgSql, rewrite
from daemon.storage.sql import Dialect


def test_placeholders_become_psycopg_ones_and_percent_signs_are_doubled() -> None:
    assert rewrite("SELECT a FROM t WHERE b = ? AND c LIKE 'x%' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%' AND d = %s"
    )
    assert rewrite("SELECT '?' AS q, \"odd?name\" FROM t WHERE a = ?") == (
        "SELECT '?' AS q, \"odd?name\" FROM t WHERE a = %s"
    )
    assert rewrite("SELECT 'it''s ?' WHERE a = ?") == "SELECT 'it''s ?' WHERE a = %s"


def test_reads_come_back_by_name(postgres_dsn: str) -> None:
    conn = psycopg.connect(postgres_dsn, autocommit=True, row_factory=dict_row)
    sql = PgSql(conn, where="test")
    try:
        assert sql.dialect is Dialect.POSTGRES
        assert sql.rows("SELECT ? AS a, '100%' AS b, '?' AS c", (7,)) == [{"a": 7, "b": "100%", "c": "?"}]
        assert sql.one("SELECT 1 AS x WHERE 1 = ?", (2,)) is None
        assert sql.scalar("SELECT count(*) FROM (VALUES (1), (2)) v WHERE 'ab' LIKE 'a%'") == 2
        assert sql.scalar("SELECT 1 WHERE false") is None
    finally:
        sql.close()
    assert conn.closed
