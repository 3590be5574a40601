"""The prediction service's API key middleware, as plain ASGI (no BentoML), and the refusal to
listen beyond loopback without a key."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import SecretStr

from mlops.config.errors import UserError
from mlops.config.settings import Settings
from serving.auth import ApiKey, auth_headers, bearer_token, require_api_key_beyond_loopback

KEY = "s3cret-key"


def call(
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    scope_type: str = "http",
    method: str = "POST",
) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages the middleware sent, and the paths that reached the app behind it."""
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def app(scope, receive, send):
        reached.append(scope.get("path", scope["type"]))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope: dict[str, Any] = {"type": scope_type}
    if scope_type != "lifespan":
        scope.update(path=path, method=method, headers=headers or [])
    asyncio.run(ApiKey(app, api_key=KEY)(scope, receive, send))
    return sent, reached


def status_of(sent: list[dict[str, Any]]) -> int:
    return sent[0]["status"]


def header(sent: list[dict[str, Any]], name: bytes) -> bytes | None:
    return dict(sent[0]["headers"]).get(name)


@pytest.mark.parametrize(
    "path", ["/predict", "/predict_batch", "/model", "/", "/docs", "/docs.json", "/schema.json"]
)
def test_a_request_without_the_key_is_refused_with_a_bearer_challenge(path):
    sent, reached = call(path)
    assert reached == []
    assert status_of(sent) == 401
    assert header(sent, b"www-authenticate") == b"Bearer"
    assert header(sent, b"content-type") == b"application/json"
    body = json.loads(sent[1]["body"])
    assert list(body) == ["error"]
    assert "MLOPS_AUTH__SERVING_API_KEY" in body["error"]
    assert int(header(sent, b"content-length") or 0) == len(sent[1]["body"])


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer wrong",
        b"Bearer " + KEY.encode() + b"x",
        b"Bearer " + KEY[:-1].encode(),
        b"Basic " + KEY.encode(),
        KEY.encode(),
        b"Bearer",
        b"Bearer  ",
        b"Bearer \xff\xfe",  # not UTF-8: refused, never a 500
    ],
)
def test_a_wrong_or_malformed_key_is_refused(authorization):
    sent, reached = call("/predict", [(b"authorization", authorization)])
    assert reached == []
    assert status_of(sent) == 401
    assert (header(sent, b"www-authenticate") or b"").startswith(b"Bearer")
    assert json.loads(sent[1]["body"])["error"]


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer " + KEY.encode(), b"bearer " + KEY.encode(), b"BEARER  " + KEY.encode() + b" "],
)
def test_the_key_lets_the_request_through(authorization):
    sent, reached = call("/predict", [(b"Authorization", authorization)])
    assert reached == ["/predict"]
    assert status_of(sent) == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_probes_and_metrics_stay_open(path, method):
    sent, reached = call(path, method=method)
    assert reached == [path]
    assert status_of(sent) == 200


def test_lookalikes_of_open_paths_are_not_open():
    for path in ("/livez/", "/readyz/x", "/metricsx", "/metrics/../predict"):
        sent, reached = call(path)
        assert reached == [] and status_of(sent) == 401, path


def test_lifespan_passes_and_a_websocket_without_the_key_is_closed():
    _, reached = call("", scope_type="lifespan")
    assert reached == ["lifespan"]
    sent, reached = call("/ws", scope_type="websocket")
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]


def test_an_empty_key_is_refused_at_construction():
    with pytest.raises(ValueError, match="empty"):
        ApiKey(lambda *a: None, api_key="")


def test_bearer_token_takes_the_first_authorization_header():
    headers = [(b"x-other", b"1"), (b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")]
    assert bearer_token(headers) == b"a"
    assert bearer_token([(b"x-other", b"Bearer a")]) is None


def settings(host: str, key: str | None) -> Settings:
    return Settings.model_validate(
        {
            "serving": {"host": host},
            "auth": {"serving_api_key": SecretStr(key) if key is not None else None},
        }
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org"])
def test_beyond_loopback_without_a_key_is_refused_with_one_line(host):
    with pytest.raises(UserError) as refused:
        require_api_key_beyond_loopback(settings(host, None))
    message = str(refused.value)
    assert "\n" not in message
    assert host in message and "MLOPS_AUTH__SERVING_API_KEY" in message
    with pytest.raises(UserError):
        require_api_key_beyond_loopback(settings(host, ""))  # empty is no key
    require_api_key_beyond_loopback(settings(host, KEY))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_key(host):
    require_api_key_beyond_loopback(settings(host, None))


def test_clients_send_the_key_when_one_is_set():
    assert auth_headers(settings("127.0.0.1", None)) == {}
    assert auth_headers(settings("0.0.0.0", KEY)) == {"Authorization": f"Bearer {KEY}"}
