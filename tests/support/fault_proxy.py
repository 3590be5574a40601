"""A fault-injecting HTTP proxy for drills: it sits on 127.0.0.1 in front of a real server
(MLflow's), relays every request, logs what it saw, and makes chosen requests fail as an outage
would: `refused` (the connection closed without an answer), `hung` (no answer until the client
gives up), or `5xx` (503, no body a client could take for an answer).

    with FaultProxy(server.url) as proxy:
        proxy.fail("/registered-models/alias", "refused", after=1)  # the 2nd and later ones
        ...
        proxy.kinds()  # "GET /api/2.0/mlflow/registered-models/alias", ... in first-seen order

A fault matches a request by a piece of its path (and a method, if given); it spares the first
`after` matching requests, then fails `times` of them (None: all of them from then on).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

FaultMode = Literal["refused", "hung", "5xx"]
FAULT_MODES: tuple[FaultMode, ...] = ("refused", "hung", "5xx")
HUNG_MAX_SECONDS = 120.0  # a hung answer ends when the client gives up, or after this
# Hop-by-hop headers are the proxy's own business, not relayed.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    path: str
    mode: FaultMode
    after: int = 0
    times: int | None = None
    method: str | None = None
    seen: int = 0  # matching requests so far
    failed: int = 0  # of which failed

    def matches(self, method: str, path: str) -> bool:
        return self.path in path and (self.method is None or self.method == method)

    def strikes(self) -> bool:
        """Count one matching request; whether it is to fail."""
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.failed >= self.times):
            return False
        self.failed += 1
        return True


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    outcome: str  # the upstream's status code, or the fault's mode

    @property
    def kind(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class FaultProxy:
    """The proxy; a context manager that starts and stops its server thread."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(
        self,
        path: str,
        mode: FaultMode,
        *,
        after: int = 0,
        times: int | None = None,
        method: str | None = None,
    ) -> Fault:
        fault = Fault(path, mode, after, times, method)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """No faults, an empty log."""
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def kinds(self) -> list[str]:
        """The kinds of request seen ("METHOD /path"), in the order first seen."""
        with self._lock:
            return list(dict.fromkeys(seen.kind for seen in self.log))

    def failed(self) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.log if seen.outcome in FAULT_MODES]

    def __enter__(self) -> FaultProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _decide(self, method: str, path: str) -> FaultMode | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path) and fault.strikes():
                    return fault.mode
            return None

    def _saw(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append(Seen(method, path, outcome))


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as MLflow's client expects
        upstream_connection: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: object) -> None:
            pass  # the proxy's own log is `proxy.log`

        def relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            path = urlsplit(self.path).path
            mode = proxy._decide(self.command, path)
            proxy._saw(self.command, path, mode or "?")
            if mode == "refused":
                self._drop()
            elif mode == "hung":
                self._hang()
            elif mode == "5xx":
                self._answer(503, [("Content-Type", "text/plain")], b"Service Unavailable")
            else:
                status, headers, data = self._forward(body)
                with proxy._lock:
                    proxy.log[proxy.log.index(Seen(self.command, path, "?"))] = Seen(
                        self.command, path, str(status)
                    )
                self._answer(status, headers, data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = relay

        def _forward(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            reused = self.upstream_connection is not None
            try:
                response, data = self._ask_upstream(body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                # MLflow closed the kept-alive connection while it was idle (after ~5 s), so
                # it never read this request: ask again on a new one, as an HTTP client does.
                response, data = self._ask_upstream(body, headers)
            kept = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            ]
            return response.status, kept, data

        def _ask_upstream(
            self, body: bytes | None, headers: dict[str, str]
        ) -> tuple[http.client.HTTPResponse, bytes]:
            if self.upstream_connection is None:
                self.upstream_connection = http.client.HTTPConnection(
                    upstream.hostname or "127.0.0.1", upstream.port, timeout=300
                )
            try:
                self.upstream_connection.request(self.command, self.path, body, headers)
                response = self.upstream_connection.getresponse()
                return response, response.read()
            except (OSError, http.client.HTTPException):
                self.upstream_connection.close()
                self.upstream_connection = None
                raise

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _drop(self) -> None:
            """Close without a byte of answer, as a server that went away does."""
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _hang(self) -> None:
            """No answer: wait until the client gives up (it closes the connection)."""
            self.close_connection = True
            self.connection.settimeout(HUNG_MAX_SECONDS)
            with contextlib.suppress(OSError):
                while self.connection.recv(65536):
                    pass

        def finish(self) -> None:
            with contextlib.suppress(OSError):  # the client is gone: nothing to flush to
                super().finish()
            if self.upstream_connection is not None:
                self.upstream_connection.close()

    return Relay
