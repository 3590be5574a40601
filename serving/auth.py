"""The prediction service's API key: with `MLOPS_AUTH__SERVING_API_KEY` set, every route asks
for `Authorization: Bearer <key>`, except the probes and metrics (`OPEN_PATHS`) that
orchestrators and Prometheus scrape without credentials. Bound beyond loopback, the service
refuses to start without a key: it would be open to the network.

A pure ASGI middleware, so it also guards the mounted prediction routes (BentoML applies
service middlewares to them) and can be tested without BentoML.
"""

from __future__ import annotations

import hmac
from typing import Any

from mlops.config.errors import UserError
from mlops.config.settings import Settings, is_loopback
from serving.http_limits import Receive, Scope, Send, json_error

OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
KEY_VARIABLE = "MLOPS_AUTH__SERVING_API_KEY"


class ApiKey:
    """Refuses requests without the key: 401 with a JSON `{"error": ...}` and a
    `WWW-Authenticate: Bearer` challenge (RFC 6750). The key is compared in constant time."""

    def __init__(self, app: Any, api_key: str) -> None:
        if not api_key:
            raise ValueError("an empty API key would let every request in")
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = bearer_token(scope["headers"])
        if given is not None and hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        if given is None:
            # No credentials: a bare challenge, no error code (RFC 6750, section 3.1).
            message, challenge = (
                f"send the API key: Authorization: Bearer <{KEY_VARIABLE}>",
                b"Bearer",
            )
        else:
            message, challenge = "wrong API key", b'Bearer error="invalid_token"'
        await json_error(send, 401, message, [(b"www-authenticate", challenge)])


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of the first `Authorization: Bearer` header (the scheme is case-insensitive),
    as raw bytes: no decoding, so no header can make this fail."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


def auth_headers(settings: Settings) -> dict[str, str]:
    """What a client of the service sends (the infra check, the lifecycle's traffic)."""
    key = settings.auth.serving_api_key
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def require_api_key_beyond_loopback(settings: Settings) -> None:
    """A UserError if the service would listen beyond loopback without an API key."""
    host = settings.serving.host
    if not is_loopback(host) and not settings.auth.serving_api_key:
        raise UserError(
            f"the prediction service would listen on {host} (MLOPS_SERVING__HOST), beyond "
            f"loopback, without an API key: set {KEY_VARIABLE}, or bind it to 127.0.0.1"
        )
