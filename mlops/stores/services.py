"""The services the platform asks before it decides (the Prefect API, MLflow, PostgreSQL,
Redis): where the settings in force put each, whether it answers, and which of them an
exception says did not.

`require` is the check a command makes before its work: a cheap probe of each service it
needs, a few tries over a few seconds, then `ServiceUnreachable` naming the service and its
URL. A library left alone waits minutes on a dead server (MLflow's client retried for over four
minutes) and then says so in its own words. `unreachable_in` reads a failure that happened
anyway (a service that died mid-command): the `ServiceUnreachable` in its chain, or one made
from a refused or timed-out connection to a known service's address.

Only what these settings make remote is asked: MLflow over HTTP, a Prefect API at a URL, and
PostgreSQL and Redis in the server profile. SQLite files and an ephemeral Prefect server are
not services that can be down.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from mlops.config.errors import ServiceUnreachable
from mlops.config.settings import Settings, is_loopback

ServiceName = Literal["prefect", "mlflow", "postgres", "redis"]
# One try waits this long for an answer; a service slower than that to say it is healthy is
# not one a command should start work against.
PROBE_TIMEOUT_SECONDS = 5.0
# Waits between tries: three tries over about four seconds ride out a restart's last moments
# or a dropped packet; a hung service costs at most three timeouts more (under 20 s in all).
PROBE_WAITS_SECONDS = (1.0, 3.0)
REFUSED = "connection refused"
NO_ANSWER = "no answer in time"


@dataclass(frozen=True)
class Endpoint:
    """A service as the platform reaches it: its name for people, its URL without
    credentials, and a probe that returns None when it answers, else why not."""

    service: str
    url: str
    probe: Callable[[], str | None]

    def addresses(self) -> list[str]:
        """How a library's error message may spell this endpoint's address."""
        parts = urlsplit(self.url)
        hosts = {parts.hostname or ""}
        if is_loopback(parts.hostname or ""):
            hosts |= {"127.0.0.1", "localhost"}
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        found = [f"{host}:{port}" for host in hosts]
        # psycopg: connection to server at "127.0.0.1", port 5432 failed
        found += [f'"{host}", port {port}' for host in hosts]
        return found


def endpoints(settings: Settings) -> dict[ServiceName, Endpoint]:
    """The remote services these settings make the platform ask, by key."""
    found: dict[ServiceName, Endpoint] = {}
    # An exported PREFECT_API_URL is the one Prefect uses (`Settings.apply` lets it win).
    prefect_api = os.environ.get("PREFECT_API_URL") or settings.prefect_api_url
    if prefect_api and prefect_api.startswith(("http:", "https:")):
        auth = settings.auth.prefect_auth_string
        prefect_health = f"{prefect_api.rstrip('/')}/health"
        prefect_auth = auth.get_secret_value() if auth else None
        found["prefect"] = Endpoint(
            "the Prefect API",
            redact(prefect_api),
            lambda: _http_problem(prefect_health, prefect_auth),
        )
    tracking = settings.tracking_uri
    if tracking.startswith(("http:", "https:")):
        password = settings.auth.mlflow_admin_password
        mlflow_health = f"{tracking.rstrip('/')}/health"
        mlflow_auth = (
            f"{settings.auth.mlflow_admin_user}:{password.get_secret_value()}" if password else None
        )
        found["mlflow"] = Endpoint(
            "MLflow", redact(tracking), lambda: _http_problem(mlflow_health, mlflow_auth)
        )
    if settings.profile == "server":
        from mlops.stores.databases import postgres_answer, redis_answer

        dsn = settings.postgres_dsn.get_secret_value()
        found["postgres"] = Endpoint("PostgreSQL", redact(dsn), lambda: postgres_answer(dsn))
        redis_url = settings.redis_url.get_secret_value()
        found["redis"] = Endpoint("Redis", redact(redis_url), lambda: redis_answer(redis_url))
    return found


def require(settings: Settings, needed: Iterable[ServiceName]) -> None:
    """Return once each of `needed` that these settings make remote answers; raise
    `ServiceUnreachable` for the first that does not, after its bounded tries."""
    known = endpoints(settings)
    for name in needed:
        if name in known:
            check(known[name])


def check(endpoint: Endpoint) -> None:
    """Probe `endpoint` up to three times; `ServiceUnreachable` if it never answers."""
    problem = endpoint.probe()
    for wait in PROBE_WAITS_SECONDS:
        if problem is None:
            return
        time.sleep(wait)
        problem = endpoint.probe()
    if problem is not None:
        raise ServiceUnreachable(endpoint.service, endpoint.url, problem)


def unreachable_in(error: BaseException, settings: Settings | None) -> ServiceUnreachable | None:
    """The `ServiceUnreachable` that `error` is or was raised from; else one for a refused,
    reset or timed-out connection in its chain to a known service's address (or to the one
    URL the chain names). None: no outage in it, a failure of another kind."""
    chain = list(_chain(error))
    for seen in chain:
        if isinstance(seen, ServiceUnreachable):
            return seen
    if not any(_is_connection_failure(seen) for seen in chain):
        return None
    texts = [str(seen) for seen in chain] + [_request_url(seen) for seen in chain]
    cause = _cause(chain, texts)
    if settings is not None:
        for endpoint in endpoints(settings).values():
            if any(address in text for address in endpoint.addresses() for text in texts):
                return ServiceUnreachable(endpoint.service, endpoint.url, cause)
    urls = {_base_url(url) for text in texts for url in re.findall(r"https?://[^\s'\"),]+", text)}
    if len(urls) == 1:
        return ServiceUnreachable("the service", urls.pop(), cause)
    return None


def redact(url: str) -> str:
    """`url` without its credentials or query: what a message may show."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _http_problem(url: str, basic_auth: str | None) -> str | None:
    """None if the server gives any answer below 500 (401 and 404 are answers: the command
    will say what is wrong with them), else why not."""
    request = urllib.request.Request(url)
    if basic_auth:
        token = base64.b64encode(basic_auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS):
            return None
    except urllib.error.HTTPError as err:
        return None if err.code < 500 else f"it answered {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return _os_cause(getattr(err, "reason", err))


def _os_cause(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return REFUSED
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"{NO_ANSWER} ({PROBE_TIMEOUT_SECONDS:g} s)"
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve"
    return str(reason) or type(reason).__name__


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connection_types() -> tuple[type[BaseException], ...]:
    """Connection failures of the clients the platform uses, for those already imported
    (a library not imported raised nothing)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror]
    if "requests" in sys.modules:
        import requests

        found += [requests.ConnectionError, requests.Timeout]
    if "urllib3" in sys.modules:
        import urllib3

        found += [urllib3.exceptions.NewConnectionError, urllib3.exceptions.MaxRetryError]
    if "httpx" in sys.modules:
        import httpx

        found += [httpx.TransportError]
    if "redis" in sys.modules:
        import redis

        found += [redis.ConnectionError, redis.TimeoutError]
    return tuple(found)


def _is_connection_failure(error: BaseException) -> bool:
    if "redis" in sys.modules:
        import redis

        if isinstance(error, redis.AuthenticationError):  # a ConnectionError that answered
            return False
    if "psycopg" in sys.modules:
        import psycopg

        from mlops.stores.databases import postgres_answered

        if isinstance(error, psycopg.OperationalError):
            # A query the server refused carries its SQLSTATE; a connection it never made none.
            return error.sqlstate is None and not postgres_answered(str(error))
    return isinstance(error, _connection_types())


def _cause(chain: list[BaseException], texts: list[str]) -> str:
    if any(isinstance(seen, ConnectionRefusedError) for seen in chain) or any(
        "refused" in text.lower() for text in texts
    ):
        return REFUSED
    if any(isinstance(seen, TimeoutError | socket.timeout) for seen in chain) or any(
        "timed out" in text.lower() or "timeout" in text.lower() for text in texts
    ):
        return NO_ANSWER
    if any(isinstance(seen, socket.gaierror) for seen in chain):
        return "its host name does not resolve"
    return "the connection failed"


def _request_url(error: BaseException) -> str:
    """The URL an HTTP client's error was about (requests and httpx keep the request)."""
    try:
        request = getattr(error, "request", None)
    except RuntimeError:  # httpx raises when an error has no request attached
        return ""
    return str(getattr(request, "url", "") or "")


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    return redact(f"{parts.scheme}://{parts.netloc}")
