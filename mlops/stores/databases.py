"""The server profile's PostgreSQL databases and Redis: created if missing, probed for health.

One PostgreSQL server holds four databases (`<prefix>_prefect`, `_mlflow`, `_feast`, and
`_predictions` for batch prediction's scores); the role
in `MLOPS_POSTGRES_DSN` creates them on first use, so a fresh server needs no manual step.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from mlops.config.errors import ServiceUnreachable, UserError
from mlops.config.settings import Settings

Purpose = Literal["prefect", "mlflow", "feast", "predictions"]
PURPOSES: tuple[Purpose, ...] = ("prefect", "mlflow", "feast", "predictions")
# Prefect's server searches with trigram indexes; the extension must exist in its database.
EXTENSIONS: dict[Purpose, tuple[str, ...]] = {"prefect": ("pg_trgm",)}
CONNECT_TIMEOUT_SECONDS = 5
RETRY_PAUSE_SECONDS = 1.0  # between attempts of `connect`


class StoreUnreachable(UserError):
    """PostgreSQL answered but refused the connection (no such database or role, a wrong
    password): the user's to fix. A PostgreSQL that does not answer is `ServiceUnreachable`."""


def ensure_databases(settings: Settings) -> list[str]:
    """Create the platform's databases (and their extensions) where missing; return those
    created. Idempotent, and safe when two processes race to create the same database."""
    import psycopg
    from psycopg import sql

    created = []
    with connect(settings.postgres_dsn.get_secret_value()) as admin:
        admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
        for purpose in PURPOSES:
            name = settings.database_name(purpose)
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                try:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
                except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    pass  # another process created it first
    for purpose, extensions in EXTENSIONS.items():
        url = settings.database_url(purpose, "psycopg").replace("postgresql+psycopg", "postgresql")
        with connect(url) as database:
            database.autocommit = True
            for extension in extensions:
                create = sql.SQL("CREATE EXTENSION IF NOT EXISTS {}")
                # UniqueViolation: another process created it at the same moment.
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    database.execute(create.format(sql.Identifier(extension)))
    return created


def drop_databases(settings: Settings) -> None:
    """Drop the platform's databases (tests, and `mlops down --purge`)."""
    from psycopg import sql

    with connect(settings.postgres_dsn.get_secret_value()) as admin:
        admin.autocommit = True
        for purpose in PURPOSES:
            name = sql.Identifier(settings.database_name(purpose))
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def postgres_problem(settings: Settings) -> str | None:
    """None if PostgreSQL answers a query, else why not."""
    try:
        with connect(settings.postgres_dsn.get_secret_value()) as connection:
            connection.execute("SELECT 1")
    except ServiceUnreachable as err:
        return err.cause
    except StoreUnreachable as err:
        return str(err)
    return None


def postgres_answer(dsn: str) -> str | None:
    """None if the PostgreSQL server at `dsn` answers (a refused role or database is an
    answer), else why not in a few words: a probe."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
    except psycopg.OperationalError as err:
        return None if postgres_answered(str(err)) else _postgres_cause(str(err))
    return None


def redis_answer(redis_url: str) -> str | None:
    """None if the Redis server at `redis_url` answers PING (refused credentials are an
    answer), else why not in a few words: a probe, one try (the caller retries)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError):
        return None
    except redis.TimeoutError:
        return f"no answer in time ({CONNECT_TIMEOUT_SECONDS} s)"
    except redis.ConnectionError as err:
        return "connection refused" if "refused" in str(err).lower() else str(err)
    finally:
        client.close()
    return None


def redis_problem(settings: Settings) -> str | None:
    """None if Redis answers PING, else why not."""
    import redis

    if (cause := redis_answer(settings.redis_url.get_secret_value())) is not None:
        return cause  # no answer: said in a few words, not in the client's
    try:
        client = redis.Redis.from_url(
            settings.redis_url.get_secret_value(), socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        client.ping()
        client.close()
    except redis.RedisError as err:
        return f"Redis at {_where(settings.redis_url.get_secret_value())}: {err}"
    return None


def feast_redis_connection(redis_url: str) -> str:
    """Feast's Redis connection string (`host:port,db=N,password=...,ssl=true`) for a
    `redis://` or `rediss://` URL."""
    url = urlsplit(redis_url)
    parts = [f"{url.hostname}:{url.port or 6379}"]
    database = url.path.strip("/") or parse_qs(url.query).get("db", ["0"])[0]
    parts.append(f"db={int(database)}")
    if url.username and url.username != "default":
        parts.append(f"username={url.username}")
    if url.password:
        parts.append(f"password={url.password}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def connect(dsn: str, attempts: int = 1) -> Any:
    """A psycopg connection; PostgreSQL not answering `attempts` times, a second apart, is
    `ServiceUnreachable`; refusing (a role, a database, a password) is `StoreUnreachable` at
    once. Probes ask once; work that must not fail on a restart's blip asks again."""
    import psycopg

    attempt = 1
    while True:
        try:
            return psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.OperationalError as err:
            if postgres_answered(str(err)):
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise StoreUnreachable(f"PostgreSQL at {_where(dsn)}: {first}") from err
            if attempt >= attempts:
                where = f"{urlsplit(dsn).scheme}://{_where(dsn)}"
                raise ServiceUnreachable("PostgreSQL", where, _postgres_cause(str(err))) from err
        attempt += 1
        time.sleep(RETRY_PAUSE_SECONDS)


def postgres_answered(message: str) -> bool:
    """Whether a failed connection got as far as the server, which then refused a database,
    a role or a password (libpq quotes the server's FATAL, or asks for a password)."""
    return "FATAL" in message or "password" in message.lower()


def _postgres_cause(message: str) -> str:
    if "refused" in message.lower():
        return "connection refused"
    if "timeout" in message.lower():
        return f"no answer in time ({CONNECT_TIMEOUT_SECONDS} s)"
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "the connection failed"


def _where(url: str) -> str:
    """host:port/database of a URL, without its credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname}{port}{parts.path}"
