"""An SMS (or Zalo OA) gateway as a generic HTTP template: the URL, method, headers and body
come from settings with ``{to}``, ``{text}`` and ``{key}`` filled in (the key is the gateway's
secret, a setting too); answered like a webhook (2xx delivered; 4xx other than 408/429 dead;
``Retry-After`` honoured)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from processing.alerts.channels.base import exchange, failure
from processing.alerts.channels.message import ToRecipient
from processing.alerts.config import SmsSettings
from processing.alerts.routing import Recipient


def fill(template: str, values: dict[str, str], escape: Any = str) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced by ``escape(value)``; other
    braces (a JSON body's own) are left alone, unlike ``str.format``."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", escape(value))
    return template


class SmsChannel(ToRecipient):
    concurrency = 4

    def __init__(
        self,
        recipient: Recipient,
        settings: SmsSettings,
        rule_names: dict[str, tuple[str, str]],
        *,
        timeout_s: float,
        dashboard_url: str | None = None,
    ) -> None:
        super().__init__(recipient, rule_names, timeout_s=timeout_s, dashboard_url=dashboard_url)
        self.settings = settings
        self._http = httpx.AsyncClient(timeout=timeout_s)

    def request(self, payload: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
        """(URL, headers, body) of the gateway request for one transition."""
        s = self.settings
        m = self.rendered(payload)
        values = {"to": self.recipient.address[0], "text": m.text, "key": s.key or ""}
        headers = {k: fill(v, values) for k, v in s.headers.items()}
        kind = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if kind is None:
            kind = "application/json" if s.body.lstrip().startswith(("{", "[")) else (
                "application/x-www-form-urlencoded")  # fmt: skip
            headers["Content-Type"] = kind
        if "json" in kind:
            body = fill(s.body, values, lambda v: json.dumps(v, ensure_ascii=False)[1:-1])
        else:
            body = fill(s.body, values, lambda v: quote(v, safe=""))
        return fill(s.url, values, lambda v: quote(v, safe="")), headers, body.encode()

    async def send(self, payload: dict[str, Any]) -> None:
        url, headers, body = self.request(payload)
        answer = await exchange(self._http, self.timeout_s, self.settings.method, url,
                                headers=headers, content=body)  # fmt: skip
        if not answer.is_success:
            raise failure(answer)

    async def close(self) -> None:
        await self._http.aclose()
