"""A real HTTP reverse proxy on 127.0.0.1 that records every request and injects network faults.

Put it between a client and a server on loopback (point the client at ``proxy.url``) to make
real failures happen on the wire: an HTTP 503 or 429 answered by the proxy, a connection reset
before the request reaches the server, a reset after the server has done the work (the answer
is lost), or an answer relayed late. Every request it sees is recorded with what the proxy did
to it, so a test can assert that the client retried, and what it sent.
:class:`HttpFaultInjector` aims it at Storage operations, for :class:`StorageFaultContract`.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlparse

from durably.testing.faults import Fault, Operation

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclass
class FaultRule:
    """Let ``skip`` requests that ``matches`` accepts through, then apply ``fault`` to ``times`` more."""

    fault: Fault
    times: int
    matches: Callable[[str, str], bool]
    skip: int = 0
    applied: int = 0


@dataclass(frozen=True)
class SeenRequest:
    """One request as the proxy received it, and what became of it (``forwarded`` or a Fault value)."""

    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    outcome: str
    status: int | None = None


@dataclass
class _State:
    upstream_host: str
    upstream_port: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: list[FaultRule] = field(default_factory=list)
    seen: list[SeenRequest] = field(default_factory=list)
    proxy_origin: str = ""
    slow_seconds: float = 0.5

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for rule in self.rules:
                if rule.applied < rule.times and rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.applied += 1
                    return rule.fault
        return None

    def record(self, request: SeenRequest) -> None:
        with self.lock:
            self.seen.append(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # the record in the proxy is the log

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _handle(self) -> None:
        state = self.server.state
        body = self._read_body()
        headers = {name: value for name, value in self.headers.items()}
        fault = state.fault_for(self.command, self.path)

        def record(outcome: str, status: int | None = None) -> None:
            state.record(SeenRequest(self.command, self.path, headers, len(body), outcome, status))

        if fault is Fault.RESET:
            record(fault.value)
            self._reset_connection()
            return
        if fault in (Fault.SERVICE_UNAVAILABLE, Fault.TOO_MANY_REQUESTS):
            status = int(fault.value)
            record(fault.value, status)
            payload = b'{"error": {"code": %d, "message": "injected by the test proxy"}}' % status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(state.upstream_host, state.upstream_port, timeout=120)
        try:
            forward_headers = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            forward_headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=forward_headers)
            response = upstream.getresponse()
            payload = response.read()
            response_headers = response.getheaders()
        finally:
            upstream.close()
        if fault is Fault.DROP_RESPONSE:
            record(fault.value, response.status)
            self._reset_connection()
            return
        if fault is Fault.SLOW_RESPONSE:
            time.sleep(state.slow_seconds)
        record("forwarded" if fault is None else fault.value, response.status)
        self.send_response_only(response.status, response.reason)
        upstream_origin = f"http://{state.upstream_host}:{state.upstream_port}"
        for name, value in response_headers:
            if name.lower() in _HOP_BY_HOP:
                continue
            if name.lower() == "location":  # keep resumable-upload sessions going through the proxy
                value = value.replace(upstream_origin, state.proxy_origin)
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class HttpFaultProxy:
    """A reverse proxy from ``url`` (on 127.0.0.1) to ``upstream``; use as a context manager.

    ``slow_seconds`` is how late :attr:`Fault.SLOW_RESPONSE` relays an answer: keep it below
    the client's read timeout, so that the answer is late but not lost.
    """

    def __init__(self, upstream: str, *, slow_seconds: float = 0.5) -> None:
        parsed = urlparse(upstream)
        if parsed.scheme != "http" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self._state = _State(parsed.hostname, parsed.port, slow_seconds=slow_seconds)
        self._server = _ProxyServer(self._state)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._state.proxy_origin = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-fault-proxy", daemon=True
        )

    def __enter__(self) -> HttpFaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def inject(
        self,
        fault: Fault,
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        skip: int = 0,
    ) -> FaultRule:
        """Apply ``fault`` to ``times`` requests matching method and path fragment, after ``skip``."""

        def matches(request_method: str, path: str) -> bool:
            return (method is None or request_method == method) and (
                path_contains is None or path_contains in path
            )

        rule = FaultRule(fault, times, matches, skip)
        with self._state.lock:
            self._state.rules.append(rule)
        return rule

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.seen)

    def forget(self) -> None:
        """Drop the record of requests and every fault rule."""
        with self._state.lock:
            self._state.seen.clear()
            self._state.rules.clear()


@dataclass(frozen=True)
class HttpRoute:
    """The requests that carry one Storage operation: an HTTP method and, optionally, a path fragment."""

    method: str
    path_contains: str | None = None

    def matches(self, request: SeenRequest) -> bool:
        """Whether ``request`` is one of this route's."""
        return request.method == self.method and (
            self.path_contains is None or self.path_contains in request.path
        )


class HttpFaultInjector:
    """A :class:`~durably.testing.FaultInjector` over an :class:`HttpFaultProxy`.

    ``routes`` maps each Storage operation to the request that carries it, e.g. for S3
    ``{"put": HttpRoute("PUT"), "get": HttpRoute("GET"), "exists": HttpRoute("HEAD"), ...}``.
    A route needs to single out its operation's request only among the requests that operation
    itself sends (a listing before a batch delete, a metadata read after a refused create).
    """

    def __init__(self, proxy: HttpFaultProxy, routes: Mapping[Operation, HttpRoute]) -> None:
        self.proxy = proxy
        self.routes = dict(routes)

    def _route(self, operation: Operation) -> HttpRoute:
        try:
            return self.routes[operation]
        except KeyError:
            known = ", ".join(sorted(self.routes))
            raise ValueError(
                f"no HttpRoute for the operation {operation!r}; routes given for: {known}"
            ) from None

    def inject(self, fault: Fault, operation: Operation, *, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests on ``operation``'s route."""
        route = self._route(operation)
        self.proxy.inject(fault, times=times, method=route.method, path_contains=route.path_contains)

    def outcomes(self, operation: Operation) -> list[str]:
        """What became of each request on ``operation``'s route, in order."""
        route = self._route(operation)
        return [seen.outcome for seen in self.proxy.requests if route.matches(seen)]

    def forget(self) -> None:
        """Drop the proxy's record of requests and its fault rules."""
        self.proxy.forget()
