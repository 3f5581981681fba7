"""Telegram Bot API: ``POST {api}/bot{token}/sendMessage`` with the chat id and the text.

Telegram answers JSON ``{"ok": false, "error_code", "description", "parameters"}``: a 429
carries ``parameters.retry_after`` (seconds), honoured; a 400 (chat not found, bot blocked)
or 403 cannot get better and the row is dead."""

from __future__ import annotations

import html
from typing import Any

import httpx

from processing.alerts.channels.base import exchange, failure
from processing.alerts.channels.message import ToRecipient
from processing.alerts.config import TelegramSettings
from processing.alerts.routing import Recipient


class TelegramChannel(ToRecipient):
    concurrency = 1  # Telegram allows about one message a second per chat

    def __init__(
        self,
        recipient: Recipient,
        settings: TelegramSettings,
        rule_names: dict[str, tuple[str, str]],
        *,
        timeout_s: float,
        dashboard_url: str | None = None,
    ) -> None:
        super().__init__(recipient, rule_names, timeout_s=timeout_s, dashboard_url=dashboard_url)
        self.url = f"{settings.api_url.rstrip('/')}/bot{settings.token}/sendMessage"
        self._http = httpx.AsyncClient(timeout=timeout_s)

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        m = self.rendered(payload)
        # HTML mode: the header in bold; everything else escaped, never read as markup.
        text = "\n".join(
            (f"<b>{html.escape(m.subject)}</b>", *map(html.escape, (m.summary, *m.lines)))
        )
        return {"chat_id": self.recipient.address[0], "text": text, "parse_mode": "HTML",
                "disable_web_page_preview": True}  # fmt: skip

    async def send(self, payload: dict[str, Any]) -> None:
        answer = await exchange(self._http, self.timeout_s, "POST", self.url,
                                json=self.body(payload))  # fmt: skip
        if answer.is_success:
            return
        error = failure(answer)
        try:
            found = answer.json()
        except ValueError:
            found = {}
        if isinstance(found, dict):
            error.args = (f"Telegram {answer.status_code}: {found.get('description', '')}",)
            after = (found.get("parameters") or {}).get("retry_after")
            if isinstance(after, int | float) and error.retry_after_s is None:
                error.retry_after_s = float(after)
        # The token is in the URL: never let it reach a log or the outbox's last_error.
        raise error

    async def close(self) -> None:
        await self._http.aclose()
