"""PostgreSQL adapter (psycopg 3): connect with a DSN, run SQL, translate errors.

    connection refused / reset / server gone     TransientError while connecting (retried),
                                                 then Unreachable (exit 3)
    authentication failed                        Refused
    an SQL error (syntax, constraint, lock ...)  DatabaseError (a StepFailed) with SQLSTATE

The DSN's password is added to the caller's ``Secrets`` before the first connection
attempt, so it never reaches a log line, an error or a report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pipelinelib.errors import BadInput, Refused, StepFailed, TransientError, Unreachable
from pipelinelib.retry import transient_retry
from pipelinelib.secrets import Secrets

APPLICATION_NAME_MAX = 63  # NAMEDATALEN - 1: the server truncates longer names


class DatabaseError(StepFailed):
    """An SQL statement failed; ``sqlstate`` is PostgreSQL's error code."""

    def __init__(self, message: str, *, sqlstate: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.sqlstate = sqlstate


def dsn_parts(dsn: str) -> dict[str, str]:
    """The DSN's fields (host, port, user, dbname, password ...); BadInput-free best effort."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:
        return {}


def describe(dsn: str) -> str:
    """``user@host:port/db`` without the password, for messages."""
    p = dsn_parts(dsn)
    return f"{p.get('user', '')}@{p.get('host', 'localhost')}:{p.get('port', '5432')}/" \
           f"{p.get('dbname', '')}"


class Postgres:
    """One session to one database (autocommit; transactions are explicit)."""

    def __init__(self, conn: Any, where: str, secrets: Secrets):
        self.conn = conn
        self.where = where
        self.secrets = secrets

    @classmethod
    def connect(cls, dsn: str, *, secrets: Secrets | None = None, application_name: str = "",
                connect_timeout: int = 10) -> Postgres:
        """Connect (retrying transient faults); Unreachable when the server does not answer."""
        secrets = secrets if secrets is not None else Secrets()
        secrets.add(dsn_parts(dsn).get("password"))
        where = describe(dsn)
        try:
            conn = _connect(dsn, application_name[:APPLICATION_NAME_MAX], connect_timeout)
        except TransientError as exc:
            raise Unreachable(f"PostgreSQL at {where} did not answer",
                              cause=secrets.redact_text(str(exc))[:300],
                              hint="check the DSN's host and port and that the server runs"
                              ) from exc
        except _AuthFailed as exc:
            raise Refused(f"PostgreSQL at {where} refused the login",
                          hint="check the DSN's user and password") from exc
        except _NoDatabase as exc:
            raise BadInput(f"PostgreSQL at {where} has no database "
                           f"{dsn_parts(dsn).get('dbname', '')!r}", source="the DSN",
                           hint="check the DSN's database name, or create the database first"
                           ) from exc
        return cls(conn, where, secrets)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The server process id of this session."""
        return int(self.conn.info.backend_pid)

    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                what: str = "") -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (empty when it returns none)."""
        import psycopg

        try:
            cur = self.conn.execute(sql, params)
            return cur.fetchall() if cur.description else []
        except psycopg.OperationalError as exc:
            if self.conn.closed or exc.sqlstate is None or exc.sqlstate.startswith("08"):
                raise Unreachable(f"lost the connection to PostgreSQL at {self.where}",
                                  cause=self._clean(exc)) from exc
            raise self._error(exc, what) from exc
        except psycopg.Error as exc:
            raise self._error(exc, what) from exc

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction: committed at the end of the block, rolled back on an error."""
        import psycopg

        try:
            with self.conn.transaction():
                yield
        except psycopg.OperationalError as exc:
            raise Unreachable(f"lost the connection to PostgreSQL at {self.where}",
                              cause=self._clean(exc)) from exc
        except psycopg.Error as exc:
            raise self._error(exc, "commit") from exc

    def _clean(self, exc: BaseException) -> str:
        return self.secrets.redact_text(_one_line(str(exc)) or type(exc).__name__)[:300]

    def _error(self, exc: Any, what: str) -> DatabaseError:
        diag = getattr(exc, "diag", None)
        detail = [f"SQLSTATE {exc.sqlstate}"] if getattr(exc, "sqlstate", None) else []
        for attr in ("message_detail", "message_hint", "context"):
            value = getattr(diag, attr, None) if diag else None
            if value:
                detail.append(self.secrets.redact_text(str(value)))
        prefix = f"{what}: " if what else ""
        return DatabaseError(f"{prefix}{self._clean(exc)}", sqlstate=getattr(exc, "sqlstate", None),
                             evidence=detail)


class _AuthFailed(Exception):
    pass


_NO_DATABASE = re.compile(r'FATAL:\s+database "[^"]*" does not exist')


class _NoDatabase(Exception):
    """The server answered: the DSN's database does not exist (never clears by retrying)."""


@transient_retry(attempts=4, max_delay_s=20.0, max_wait_s=3.0)
def _connect(dsn: str, application_name: str, connect_timeout: int) -> Any:
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=True, application_name=application_name,
                               connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text or "no password supplied" in text \
                or exc.sqlstate in ("28P01", "28000"):
            raise _AuthFailed(text) from exc
        # libpq reports a refused connection without a SQLSTATE: read the server's FATAL line
        if exc.sqlstate == "3D000" or _NO_DATABASE.search(text):
            raise _NoDatabase(_one_line(text)) from exc
        raise TransientError(_one_line(text) or "no answer") from exc


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())[:300]
