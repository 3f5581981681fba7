"""Channels people carry, routed and escalated (issue 16, part 5): e-mail over STARTTLS to a
real SMTP server, the Telegram Bot API and an SMS gateway against local fakes that answer as
the real ones do, Retry-After honoured, routes by severity, district and rule, escalation once
after N seconds (and never again after a restart), messages in each recipient's language."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from devices.kinds import Kind
from ioc.configs import alert_config
from ioc.errors import SettingError
from ioc.settings import Settings
from processing.alerts.channels import EmailChannel, SmsChannel, TelegramChannel
from processing.alerts.channels.base import DeliveryError, retry_after_s
from processing.alerts.config import EmailSettings, SmsSettings, TelegramSettings
from processing.alerts.delivery import WebhookChannel
from processing.alerts.routing import (
    Language,
    Medium,
    Recipient,
    Router,
    district_codes,
    load_routing,
    parse_routing,
)
from processing.alerts.rules import RulesError, load_document
from store.alert_outbox import Target
from store.alerts import acknowledge
from store.db import connect
from tests.support.alerting import AlertWorld, scenario_devices, ticks
from tests.support.channels import (
    Answer,
    FakeTelegram,
    HttpReceiver,
    SmtpServer,
    too_many_requests,
)
from tests.support.databases import rows
from tests.support.environment import clean_environ
from tests.support.outbox import dispatching, outbox_rows, queue_alert, rounds
from tests.support.polling import wait_until

NAMES = {
    "coverage_lost": ("Village lost mobile coverage", "Thôn mất sóng di động"),
    "camera_tamper": ("Camera tampered with or covered", "Camera bị can thiệp/che khuất"),
}
VAN_CANH = 551
TOKEN = "123456:ABC-test-token"


def _payload(**extra: Any) -> dict[str, Any]:
    return {"alert_id": 7, "transition_id": 70, "rule": "coverage_lost", "subject": "V-1",
            "severity": "critical", "state": "open", "event": "opened",
            "summary": 'Làng "Hà Lĩnh" (Canh Liên, Vân Canh): no mobile signal for 1200 people',
            "summary_vi": 'Làng "Hà Lĩnh" (Canh Liên, Vân Canh): mất sóng di động, 1200 người',
            **extra}  # fmt: skip


def _recipient(medium: Medium, name: str, *address: str, language: str = "vi") -> Recipient:
    return Recipient(name, medium, address, Language(language))


def _next_attempt_delay(url: str, channel: str) -> timedelta:
    [(delay,)] = rows(url, "SELECT next_attempt_at - last_attempt_at FROM alert_outbox"
                      " WHERE channel = %s AND seq = 1", channel)  # fmt: skip
    assert isinstance(delay, timedelta)
    return delay


# ---- e-mail ------------------------------------------------------------------------------


async def test_email_goes_over_starttls_with_a_login_in_each_recipients_language(
    tmp_path: Path,
) -> None:
    with SmtpServer(tmp_path).running() as smtp:
        settings = EmailSettings(host="127.0.0.1", port=smtp.port, sender="ioc@example.vn",
                                 username=smtp.username, password=smtp.password,
                                 ca_file=smtp.ca_file)  # fmt: skip
        vi = EmailChannel(_recipient(Medium.EMAIL, "duty", "a@example.vn", "b@example.vn"),
                          settings, NAMES, timeout_s=10,
                          dashboard_url="https://ioc.example.vn/")  # fmt: skip
        en = EmailChannel(_recipient(Medium.EMAIL, "list", "c@example.vn", language="en"),
                          settings, NAMES, timeout_s=10)  # fmt: skip
        await vi.send(_payload())
        await en.send(_payload(event="acknowledged", state="acknowledged"))
        assert vi.name == "email:duty"
        [first, second] = smtp.mails
        assert first.tls and first.login == "ioc" and second.tls
        assert first.sender == "ioc@example.vn"
        assert first.recipients == ["a@example.vn", "b@example.vn"]
        m = first.message
        assert m["Subject"] == "[KHẨN CẤP] Thôn mất sóng di động — mới"
        assert m["To"] == "a@example.vn, b@example.vn" and m["From"] == "ioc@example.vn"
        body = m.get_content()
        assert 'Làng "Hà Lĩnh" (Canh Liên, Vân Canh): mất sóng di động' in body
        assert "https://ioc.example.vn/?alert=7" in body
        assert second.message["Subject"] == (
            "[CRITICAL] Village lost mobile coverage — acknowledged"
        )
        assert "no mobile signal for 1200 people" in second.message.get_content()

        # The relay's certificate is checked: without its CA the upgrade fails (retried
        # later), and no login or alert crossed the connection.
        untrusting = EmailChannel(_recipient(Medium.EMAIL, "x", "a@example.vn"),
                                  EmailSettings(host="127.0.0.1", port=smtp.port,
                                                sender="ioc@example.vn", username="ioc",
                                                password=smtp.password),
                                  NAMES, timeout_s=10)  # fmt: skip
        with pytest.raises(DeliveryError) as refused:
            await untrusting.send(_payload())
        assert not refused.value.permanent
        wrong = EmailChannel(_recipient(Medium.EMAIL, "x", "a@example.vn"),
                             EmailSettings(host="127.0.0.1", port=smtp.port,
                                           sender="ioc@example.vn", username="ioc",
                                           password="wrong", ca_file=smtp.ca_file),
                             NAMES, timeout_s=10)  # fmt: skip
        with pytest.raises(DeliveryError) as denied:
            await wrong.send(_payload())
        assert denied.value.permanent and "535" in str(denied.value)  # a login never improves
        assert len(smtp.mails) == 2


# ---- Telegram ----------------------------------------------------------------------------


async def test_telegram_waits_as_told_on_429_and_gives_up_on_a_chat_not_found(
    world: AlertWorld,
) -> None:
    clock, url = world.clock, world.database_url
    bot = FakeTelegram(TOKEN, chats={"111"})
    bot.answers.append(too_many_requests(7))
    duty = _recipient(Medium.TELEGRAM, "duty", "111")
    stranger = _recipient(Medium.TELEGRAM, "stranger", "999", language="en")
    alert_id = await queue_alert(
        url, [duty.channel, stranger.channel], clock(), severity="critical"
    )
    config = world.config(retry_first_s=1.0, retry_max_s=1.0)
    with bot.running():
        settings = TelegramSettings(token=TOKEN, api_url=bot.url)
        to_duty = TelegramChannel(duty, settings, NAMES, timeout_s=5,
                                  dashboard_url="https://ioc.example.vn")  # fmt: skip
        to_stranger = TelegramChannel(stranger, settings, NAMES, timeout_s=5)
        async with (
            dispatching(to_duty, config, clock) as d1,
            dispatching(to_stranger, config, clock) as d2,
        ):
            await wait_until(lambda: outbox_rows(url, "telegram:duty")[0][2] == 1
                             and outbox_rows(url, "telegram:stranger")[0][4])  # fmt: skip
            # Telegram's retry_after, not our one-second backoff.
            assert _next_attempt_delay(url, "telegram:duty") == timedelta(seconds=7)
            clock.advance(6)
            await rounds(d1)
            assert outbox_rows(url, "telegram:duty")[0][2:4] == (1, False)
            clock.advance(1)
            await wait_until(lambda: outbox_rows(url, "telegram:duty")[0][3])
            await rounds(d2)
    assert outbox_rows(url, "telegram:stranger") == [
        (alert_id, 1, 1, False, True, "Telegram 400: Bad Request: chat not found")
    ]
    assert outbox_rows(url, "telegram:duty")[0][:5] == (alert_id, 1, 2, True, False)
    sent = [m for m in bot.messages() if m["chat_id"] == "111"]
    assert len(sent) == 2 and sent[0] == sent[1]  # the 429'd message, then the same again
    assert sent[0]["parse_mode"] == "HTML"
    assert sent[0]["text"].startswith("<b>[KHẨN CẤP] Camera bị can thiệp/che khuất — mới</b>\n")
    assert f"https://ioc.example.vn?alert={alert_id}" in sent[0]["text"]
    errors = " ".join(r[5] for r in outbox_rows(url, "telegram:duty") + outbox_rows(
        url, "telegram:stranger"))  # fmt: skip
    assert TOKEN not in errors
    # Per recipient in `ioc alerts outbox`: the stranger's dead letter and why.
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ioc", "alerts", "outbox", stdout=asyncio.subprocess.PIPE,
        env={**clean_environ(), "IOC_DATABASE_URL": url},
    )  # fmt: skip
    shown = (await asyncio.wait_for(cli.communicate(), 120))[0].decode()
    assert cli.returncode == 0
    assert "telegram:stranger" in shown and "chat not found" in shown


def test_telegram_text_is_escaped_for_its_html_mode() -> None:
    channel = TelegramChannel(_recipient(Medium.TELEGRAM, "d", "1"),
                              TelegramSettings(token=TOKEN), NAMES, timeout_s=1)  # fmt: skip
    text = channel.body(_payload(summary_vi="<b>trạm</b> & làng"))["text"]
    assert "&lt;b&gt;trạm&lt;/b&gt; &amp; làng" in text and text.count("<b>") == 1


# ---- SMS gateway and Retry-After -------------------------------------------------------------


def test_sms_template_fills_url_headers_and_body_escaped_for_each() -> None:
    settings = SmsSettings(url="https://sms.example/send?to={to}", method="PUT",
                           headers={"Authorization": "Bearer {key}"},
                           body='{"phone": "{to}", "message": "{text}", "brand": "IOC"}',
                           key="gw-key")  # fmt: skip
    channel = SmsChannel(_recipient(Medium.SMS, "dir", "+84900000001"), settings, NAMES,
                         timeout_s=1)  # fmt: skip
    url, headers, body = channel.request(_payload())
    assert url == "https://sms.example/send?to=%2B84900000001"
    assert headers == {"Authorization": "Bearer gw-key", "Content-Type": "application/json"}
    sent = json.loads(body)
    assert sent["phone"] == "+84900000001" and sent["brand"] == "IOC"
    assert sent["message"].split("\n") == [
        "[KHẨN CẤP] Thôn mất sóng di động — mới",
        'Làng "Hà Lĩnh" (Canh Liên, Vân Canh): mất sóng di động, 1200 người',
    ]
    form = SmsChannel(_recipient(Medium.SMS, "dir", "+84900000001"),
                      SmsSettings(url="https://sms.example/send", body="to={to}&msg={text}"),
                      NAMES, timeout_s=1)  # fmt: skip
    _, headers, body = form.request(_payload())
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body.startswith(b"to=%2B84900000001&msg=%5BKH%E1%BA%A8N")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120
    assert retry_after_s(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_s(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None
    assert retry_after_s("99999999", now) == 3600  # never parked for days


async def test_sms_gateway_and_webhook_come_back_when_retry_after_says(
    world: AlertWorld,
) -> None:
    clock, url = world.clock, world.database_url
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    gateway = HttpReceiver(answers=[Answer(503, {"error": "busy"}, {"Retry-After": later})])
    hook = HttpReceiver(answers=[Answer(429, {}, {"Retry-After": "30"})])
    director = _recipient(Medium.SMS, "director", "+84900000001")
    await queue_alert(url, [director.channel, "webhook:slow"], clock())
    config = world.config(retry_first_s=1.0, retry_max_s=1.0)
    with gateway.running(), hook.running():
        sms = SmsChannel(director, SmsSettings(url=gateway.url + "/send", key="k",
                                               headers={"X-Key": "{key}"}),
                         NAMES, timeout_s=5)  # fmt: skip
        async with (
            dispatching(sms, config, clock),
            dispatching(WebhookChannel("slow", hook.url + "/hook", 5.0), config, clock),
        ):
            await wait_until(lambda: outbox_rows(url, "sms:director")[0][2] == 1
                             and outbox_rows(url, "webhook:slow")[0][2] == 1)  # fmt: skip
            # The HTTP date, read against the wall clock: about 120 s; our backoff is ≤ 1 s.
            delay = _next_attempt_delay(url, "sms:director")
            assert timedelta(seconds=100) < delay <= timedelta(seconds=120)
            assert _next_attempt_delay(url, "webhook:slow") == timedelta(seconds=30)
            clock.advance(121)
            await wait_until(lambda: outbox_rows(url, "sms:director")[0][3]
                             and outbox_rows(url, "webhook:slow")[0][3])  # fmt: skip
    [(method, path, headers, body)] = gateway.requests[1:]
    assert (method, path, headers["x-key"]) == ("POST", "/send", "k")
    assert json.loads(body)["to"] == "+84900000001"


# ---- routing -----------------------------------------------------------------------------


def _rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alert-rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


ROUTED = """
[[recipients]]
name = "van_canh_duty"
channel = "telegram"
address = "111"
language = "vi"

[[recipients]]
name = "ioc_list"
channel = "email"
address = ["truc-ban@ioc.example.vn", "ky-thuat@ioc.example.vn"]
language = "en"

[[routes]]
name = "van_canh_cameras"
severity = "major"
district = "Vân Canh"
rule = "camera_*"
recipients = ["van_canh_duty", "ioc_list"]

[[routes]]
name = "critical_only"
severity = "critical"
recipients = ["ioc_list"]
"""


def test_routes_pick_recipients_by_severity_district_and_rule(tmp_path: Path) -> None:
    routing = load_routing(_rules_file(tmp_path, ROUTED))
    router = Router(mqtt=True, webhooks=("ops",), routing=routing)
    assert router(Target("camera_tamper", "major", VAN_CANH)) == [
        "mqtt", "telegram:van_canh_duty", "email:ioc_list"]  # fmt: skip
    assert router(Target("camera_tamper", "minor", VAN_CANH)) == ["mqtt", "webhook:ops"]
    assert router(Target("camera_tamper", "major", 540)) == ["mqtt", "webhook:ops"]
    assert router(Target("bts_offline", "major", VAN_CANH)) == ["mqtt", "webhook:ops"]
    assert router(Target("bts_offline", "critical", None)) == ["mqtt", "email:ioc_list"]
    assert router(Target("camera_offline", "critical", VAN_CANH)) == [
        "mqtt",
        "telegram:van_canh_duty",
        "email:ioc_list",
    ]  # every matching route, once
    assert district_codes()["Vân Canh"] == district_codes()["Huyện Vân Canh"] == VAN_CANH
    # A webhook recipient is that webhook's own queue; an escalated alert's later news
    # reaches the escalation's recipients too.
    hooked = load_routing(_rules_file(tmp_path, """
[[recipients]]
name = "noc"
channel = "webhook"
address = "noc"
[[recipients]]
name = "boss"
channel = "sms"
address = "+84900000002"
[[routes]]
name = "all_to_noc"
recipients = ["noc"]
[[routes]]
name = "late"
escalate_after_s = 600
recipients = ["boss"]
"""))  # fmt: skip
    router = Router(mqtt=False, webhooks=("ops", "noc"), routing=hooked)
    assert router(Target("bts_offline", "minor", 540)) == ["webhook:noc"]
    assert router(Target("bts_offline", "minor", 540, ("late",))) == ["webhook:noc", "sms:boss"]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ('[[routes]]\nname = "r"\nrecipients = ["nobody"]',
         "route 'r': unknown recipient 'nobody'"),
        ('[[recipients]]\nname = "p"\nchannel = "pigeon"\naddress = "x"',
         "recipient 'p': unknown channel 'pigeon'"),
        ('[[recipients]]\nname = "p"\nchannel = "sms"\naddress = "1"\n[[routes]]\nname = "r"\n'
         'district = "Vân Ca"\nrecipients = ["p"]', "route 'r': unknown district 'Vân Ca'"),
        ('[[recipients]]\nname = "p"\nchannel = "sms"\naddress = "1"\nlanguage = "fr"',
         "recipient 'p': language 'fr' is not vi or en"),
        ('[[recipients]]\nname = "p"\nchannel = "email"\naddress = "not-mail"',
         "recipient 'p': address ('not-mail',) is not an e-mail address"),
        ('[[recipients]]\nname = "p"\nchannel = "sms"\naddress = "1"\n[[routes]]\nname = "r"\n'
         'recipients = ["p"]\nescalate_after_s = 0', "route 'r': escalate_after_s must be"),
    ],
)  # fmt: skip
def test_a_bad_route_or_recipient_is_one_line_naming_the_file_and_entry(
    tmp_path: Path, entry: str, error: str
) -> None:
    path = _rules_file(tmp_path, entry)
    with pytest.raises(RulesError) as raised:
        load_routing(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and error in message and "\n" not in message


def test_a_recipient_whose_channel_has_no_settings_stops_the_config(tmp_path: Path) -> None:
    path = _rules_file(tmp_path, ROUTED)
    settings = Settings.defaults(database_url="postgresql://db/ioc", alert={"rules": str(path)})
    with pytest.raises(
        SettingError, match=r"recipient 'van_canh_duty' .* IOC_ALERT_TELEGRAM_TOKEN"
    ):
        alert_config(settings)
    ready = Settings.defaults(
        database_url="postgresql://db/ioc",
        alert={"rules": str(path), "telegram_token": TOKEN, "smtp_host": "mail.example.vn"},
    )
    config = alert_config(ready)
    assert config.router.all_channels == ["telegram:van_canh_duty", "email:ioc_list"]
    assert config.telegram == TelegramSettings(token=TOKEN)


@pytest.mark.parametrize(
    ("alert", "refused"),
    [
        ({"sms_url": "http://sms.example.vn/send"}, "IOC_ALERT_SMS_URL is plain"),
        ({"telegram_api_url": "http://tg.example"}, "IOC_ALERT_TELEGRAM_API_URL is plain"),
        ({"smtp_host": "mail.example.vn", "smtp_starttls": False}, "SMTP_STARTTLS is off"),
    ],
)  # fmt: skip
def test_production_sends_people_channels_encrypted(alert: dict[str, Any], refused: str) -> None:
    db = "postgresql://ioc:Long-and-Strong-db-pass-1@db.example/ioc"
    with pytest.raises(SettingError, match=refused):
        alert_config(Settings.defaults(database_url=db, mode="production", alert=alert))
    alert_config(Settings.defaults(database_url=db, alert=alert))  # development: allowed
    allowed = {**alert, "allow_http_webhooks": True}
    if "smtp_host" not in alert:
        alert_config(Settings.defaults(database_url=db, mode="production", alert=allowed))


def test_the_shipped_examples_route_nothing() -> None:
    assert load_routing().routes == ()
    assert alert_config(Settings.defaults(database_url="postgresql://db/ioc")).router(
        Target("coverage_lost", "critical", VAN_CANH)) == []  # fmt: skip


def test_the_shipped_examples_are_valid_once_turned_on() -> None:
    doc, where = load_document()
    on = {k: [{**e, "enabled": True} for e in doc[k]] for k in ("recipients", "routes")}
    routing = parse_routing(on, where, district_codes())
    van_canh = next(r for r in routing.routes if r.name == "van_canh_coverage_lost")
    assert van_canh.districts == frozenset({VAN_CANH}) and van_canh.rules == ("coverage_lost",)
    assert [routing.recipients[n].medium for n in van_canh.recipients] == [
        Medium.TELEGRAM, Medium.EMAIL]  # fmt: skip
    assert any(r.escalate_after_s for r in routing.routes)


async def test_van_canh_alerts_reach_its_people_and_the_rest_the_webhooks(
    world: AlertWorld, tmp_path: Path
) -> None:
    path = _rules_file(tmp_path, ROUTED)
    bot = FakeTelegram(TOKEN, chats={"111"})
    [here] = scenario_devices(Kind.CAMERA, VAN_CANH)[:1]
    [there] = scenario_devices(Kind.CAMERA, 540)[:1]
    (tmp_path / "smtp").mkdir()
    with SmtpServer(tmp_path / "smtp").running() as smtp, bot.running():
        people: dict[str, Any] = {
            "rules_path": str(path), "routing": load_routing(path),
            "telegram": TelegramSettings(token=TOKEN, api_url=bot.url),
            "email": EmailSettings(host="127.0.0.1", port=smtp.port, sender="ioc@example.vn",
                                   username=smtp.username, password=smtp.password,
                                   ca_file=smtp.ca_file),
            "dashboard_url": "https://ioc.example.vn/alerts",
        }  # fmt: skip
        async with world.field() as field, world.engine(ops_hook=True, **people):
            await field.tampered(here, there)
            await wait_until(lambda: bool(bot.messages() and smtp.mails and world.hook.received))
    [hooked] = world.hook.received
    assert hooked["subject"] == there.device_id
    [message] = bot.messages()
    assert message["chat_id"] == "111"
    assert message["text"].startswith("<b>[NGHIÊM TRỌNG] Camera bị can thiệp/che khuất — mới</b>")
    assert "phát hiện can thiệp/che khuất" in message["text"]
    [mail] = smtp.mails
    assert mail.recipients == ["truc-ban@ioc.example.vn", "ky-thuat@ioc.example.vn"]
    assert mail.message["Subject"] == "[MAJOR] Camera tampered with or covered — opened"
    [(alert_id,)] = rows(world.database_url, "SELECT alert_id FROM alerts WHERE subject = %s",
                         here.device_id)  # fmt: skip
    assert f"https://ioc.example.vn/alerts?alert={alert_id}" in mail.message.get_content()
    channels = rows(world.database_url, "SELECT a.subject, o.channel FROM alert_outbox o"
                    " JOIN alerts a USING (alert_id) ORDER BY 1, 2")  # fmt: skip
    assert sorted(channels) == sorted([
        (here.device_id, "email:ioc_list"), (here.device_id, "mqtt"),
        (here.device_id, "telegram:van_canh_duty"),
        (there.device_id, "mqtt"), (there.device_id, "webhook:ops"),
    ])  # fmt: skip


# ---- escalation --------------------------------------------------------------------------

ESCALATING = """
[[recipients]]
name = "director"
channel = "sms"
address = "+84900000001"
language = "vi"

[[routes]]
name = "tamper_unacknowledged"
severity = "major"
rule = "camera_tamper"
escalate_after_s = 60
recipients = ["director"]
"""


async def test_escalation_fires_once_after_the_delay_and_not_again_after_a_restart(
    world: AlertWorld, tmp_path: Path
) -> None:
    clock, url = world.clock, world.database_url
    path = _rules_file(tmp_path, ESCALATING)
    gateway = HttpReceiver()
    left, taken = scenario_devices(Kind.CAMERA)[:2]
    with gateway.running():
        people: dict[str, Any] = {"rules_path": str(path), "routing": load_routing(path),
                  "sms": SmsSettings(url=gateway.url + "/send")}  # fmt: skip
        async with world.field() as field:
            async with world.engine(**people) as engine:
                await field.tampered(left, taken)
                await wait_until(lambda: len(rows(url, "SELECT 1 FROM alerts")) == 2)
                ids = dict(rows(url, "SELECT subject, alert_id FROM alerts"))
                with connect(url) as conn:  # someone takes this one: it is not escalated
                    acknowledge(conn, ids[taken.device_id], "lan", now=clock())
                clock.advance(59)
                await ticks(engine, 5)
                assert gateway.requests == []  # not yet, nor queued
                assert rows(url, "SELECT 1 FROM alert_escalations") == []
                assert outbox_rows(url, "sms:director") == []
                clock.advance(2)
                await wait_until(lambda: len(gateway.requests) == 1)
                await ticks(engine, 5)
                [d] = [d for d in engine.dispatchers if d.channel.name == "sms:director"]
                await rounds(d)
            async with world.engine(**people) as engine:  # a restart: nothing sent again
                clock.advance(120)
                await ticks(engine, 5)
                [d] = [d for d in engine.dispatchers if d.channel.name == "sms:director"]
                await rounds(d)
                assert len(gateway.requests) == 1
                with connect(url) as conn:  # its acknowledgement reaches the director too
                    acknowledge(conn, ids[left.device_id], "lan", now=clock())
                await wait_until(lambda: len(gateway.requests) == 2)
    texts = [json.loads(r[3])["text"] for r in gateway.requests]
    assert texts[0].startswith("[NGHIÊM TRỌNG] Camera bị can thiệp/che khuất — mới\n")
    assert "Chuyển cấp: cảnh báo vẫn mở, chưa ai tiếp nhận." in texts[0]
    assert texts[1].startswith("[NGHIÊM TRỌNG] Camera bị can thiệp/che khuất — đã tiếp nhận\n")
    assert rows(url, "SELECT alert_id, route FROM alert_escalations") == [
        (ids[left.device_id], "tamper_unacknowledged")
    ]


def test_routes_by_province_in_a_deployment_of_several(tmp_path: Path) -> None:
    """Three provinces: a route by ``province`` takes every district of it and no other; a
    district name two provinces share is refused bare and taken qualified by its province."""
    three = "Bắc Giang, Thái Nguyên, Bình Định"
    routing = load_routing(_rules_file(tmp_path, """
[[recipients]]
name = "bac_giang_duty"
channel = "telegram"
address = "222"
[[routes]]
name = "bac_giang"
province = "Bắc Giang"
recipients = ["bac_giang_duty"]
[[routes]]
name = "van_canh"
district = "Vân Canh, Bình Định"
recipients = ["bac_giang_duty"]
"""), province=three)  # fmt: skip
    router = Router(mqtt=False, webhooks=("ops",), routing=routing)
    bac_giang = district_codes(three)["Thành phố Bắc Giang"]
    thai_nguyen = district_codes(three)["Thành phố Thái Nguyên"]
    assert router(Target("bts_offline", "minor", bac_giang)) == ["telegram:bac_giang_duty"]
    assert router(Target("bts_offline", "minor", thai_nguyen)) == ["webhook:ops"]
    assert router(Target("bts_offline", "minor", VAN_CANH)) == ["telegram:bac_giang_duty"]
    # Bình Định and Hải Phòng each have a Huyện An Lão: bare, the name would pick one.
    shared = district_codes("Bình Định, Hải Phòng")
    assert "An Lão" not in shared and "Huyện An Lão" not in shared
    assert shared["An Lão, Bình Định"] != shared["An Lão, Hải Phòng"]
    assert shared["Huyện An Lão, Bình Định"] == shared["An Lão, Bình Định"]
    with pytest.raises(ValueError, match="unknown province 'Hà Nội'"):
        load_routing(_rules_file(tmp_path, """
[[recipients]]
name = "x"
channel = "telegram"
address = "1"
[[routes]]
name = "r"
province = "Hà Nội"
recipients = ["x"]
"""), province=three)  # fmt: skip
