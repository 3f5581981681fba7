"""E-mail over SMTP: STARTTLS before credentials or alerts cross the network, one plain-text
message per transition to the recipient's address list, in the recipient's language."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import aiosmtplib

from processing.alerts.channels.base import DeliveryError
from processing.alerts.channels.message import ToRecipient
from processing.alerts.config import EmailSettings
from processing.alerts.routing import Recipient


class EmailChannel(ToRecipient):
    concurrency = 4  # one SMTP session each; relays throttle many at once

    def __init__(
        self,
        recipient: Recipient,
        settings: EmailSettings,
        rule_names: dict[str, tuple[str, str]],
        *,
        timeout_s: float,
        dashboard_url: str | None = None,
    ) -> None:
        super().__init__(recipient, rule_names, timeout_s=timeout_s, dashboard_url=dashboard_url)
        self.settings = settings
        # A private relay's certificate is checked against its own CA, never left unchecked.
        self._tls = ssl.create_default_context(cafile=settings.ca_file)

    def message(self, payload: dict[str, Any]) -> EmailMessage:
        m = self.rendered(payload)
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = ", ".join(self.recipient.address)
        mail["Subject"] = m.subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2] or None)
        mail["X-IOC-Transition"] = str(payload["transition_id"])  # receivers may deduplicate
        mail.set_content(m.text)
        return mail

    async def send(self, payload: dict[str, Any]) -> None:
        s = self.settings
        try:
            async with asyncio.timeout(self.timeout_s):
                await aiosmtplib.send(
                    self.message(payload),
                    hostname=s.host,
                    port=s.port,
                    username=s.username,
                    password=s.password,
                    start_tls=s.starttls,
                    tls_context=self._tls if s.starttls else None,
                    timeout=self.timeout_s,
                )
        except TimeoutError as err:
            raise DeliveryError(f"SMTP: not done within {self.timeout_s:g} s") from err
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            raise DeliveryError(f"SMTP: recipients refused {codes}",
                                permanent=all(c >= 500 for c in codes)) from err  # fmt: skip
        except aiosmtplib.SMTPResponseException as err:
            # 5xx: the relay will never take this (bad address, refused login); 4xx: later.
            raise DeliveryError(f"SMTP {err.code}: {err.message}",
                                permanent=err.code >= 500) from err  # fmt: skip
        except (aiosmtplib.SMTPException, OSError) as err:
            raise DeliveryError(f"SMTP: {type(err).__name__}: {err}") from err

    async def close(self) -> None:
        pass  # a session per message: nothing held between sends
