"""The simulator's HTTP server on 127.0.0.1, and its control endpoints for tests.

Vendor endpoints answer as documented; ``/_sim/...`` endpoints let tests and the demo read what
was received (``GET /_sim/requests``), read counters (``GET /_sim/stats``), switch on faults
(``POST /_sim/faults``) and start over (``POST /_sim/reset``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from trigger_relay_local.simulator.state import Answer, Faults, Received, Route, SimConfig, SimState
from trigger_relay_local.simulator.vendors import SIMULATED, VENDOR_OF

# Each simulated vendor's module: its ROUTES, which of them check the bearer token, and its
# answers for an invalid token, a lock and the fault modes that refuse a request.
ROUTES: list[Route] = [route for module in SIMULATED.values() for route in module.ROUTES]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    body: bytes = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is kept in memory, not printed

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.body = body
        if split.path.startswith("/_sim/"):
            return self._control(method, split.path, body)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            query.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        found = _route(method, split.path)
        if found is None:
            return self._send(404, "application/json", b'{"code":"404","status":"error"}')
        api, handler, match = found
        received = Received(
            api,
            method,
            split.path,
            query,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            time.time(),
        )
        state.record(received)
        fault = state.take_fault(api)
        answer = self._answer(state, api, handler, match, query, split.path, fault)
        if fault is not None and fault.mode == "accept_then_timeout":
            time.sleep(fault.delay_seconds or 15.0)  # longer than any client waits
        if answer is None or (fault is not None and fault.mode == "accept_then_reset"):
            self.close_connection = True
            self.connection.close()
            return None
        status, content_type, payload = answer
        received.answer_code = _answer_code(content_type, payload) or str(status)
        return self._send(status, content_type, payload)

    def _answer(
        self,
        state: SimState,
        api: str,
        handler: Any,
        match: re.Match[str],
        query: dict[str, str],
        uri: str,
        fault: Faults | None,
    ) -> Answer | None:
        if fault is not None and fault.mode is not None:
            refused = self._refusal(state, api, fault, uri, query)
            if refused is not None:
                return refused
        elif fault is not None:
            if fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            if fault.drop:
                return None
            if fault.status:
                return fault.status, "text/plain", b"simulated failure"
            if fault.lock and api in state.limits:
                state.limits[api].lock_now()
        vendor = VENDOR_OF[api]
        if api in vendor.BEARER_APIS and not state.token_valid(
            self.headers.get("Authorization", ""), vendor.TOKEN_SCHEME
        ):
            return vendor.invalid_token(uri, query)
        limit = state.limits.get(api)
        if limit is not None and not limit.admit():
            return vendor.locked(uri, query)
        return handler(state, match, query, uri, self)

    def _refusal(
        self, state: SimState, api: str, fault: Faults, uri: str, query: dict[str, str]
    ) -> Answer | None:
        """The answer of a fault mode that refuses the request; None where the request is
        acted on as usual (accept_then_timeout, accept_then_reset)."""
        host = self.headers.get("Host", "127.0.0.1")
        if fault.mode == "redirect":
            self._extra_headers = {"Location": f"https://{host}{self.path}"}
            return 301, "text/html", b"<html><body>Moved Permanently</body></html>"
        if fault.mode == "html_502":
            page = b"<html><head><title>502 Bad Gateway</title></head><body><center>"
            return 502, "text/html", page + b"<h1>502 Bad Gateway</h1></center></body></html>"
        if fault.mode == "uri_too_long":
            return 414, "text/html", b"<html><body>414 Request-URI Too Large</body></html>"
        if fault.mode == "rate_limited":
            self._extra_headers = {"Retry-After": str(fault.retry_after)}
            return 429, "text/plain", b"Too Many Requests"
        if fault.mode == "token_refused":
            vendor = VENDOR_OF[api]
            if api in vendor.BEARER_APIS:
                _, _, token = self.headers.get("Authorization", "").partition(" ")
                with state.mutex:
                    state.tokens.pop(token.strip(), None)  # revoked
            return vendor.invalid_token(uri, query)
        if fault.mode == "mint_refused":
            return VENDOR_OF[api].mint_refused()
        return None

    def _control(self, method: str, path: str, body: bytes) -> None:
        state = self.server.state
        if path == "/_sim/requests" and method == "GET":
            with state.mutex:
                data = [r.as_json() for r in state.received]
            return self._send(200, "application/json", json.dumps(data).encode())
        if path == "/_sim/stats" and method == "GET":
            return self._send(200, "application/json", json.dumps(stats(state)).encode())
        if path == "/_sim/faults" and method == "POST":
            state.faults = Faults(**json.loads(body or b"{}"))
            return self._send(200, "application/json", b"{}")
        if path == "/_sim/reset" and method == "POST":
            self.server.state = SimState(state.config)
            return self._send(200, "application/json", b"{}")
        return self._send(404, "application/json", b"{}")

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        for name, value in getattr(self, "_extra_headers", {}).items():
            self.send_header(name, value)
        self._extra_headers = {}
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (accept_then_timeout)


def _route(method: str, path: str) -> tuple[str, Any, re.Match[str]] | None:
    for methods, pattern, api, handler in ROUTES:
        match = pattern.match(path)
        if match and method in methods.split("|"):
            return api, handler, match
    return None


def _answer_code(content_type: str, payload: bytes) -> str | None:
    """The code the answer's body reports: Zoho's ``code``, Altcraft's ``error``, OAuth's error."""
    if "json" in content_type:
        try:
            body = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        for name in ("code", "error"):
            if name in body:
                return str(body[name])
        return None
    match = re.search(rb"<(code|error)>([^<]*)</(code|error)>", payload)
    return match.group(2).decode() if match else None


def stats(state: SimState) -> dict[str, Any]:
    with state.mutex:
        received = list(state.received)
    by_api: dict[str, int] = {}
    for r in received:
        by_api[r.api] = by_api.get(r.api, 0) + 1
    return {
        "received": by_api,
        "limits": {
            api: {
                "accepted": lim.accepted,
                "locks": lim.locks,
                "peak_in_window": lim.peak_in_window,
                "calls": lim.calls,
                "window_seconds": lim.window_seconds,
            }
            for api, lim in state.limits.items()
        },
        "tokens_minted": len(state.tokens),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: SimState) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.state = state


class Simulator:
    """Start with ``with Simulator(SimConfig.demo()) as sim:``; ``sim.url`` is its base URL."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self._server = _Server(SimState(config or SimConfig.demo()))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def state(self) -> SimState:
        return self._server.state

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def start(self) -> Simulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def access_token(self) -> str:
        """A valid Zoho access token, minted as a client would (counts against the mint limit)."""
        config = self.state.config
        token = self.state.mint_token()
        if token is None:
            raise RuntimeError(f"the simulator refuses more tokens for {config.client_id}")
        return token

    def received(self, api: str | None = None) -> list[Received]:
        with self.state.mutex:
            return [r for r in self.state.received if api is None or r.api == api]

    def set_faults(self, **faults: Any) -> None:
        self.state.faults = Faults(**faults)
