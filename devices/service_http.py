"""Every service's ``/metrics`` and ``/health``, one implementation.

It lives in devices/ because that is the one package every service (ingest/, processing/,
dashboard/) may import and which imports nothing of ours (DESIGN.md's folder rules): like
``mqtt_client``, it is plumbing the services share, not a concept of any one of them.

- ``/metrics``: the Prometheus text exposition of the service's own registry (several
  services run in one test process, so none uses the global one).
- ``/health``: 200 with a JSON body while the service says it is well, else 503 with the
  same JSON, whose ``reason`` says why (for compose health checks and load balancers).

:class:`Heartbeat` is the usual health rule: a loop beats once per pass, and is judged stuck
when it has not beaten for ``stale_after_s``; a loop that ended says why it did.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("ioc.metrics")

# (well?, what to say): the body of /health is the dict, its status 200 or 503.
HealthAnswer = tuple[bool, dict[str, Any]]


class Heartbeat:
    """Alive while :meth:`beat` was called within ``stale_after_s`` (monotonic time)."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self._last: float | None = None
        self._ended: str | None = None

    def beat(self) -> None:
        self._last = time.monotonic()
        self._ended = None

    def ended(self, reason: str) -> None:
        """The loop stopped (its reason is the answer until it beats again)."""
        self._ended = reason

    def answer(self, **extra: Any) -> HealthAnswer:
        if self._ended is not None:
            return False, {"reason": self._ended, **extra}
        if self._last is None:
            return False, {"reason": "starting", **extra}
        age = time.monotonic() - self._last
        if age > self.stale_after_s:
            reason = f"no loop pass for {age:.1f} s (limit {self.stale_after_s:g} s)"
            return False, {"reason": reason, "loop_age_s": round(age, 3), **extra}
        return True, {"loop_age_s": round(age, 3), **extra}


def serve_http(
    address: str,
    port: int,
    exposition: Callable[[], bytes],
    health: Callable[[], HealthAnswer],
    *,
    name: str = "metrics-http",
) -> ThreadingHTTPServer:
    """Start ``/metrics`` and ``/health`` on a daemon thread; ``server.shutdown()`` then
    ``server.server_close()`` stop it. Raises ``OSError`` when the port is taken."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, kind = exposition(), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/health"):
                try:
                    well, said = health()
                except Exception as err:  # a health check that fails is an answer too
                    well, said = False, {"reason": f"health check failed: {err}"}
                body = json.dumps(said, default=str).encode()
                status, kind = (200 if well else 503), "application/json"
            else:
                body, status, kind = b"/metrics or /health\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def registry_exposition(registry: CollectorRegistry) -> Callable[[], bytes]:
    return lambda: generate_latest(registry)


class Served:
    """A service's HTTP side, started when it has a port and stopped with the service; a port
    already taken is a warning, not a failed service (metrics are for its operators)."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None

    def start(
        self,
        address: str,
        port: int | None,
        registry: CollectorRegistry,
        health: Callable[[], HealthAnswer],
        *,
        name: str,
    ) -> None:
        if not port or self.server is not None:
            return
        try:
            self.server = serve_http(
                address, port, registry_exposition(registry), health, name=name
            )
        except OSError as err:
            log.warning("%s: /metrics port %s:%d not served: %s", name, address, port, err)

    @property
    def port(self) -> int | None:
        return None if self.server is None else int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
