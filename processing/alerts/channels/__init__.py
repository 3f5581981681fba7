"""Channels people carry (e-mail, Telegram, an SMS gateway), one small module each, beside the
machine channels of ``processing.alerts.delivery`` (MQTT, webhooks); every one speaks the
``Channel`` protocol and writes its text with ``message.render``."""

from __future__ import annotations

from processing.alerts.channels.base import Channel, DeliveryError
from processing.alerts.channels.email import EmailChannel
from processing.alerts.channels.sms import SmsChannel
from processing.alerts.channels.telegram import TelegramChannel
from processing.alerts.config import AlertConfig
from processing.alerts.routing import Medium, Recipient


def recipient_channel(
    recipient: Recipient, config: AlertConfig, rule_names: dict[str, tuple[str, str]]
) -> Channel:
    """The channel that delivers to ``recipient`` (not webhooks: their channel is the
    webhook's own). The settings it needs were checked when the config was built."""
    t, url = config.webhook_timeout_s, config.dashboard_url
    match recipient.medium:
        case Medium.EMAIL:
            assert config.email is not None
            return EmailChannel(recipient, config.email, rule_names, timeout_s=t, dashboard_url=url)
        case Medium.TELEGRAM:
            assert config.telegram is not None
            return TelegramChannel(recipient, config.telegram, rule_names, timeout_s=t,
                                   dashboard_url=url)  # fmt: skip
        case Medium.SMS:
            assert config.sms is not None
            return SmsChannel(recipient, config.sms, rule_names, timeout_s=t, dashboard_url=url)
    raise ValueError(f"no channel of its own for a {recipient.medium.value} recipient")


__all__ = ["Channel", "DeliveryError", "EmailChannel", "SmsChannel", "TelegramChannel",
           "recipient_channel"]  # fmt: skip
