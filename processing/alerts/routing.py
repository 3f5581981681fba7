"""Who hears of an alert: recipients and routes, declared in the alert-rules TOML beside the
rules (README, Alerting).

A ``[[recipients]]`` entry is a person or a list on one channel (e-mail, Telegram, SMS
gateway, or a configured webhook) with a language; a ``[[routes]]`` entry matches alerts by
least severity, district and rule name (globs) and names recipients. Every matching route is
used; an alert matching no route goes to the default channels (the webhooks). The MQTT topic
carries every transition whatever the routes say: it is the machine-readable state of all
alerts (its retained messages are the open set), not a person's channel.

A route with ``escalate_after_s`` is an escalation: its recipients hear of a matching alert only
once it has stayed open (not acknowledged) that long, once (the database records it), and then
of its later transitions (its acknowledgement, its resolution).

Secrets (SMTP password, bot token, gateway key) never live here: they are settings.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from processing.alerts.rules import RulesError, Severity, entry_check, load_document, texts
from seeds import national
from seeds.national import BINH_DINH, province_codes
from store.alert_outbox import Target
from store.alerts import SEVERITIES


class Medium(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"
    SMS = "sms"
    WEBHOOK = "webhook"


class Language(StrEnum):
    VI = "vi"
    EN = "en"


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    medium: Medium
    address: tuple[str, ...]  # e-mail addresses, a chat id, a phone number, a webhook name
    language: Language

    @property
    def channel(self) -> str:
        """The outbox's channel of this recipient: its rows, retries and dead letters."""
        if self.medium is Medium.WEBHOOK:
            return f"webhook:{self.address[0]}"  # the configured webhook's own queue
        return f"{self.medium.value}:{self.name}"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    severity: Severity  # the least severe alert it takes
    districts: frozenset[int] | None  # None: any district (and alerts with none)
    rules: tuple[str, ...] | None  # globs over rule names; None: any rule
    recipients: tuple[str, ...]
    escalate_after_s: float | None = None

    def matches(self, rule: str, severity: str, district_code: int | None) -> bool:
        return (
            SEVERITIES.index(severity) <= SEVERITIES.index(self.severity.value)
            and (self.districts is None or district_code in self.districts)
            and (self.rules is None or any(fnmatch.fnmatchcase(rule, g) for g in self.rules))
        )

    @property
    def rule_pattern(self) -> str | None:
        """The rule globs as one anchored POSIX regular expression (for PostgreSQL's ``~``).
        Rule names are letters, digits, '_', '.' and '-' (rules.py), so escaping is simple."""
        if self.rules is None:
            return None
        parts = [re.escape(g).replace(r"\*", ".*").replace(r"\?", ".") for g in self.rules]
        return "^(" + "|".join(parts) + ")$"


@dataclass(frozen=True, slots=True)
class Routing:
    recipients: dict[str, Recipient] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()

    @property
    def escalations(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.escalate_after_s is not None)

    def channels_of(self, route: Route) -> list[str]:
        return [self.recipients[n].channel for n in route.recipients]

    def used(self) -> list[Recipient]:
        """Recipients some route names (the others get no dispatcher)."""
        names = {n for r in self.routes for n in r.recipients}
        return [r for n, r in self.recipients.items() if n in names]


@dataclass(frozen=True, slots=True)
class Router:
    """Where each transition goes: the outbox's fan-out calls it (store.alert_outbox.fan_out)."""

    mqtt: bool
    webhooks: tuple[str, ...]  # the default channels' webhook names
    routing: Routing = field(default_factory=Routing)

    @property
    def defaults(self) -> list[str]:
        return (["mqtt"] if self.mqtt else []) + [f"webhook:{n}" for n in self.webhooks]

    def __call__(self, target: Target) -> list[str]:
        out = ["mqtt"] if self.mqtt else []
        routes = [r for r in self.routing.routes if r.escalate_after_s is None
                  and r.matches(target.rule, target.severity, target.district_code)]  # fmt: skip
        if routes:
            out += [c for r in routes for c in self.routing.channels_of(r)]
        else:
            out += [f"webhook:{n}" for n in self.webhooks]
        for route in self.routing.escalations:
            if route.name in target.escalated:  # escalated once: told of what follows too
                out += self.routing.channels_of(route)
        return list(dict.fromkeys(out))

    @property
    def all_channels(self) -> list[str]:
        return list(dict.fromkeys(self.defaults + [r.channel for r in self.routing.used()]))


_DIVISIONS = ("Thành phố ", "Thị xã ", "Huyện ", "Quận ", "Thị trấn ", "Tỉnh ")


def _short(name: str) -> str:
    for prefix in _DIVISIONS:
        name = name.removeprefix(prefix)
    return name


def district_codes(province: str | int = BINH_DINH) -> dict[str, int]:
    """District names → GSO codes of the provinces the service is set up for (IOC_PROVINCE,
    one or several): the full name ("Huyện Vân Canh"), the name without its division ("Vân
    Canh"), and either qualified by its province ("Vân Canh, Bình Định"), which is the only
    form of a name that two of the provinces share."""
    out: dict[str, int] = {}
    shared: set[str] = set()
    for code in province_codes(province):
        record = national.province(code)
        for d in record["districts"]:
            for name in {d["name"], _short(d["name"])}:
                if name in out and out[name] != d["code"]:
                    shared.add(name)
                out.setdefault(name, d["code"])
                out[f"{name}, {_short(record['name'])}"] = d["code"]
    return {name: c for name, c in out.items() if name not in shared}


def province_districts(province: str | int = BINH_DINH) -> dict[str, frozenset[int]]:
    """Province names ("Bắc Giang", "Tỉnh Bắc Giang") and GSO codes ("24") of the provinces
    the service is set up for → their district codes, for a route's ``province``."""
    out: dict[str, frozenset[int]] = {}
    for code in province_codes(province):
        record = national.province(code)
        codes = frozenset(int(d["code"]) for d in record["districts"])
        for key in (record["name"], _short(record["name"]), str(code)):
            out[key] = codes
    return out


def load_routing(
    override: Path | str | None = None,
    districts: dict[str, int] | None = None,
    province: str | int = BINH_DINH,
) -> Routing:
    """Recipients and routes of the rules file (shipped, merged with ``override``), for the
    provinces ``province`` names (IOC_PROVINCE)."""
    doc, where = load_document(override)
    names = district_codes(province) if districts is None else districts
    return parse_routing(doc, where, names, province_districts(province))


_RECIPIENT_KEYS = {"name", "channel", "address", "language", "enabled"}
_ROUTE_KEYS = {"name", "severity", "district", "province", "rule", "recipients",
               "escalate_after_s", "enabled"}  # fmt: skip


def parse_routing(
    doc: dict[str, Any],
    where: str,
    districts: dict[str, int],
    provinces: dict[str, frozenset[int]] | None = None,
) -> Routing:
    """``provinces``: province names → their district codes, for routes by ``province``."""
    recipients: dict[str, Recipient] = {}
    for entry in doc.get("recipients", []):
        if entry.get("enabled", True) is not False:
            r = _recipient(entry, where)
            recipients[r.name] = r
    routes = tuple(
        _route(e, where, recipients, districts, provinces or {})
        for e in doc.get("routes", [])
        if e.get("enabled", True) is not False
    )
    return Routing(recipients, routes)


def _recipient(entry: dict[str, Any], where: str) -> Recipient:
    name = entry.get("name", "?")
    fail = entry_check(where, "recipient", entry, _RECIPIENT_KEYS)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise fail("name must be letters, digits, '_', '.' or '-'")
    try:
        medium = Medium(str(entry.get("channel")))
    except ValueError:
        raise fail(
            f"unknown channel {entry.get('channel')!r} (email, telegram, sms, webhook)"
        ) from None
    try:
        language = Language(entry.get("language", "vi"))
    except ValueError:
        raise fail(f"language {entry.get('language')!r} is not vi or en") from None
    address = texts(entry.get("address"))
    if address is None or not address:
        raise fail("address must be text (or, for e-mail, a list of addresses)")
    if medium is not Medium.EMAIL and len(address) != 1:
        raise fail(f"a {medium.value} recipient has one address")
    if medium is Medium.EMAIL and not all("@" in a for a in address):
        raise fail(f"address {address!r} is not an e-mail address")
    return Recipient(name, medium, address, language)


def _known(
    entry: dict[str, Any],
    key: str,
    known: Mapping[str, object],
    hint: str,
    fail: Callable[[str], RulesError],
) -> tuple[str, ...]:
    """The names ``entry[key]`` gives (one or a list), each one of ``known``."""
    wanted = texts(entry[key])
    if wanted is None:
        raise fail(f"{key} must be a {key} name or a list of them")
    for name in wanted:
        if name not in known:
            raise fail(f"unknown {key} {name!r} ({hint})")
    return wanted


def _route(
    entry: dict[str, Any],
    where: str,
    recipients: dict[str, Recipient],
    districts: dict[str, int],
    provinces: dict[str, frozenset[int]],
) -> Route:
    name = entry.get("name", "?")
    fail = entry_check(where, "route", entry, _ROUTE_KEYS)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise fail("name must be letters, digits, '_', '.' or '-'")
    try:
        severity = Severity(entry.get("severity", "info"))
    except ValueError:
        raise fail(f"severity {entry.get('severity')!r} (critical, major, minor, info)") from None
    names = texts(entry.get("recipients"))
    if not names:
        raise fail("recipients must name one or more [[recipients]]")
    for n in names:
        if n not in recipients:
            raise fail(f"unknown recipient {n!r}")
    codes: frozenset[int] | None = None
    if "district" in entry:
        hint = f"e.g. {next(iter(districts), '')!r}"
        codes = frozenset(districts[d] for d in _known(entry, "district", districts, hint, fail))
    if "province" in entry:  # with ``district`` too: either matches
        hint = f"this deployment: {', '.join(provinces)}"
        named = _known(entry, "province", provinces, hint, fail)
        codes = (codes or frozenset()).union(*(provinces[p] for p in named))
    rules = texts(entry["rule"]) if "rule" in entry else None
    if "rule" in entry and rules is None:
        raise fail("rule must be a rule name (globs allowed) or a list of them")
    after = entry.get("escalate_after_s")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int | float)
                              or after <= 0):  # fmt: skip
        raise fail(f"escalate_after_s must be a number > 0, not {after!r}")
    return Route(name, severity, codes, rules, names,
                 None if after is None else float(after))  # fmt: skip
