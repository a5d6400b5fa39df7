"""The application's warm endpoint, as the `http` warmer calls it (POST
?critical_only=true|false), on loopback: it records every call, and can hold the first ones
open until released, so a case knows the warm step is inside a call when it kills the worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class WarmEndpoint:
    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.calls: list[str] = []  # "critical" or "all", in arrival order
        self.holding = threading.Event()  # a held call has arrived
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/warm"

    def arrive(self, query: str) -> bool:
        """Record a call; True when it is to be held."""
        critical = parse_qs(query).get("critical_only", [""])[0] == "true"
        with self._lock:
            self.calls.append("critical" if critical else "all")
            held = len(self.calls) <= self.hold
        if held:
            self.holding.set()
        return held

    def wait_released(self) -> None:
        self._release.wait(300)

    def release(self) -> None:
        self._release.set()


@contextmanager
def warm_endpoint(hold: int = 0) -> Iterator[WarmEndpoint]:
    """`hold`: how many of the first calls stay open until release() (or the end)."""
    endpoint = WarmEndpoint(hold)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if endpoint.arrive(urlparse(self.path).query):
                endpoint.wait_released()
            try:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"warmed")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller was killed while the call was held: nobody to answer

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        endpoint.release()
        server.shutdown()
        server.server_close()
