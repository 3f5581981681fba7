"""The text of an alert for a person, in their language: one module for every channel.

A header line (severity, the rule's name, what happened), the rule's own summary in that
language (summary_en / summary_vi, rendered by the engine), a line when the message is an
escalation, and a link to the alert on the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processing.alerts.routing import Recipient

SEVERITY = {
    "en": {"critical": "CRITICAL", "major": "MAJOR", "minor": "MINOR", "info": "INFO"},
    "vi": {"critical": "KHẨN CẤP", "major": "NGHIÊM TRỌNG", "minor": "NHẸ", "info": "THÔNG TIN"},
}
EVENT = {
    "en": {"opened": "opened", "updated": "updated", "flapping": "flapping",
           "acknowledged": "acknowledged", "resolved": "resolved", "unsilenced": "unsilenced"},
    "vi": {"opened": "mới", "updated": "cập nhật", "flapping": "chập chờn",
           "acknowledged": "đã tiếp nhận", "resolved": "đã khắc phục",
           "unsilenced": "hết tạm tắt"},
}  # fmt: skip
ESCALATED = {
    "en": "Escalated: still open and not acknowledged.",
    "vi": "Chuyển cấp: cảnh báo vẫn mở, chưa ai tiếp nhận.",
}
LINK = {"en": "Open", "vi": "Xem"}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str  # the header line: an e-mail's subject, the first line elsewhere
    summary: str
    lines: tuple[str, ...]  # after the summary: escalation, link

    @property
    def text(self) -> str:
        return "\n".join((self.subject, self.summary, *self.lines))


def render(
    payload: dict[str, Any],
    language: str,
    rule_names: dict[str, tuple[str, str]],
    dashboard_url: str | None = None,
) -> Message:
    """The message for one transition (an outbox payload) in ``language`` (vi or en);
    ``rule_names``: rule → (English name, Vietnamese name)."""
    lang = "vi" if language == "vi" else "en"
    severity = SEVERITY[lang].get(payload["severity"], payload["severity"].upper())
    en, vi = rule_names.get(payload["rule"], (payload["rule"], payload["rule"]))
    event = EVENT[lang].get(payload["event"], payload["event"])
    subject = f"[{severity}] {vi if lang == 'vi' else en} — {event}"
    summary = payload.get("summary_vi" if lang == "vi" else "summary") or payload["subject"]
    lines: list[str] = []
    if payload.get("escalated"):
        lines.append(ESCALATED[lang])
    if dashboard_url:
        sep = "&" if "?" in dashboard_url else "?"
        lines.append(f"{LINK[lang]}: {dashboard_url}{sep}alert={payload['alert_id']}")
    return Message(subject, summary, tuple(lines))


class ToRecipient:
    """What the channels people carry share: whom they write to, and the text in that person's
    language (``render``), linked to the dashboard when its URL is known."""

    def __init__(
        self,
        recipient: Recipient,
        rule_names: dict[str, tuple[str, str]],
        *,
        timeout_s: float,
        dashboard_url: str | None,
    ) -> None:
        self.name = recipient.channel
        self.recipient = recipient
        self.rule_names = rule_names
        self.timeout_s = timeout_s
        self.dashboard_url = dashboard_url

    def rendered(self, payload: dict[str, Any]) -> Message:
        return render(payload, self.recipient.language, self.rule_names, self.dashboard_url)
