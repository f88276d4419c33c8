"""A tiny scrape target whose ``up`` can be flipped; run as a script, never imported by the tests.

    python flappy_target.py HOST PORT

* ``GET /metrics``: the metrics, or 503 while down (Prometheus then records ``up == 0``).
* ``GET /metrics/NAME``: the same for the independent target NAME (one process serves several targets).
* ``POST /_control {"down": true|false, "name": "NAME"}``: flip it (no name: the default target); answers
  the new state of that target.
* ``GET /_control``: the default target's state, ``{"down": bool, "scrapes": int}``.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_LOCK = threading.Lock()
_STATES: dict[str, dict[str, bool | int]] = {}


def _state_of(name: str) -> dict[str, bool | int]:
    return _STATES.setdefault(name, {"down": False, "scrapes": 0})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: Prometheus scrapes every second
        pass

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _state(self, name: str = "") -> bytes:
        with _LOCK:
            return json.dumps(_state_of(name)).encode()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/_control":
            self._send(200, self._state(), "application/json")
            return
        if path != "/metrics" and not path.startswith("/metrics/"):
            self._send(404, b"not found\n", "text/plain")
            return
        with _LOCK:
            state = _state_of(path.removeprefix("/metrics").removeprefix("/"))
            state["scrapes"] = int(state["scrapes"]) + 1
            down, scrapes = bool(state["down"]), int(state["scrapes"])
        if down:
            self._send(503, b"simulated outage\n", "text/plain")
            return
        body = f"# TYPE flappy_scrapes_total counter\nflappy_scrapes_total {scrapes}\n".encode()
        self._send(200, body, "text/plain; version=0.0.4")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        if self.path.split("?", 1)[0] != "/_control":
            self._send(404, b"not found\n", "text/plain")
            return
        try:
            command = json.loads(raw)
            down = command["down"]
            name = command.get("name", "")
            if not isinstance(down, bool):
                raise TypeError("'down' must be a boolean")
            if not isinstance(name, str):
                raise TypeError("'name' must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        with _LOCK:
            _state_of(name)["down"] = down
        self._send(200, self._state(name), "application/json")


def main(argv: list[str]) -> None:
    host, port = argv[1], int(argv[2])
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    print(f"flappy target listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv)
