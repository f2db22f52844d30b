"""HTTP to endpoints the operator granted (``scheme://host:port``)."""

import json as _json
from typing import Dict, Optional

from componentize_py_types import Err
from wit_world.imports import http as _http

from .errors import backend_unavailable, internal, invalid_argument

Request = _http.Request
Response = _http.Response


def from_http_error(url: str, error) -> Err:
    m = getattr(error, "value", str(error))
    if isinstance(error, _http.HttpError_Denied):
        return backend_unavailable(f"HTTP to {url} refused: {m}")
    if isinstance(error, (_http.HttpError_TimedOut, _http.HttpError_Connection)):
        return backend_unavailable(f"{url}: {m}")
    if isinstance(error, _http.HttpError_InvalidRequest):
        return invalid_argument(f"{url}: {m}")
    return internal(f"{url}: {m}")


def send(
    method: str,
    url: str,
    body: bytes = b"",
    headers: Optional[Dict[str, str]] = None,
    credential: Optional[str] = None,
    timeout_ms: Optional[int] = None,
) -> _http.Response:
    """Sends one request; a refused or failed request raises a driver error."""
    req = _http.Request(method, url, sorted((headers or {}).items()), body, credential, timeout_ms)
    try:
        return _http.send(req)
    except Err as e:
        raise from_http_error(url, e.value) from None


def json_request(
    method: str,
    url: str,
    body=None,
    credential: Optional[str] = None,
    timeout_ms: Optional[int] = None,
    ok=range(200, 300),
):
    """A JSON request: ``body`` (any JSON value) out, the decoded answer back (None for an
    empty body). A status outside ``ok`` raises an internal error with the answer's text."""
    headers = {"accept": "application/json"}
    data = b""
    if body is not None:
        headers["content-type"] = "application/json"
        data = _json.dumps(body).encode()
    resp = send(method, url, data, headers, credential, timeout_ms)
    if resp.status not in ok:
        text = resp.body[:500].decode("utf-8", "replace")
        raise internal(f"{method} {url} answered {resp.status}: {text}")
    if not resp.body:
        return None
    return _json.loads(resp.body)
