"""``ioc alerts``: run the engine, list, acknowledge, resolve and silence alerts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from ioc.cli_common import clear_errors, database, load_settings, setup_logging
from ioc.configs import alert_config
from ioc.errors import SettingError
from store.scope import NATIONAL

alerts_app: typer.Typer = typer.Typer(
    help="Alerts: the engine, and what operators do with alerts.", no_args_is_help=True
)


@contextmanager
def _refused(*refusals: type[Exception]) -> Iterator[None]:
    """The store's refusal (no such alert or silence, a move its state forbids): one line."""
    try:
        yield
    except refusals as err:
        raise SettingError(str(err)) from None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise SettingError(f"{option}: {text!r} is not a duration like 90s, 30m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])


def parse_time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        example = "2026-11-24T18:00+07:00"
        raise SettingError(f"{option}: {text!r} is not an ISO time ({example})") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@alerts_app.command("run")
@clear_errors
def run(
    evaluate: Annotated[bool, typer.Option(help="run the rules (one engine per database)")] = True,
    deliver: Annotated[bool, typer.Option(help="deliver the outbox (MQTT, webhooks)")] = True,
) -> None:
    """Run the alert engine: rules over status, telemetry and coverage → alerts → delivery."""
    from processing.alerts.engine import run_alerts

    setup_logging()
    config = alert_config(load_settings(), evaluate=evaluate, deliver=deliver)
    if not (evaluate or deliver):
        raise SettingError("--no-evaluate and --no-deliver together leave nothing to run")
    asyncio.run(run_alerts(config))


def _row(a: Any) -> str:
    when = a.opened_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    flags = ("F" if a.flapping else "-") + ("S" if a.suppressed else "-")
    return f"{a.alert_id:>7} {a.severity:<8} {a.state:<12} {flags} {when}  {a.rule:<22} {a.summary}"


@alerts_app.command("list")
@clear_errors
def list_(
    open_: Annotated[bool, typer.Option("--open", help="only unresolved alerts")] = False,
    severity: Annotated[list[str] | None, typer.Option(help="critical, major, minor, info")] = None,
    rule: Annotated[list[str] | None, typer.Option(help="only these rules")] = None,
    district: Annotated[int | None, typer.Option(help="district GSO code")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 50,
) -> None:
    """Alerts, unresolved first, then by severity and time (F: flapping, S: silenced)."""
    from store.alerts import SEVERITIES, UNRESOLVED, AlertFilter, list_alerts

    for s in severity or []:
        if s not in SEVERITIES:
            raise SettingError(f"--severity: {s!r} is not one of {', '.join(SEVERITIES)}")
    filters = AlertFilter(
        states=UNRESOLVED if open_ else (),
        severities=tuple(severity or ()),
        rules=tuple(rule or ()),
        district_code=district,
        limit=limit,
    )
    with database(load_settings()) as conn:
        rows = list_alerts(conn, filters, scope=NATIONAL)
    typer.echo(f"{'id':>7} {'severity':<8} {'state':<12} fs {'opened':<20} {'rule':<22} summary")
    for a in rows:
        typer.echo(_row(a))
    if not rows:
        typer.echo("(no alerts)")


@alerts_app.command("incidents")
@clear_errors
def incidents_(
    all_: Annotated[bool, typer.Option("--all", help="resolved incidents too")] = False,
    members: Annotated[bool, typer.Option(help="list each incident's alerts below it")] = False,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 50,
) -> None:
    """Incidents: open alerts grouped by cause and district, open first (the grouping is
    declared in the alert-rules file; README, Alerting)."""
    from store.incidents import list_incidents
    from store.incidents import members as member_rows

    with database(load_settings()) as conn:
        found = list_incidents(conn, open_only=not all_, limit=limit, scope=NATIONAL)
        listed = {i.incident_id: member_rows(conn, i.incident_id, scope=NATIONAL)
                  for i in found if members}  # fmt: skip
    for i in found:
        f = i.facts
        state = "resolved" if i.resolved_at else i.state
        opened = i.opened_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"incident {i.incident_id} (alert {i.alert_id}) {i.severity} {state}"
                   f" since {opened}: {i.summary}")  # fmt: skip
        by_rule = ", ".join(f"{r} {n}" for r, n in (f.get("by_rule") or {}).items())
        typer.echo(f"  {i.open_members} open of {i.all_members} alerts ({by_rule});"
                   f" {f.get('villages_dark', 0)} villages dark,"
                   f" {f.get('people_affected', 0)} people affected")  # fmt: skip
        for m in listed.get(i.incident_id, []):
            mark = "inhibited" if m.inhibited else ""
            typer.echo(f"    {m.alert_id:>7} {m.severity:<8} {m.state:<12} {m.rule:<20}"
                       f" {mark:<9} {m.summary}")  # fmt: skip
    if not found:
        typer.echo("(no incidents)")


@alerts_app.command("show")
@clear_errors
def show(alert_id: Annotated[int, typer.Argument(help="alert id")]) -> None:
    """One alert and its history of transitions."""
    from store.alerts import AlertNotFound, get_alert, transitions

    with database(load_settings()) as conn:
        with _refused(AlertNotFound):
            a = get_alert(conn, alert_id, scope=NATIONAL)
        history = transitions(conn, alert_id, scope=NATIONAL)
    typer.echo(_row(a))
    typer.echo(f"        {a.summary_vi}")
    for t in history:
        note = f" — {t.comment}" if t.comment else ""
        # Suppressed: silenced, or told through its incident (MQTT only), not to a person.
        hidden = (" (told with its incident)" if t.suppressed and a.incident_id is not None
                  else " (silenced, not delivered)" if t.suppressed else "")  # fmt: skip
        typer.echo(f"  #{t.seq:<3} {t.ts.astimezone():%Y-%m-%d %H:%M:%S} {t.event:<13} "
                   f"by {t.actor}{note}{hidden}")  # fmt: skip


def _operator_action(action: str, alert_id: int, by: str, text: str | None) -> None:
    from store.alerts import AlertNotFound, AlertStateError, acknowledge, resolve

    with database(load_settings()) as conn, _refused(AlertNotFound, AlertStateError):
        if action == "ack":
            a = acknowledge(conn, alert_id, by, text)
        else:
            a = resolve(conn, alert_id, by, text or "")
    typer.echo(_row(a))


@alerts_app.command("ack")
@clear_errors
def ack(
    alert_id: Annotated[int, typer.Argument(help="alert id")],
    by: Annotated[str, typer.Option("--by", help="who acknowledges")],
    comment: Annotated[str | None, typer.Option(help="what is being done")] = None,
) -> None:
    """Acknowledge an open alert."""
    _operator_action("ack", alert_id, by, comment)


@alerts_app.command("resolve")
@clear_errors
def resolve_(
    alert_id: Annotated[int, typer.Argument(help="alert id")],
    by: Annotated[str, typer.Option("--by", help="who resolves")],
    reason: Annotated[str, typer.Option(help="why it is over")],
) -> None:
    """Resolve an alert by hand (it opens again only after its condition clears and returns)."""
    _operator_action("resolve", alert_id, by, reason)


@alerts_app.command("silence")
@clear_errors
def silence_(
    by: Annotated[str, typer.Option("--by", help="who silences")],
    rule: Annotated[str | None, typer.Option(help="rule name (all rules if left out)")] = None,
    subject: Annotated[
        str | None, typer.Option(help="device id, village id or district code")
    ] = None,
    for_: Annotated[str | None, typer.Option("--for", help="how long: 90m, 4h, 2d")] = None,
    until: Annotated[str | None, typer.Option(help="until an ISO time")] = None,
    start: Annotated[str | None, typer.Option(help="from an ISO time (default now)")] = None,
    comment: Annotated[str | None, typer.Option(help="why (planned maintenance …)")] = None,
) -> None:
    """Silence alerts of a rule and/or subject for planned maintenance."""
    from processing.alerts.rules import load_rules
    from store.alerts import SilenceRequest, silence

    settings = load_settings()
    if rule is not None:
        names = {r.name for r in load_rules(settings.alert.rules).rules}
        if rule not in names:
            raise SettingError(f"--rule: no rule {rule!r} (ioc alerts rules lists them)")
    if (for_ is None) == (until is None):
        raise SettingError("give one of --for or --until")
    starts = parse_time(start, "--start") if start else datetime.now(UTC)
    ends = parse_time(until, "--until") if until else starts + parse_duration(for_ or "", "--for")
    request = SilenceRequest(rule, subject, ends, by, comment, starts)
    with database(settings) as conn:
        row = silence(conn, request)
    until_text = row.ends_at.astimezone().strftime("%Y-%m-%d %H:%M")
    typer.echo(f"silence {row.silence_id}: {row.rule or 'every rule'} on "
               f"{row.subject or 'every subject'} until {until_text}")  # fmt: skip


@alerts_app.command("silences")
@clear_errors
def silences(all_: Annotated[bool, typer.Option("--all", help="ended ones too")] = False) -> None:
    """Silences in force (or all of them)."""
    from store.alerts import list_silences

    with database(load_settings()) as conn:
        rows = list_silences(conn, include_ended=all_)
    for s in rows:
        fmt = "%Y-%m-%d %H:%M"
        span = f"{s.starts_at.astimezone():{fmt}} → {s.ends_at.astimezone():{fmt}}"
        typer.echo(f"{s.silence_id:>5} {s.rule or '*':<22} {s.subject or '*':<14} {span}"
                   f"  by {s.created_by}  {s.comment or ''}")  # fmt: skip
    if not rows:
        typer.echo("(no silences)")


@alerts_app.command("unsilence")
@clear_errors
def unsilence(silence_id: Annotated[int, typer.Argument(help="silence id")]) -> None:
    """End a silence now."""
    from store.alerts import end_silence

    with database(load_settings()) as conn, _refused(LookupError):
        end_silence(conn, silence_id)
    typer.echo(f"silence {silence_id} ended")


@alerts_app.command("rules")
@clear_errors
def rules() -> None:
    """The rules in force (shipped defaults merged with IOC_ALERT_RULES)."""
    from processing.alerts.rules import load_rules

    for r in load_rules(load_settings().alert.rules).rules:
        typer.echo(f"{r.name:<22} {r.severity.value:<8} {r.subject:<9} for {r.for_s:>4.0f}s  "
                   f"when {r.when.source}  |  {r.en} / {r.vi}")  # fmt: skip


@alerts_app.command("outbox")
@clear_errors
def outbox() -> None:
    """Deliveries waiting per channel, the latest error, and the dead letters (given up).

    A routed recipient has a channel of its own, named by its medium and name
    (``telegram:van_canh_duty``), so each recipient's backlog and dead letters show apart."""
    from store.alert_outbox import backlog, dead_letters

    with database(load_settings()) as conn:
        rows, dead = backlog(conn, scope=NATIONAL), dead_letters(conn, scope=NATIONAL)
    for b in rows:
        oldest = b.oldest.astimezone().strftime("%H:%M:%S") if b.oldest else "-"
        typer.echo(f"{b.channel:<24} {b.pending:>6} pending, {b.failing} failing, {b.dead} dead,"
                   f" oldest {oldest}  {b.last_error or ''}")  # fmt: skip
    if not rows:
        typer.echo("(nothing waiting)")
    if dead:
        typer.echo("dead letters (latest, never attempted again):")
    for d in dead:
        at = d.dead_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"  {d.channel:<22} alert {d.alert_id} seq {d.seq}, {at}, after"
                   f" {d.attempts} attempt(s): {d.last_error or ''}")  # fmt: skip
