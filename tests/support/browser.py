"""Driving the dashboard in a real browser: Debian's chromium, headless, through playwright;
used by the browser test and ``bench/dashboard.py``."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ioc.up import dashboard_command
from tests.support.environment import inherited_environ

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ONLINE_GREEN = (46, 204, 113)  # dashboard.livemap.STATE_COLOURS["online"]


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling a condition, with a deadline
    raise AssertionError(f"{url} did not answer within {timeout_s}s")


def start_dashboard(database_url: str, port: int, refresh_s: float = 5) -> subprocess.Popen[bytes]:
    env = {
        **inherited_environ(),
        "IOC_DATABASE_URL": database_url,
        "IOC_DASHBOARD_REFRESH_S": str(refresh_s),
    }
    return subprocess.Popen(  # the command `ioc up` and `ioc dashboard` run
        dashboard_command(port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextmanager
def running_dashboard(database_url: str, refresh_s: float = 5) -> Iterator[str]:
    """A dashboard on ``database_url`` on a free port, up and answering; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = start_dashboard(database_url, port, refresh_s)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def settle(page: Any) -> None:
    """Wait until Streamlit has finished the run and the tables have drawn (for screenshots,
    and before a click: a form submitted while the page is still being redrawn can be lost)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        timeout=60_000
    )
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)
    grids = page.locator('[data-testid="stDataFrame"] canvas')
    if grids.count():
        grids.first.wait_for(state="visible")


def launch(p: Any) -> Any:
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def login(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def wait_map_drawn(page, timeout_s: float = 90) -> int:
    """Wait until the map canvas shows online towers; returns how many of its pixels do."""
    from PIL import Image

    canvas = page.locator("canvas").first
    try:
        canvas.wait_for(state="visible", timeout=timeout_s * 1000)
    except Exception:
        page.screenshot(path=ARTIFACTS / "failed-map.png", full_page=True)
        raise
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout_s
    green = 0
    while True:
        try:
            png = canvas.screenshot()
        except PlaywrightError:  # a rerun replaced the canvas mid-shot: look at the new one
            png = None
        if png is not None:
            shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
            green = int((np.abs(shot - np.array(ONLINE_GREEN)) < 30).all(axis=2).sum())
        if green > 200 or time.monotonic() > deadline:
            return green
        page.wait_for_timeout(250)  # poll the condition again, up to the deadline
