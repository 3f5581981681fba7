"""``ioc coverage at TIME``: the villages without signal at a past moment, and why.

Read from the history the services keep (store/coverage_history.py), never recomputed. A time
without an offset is the province's wall time, as the dashboard shows it; a time before the
kept history or in the future is one clear line, not an empty list that reads "all fine".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from devices.clock import EXAMPLE, LOCAL_ZONE, parse_local
from ioc.cli_common import clear_errors, database, load_settings
from ioc.cli_coverage import Province, coverage_app, province_code
from ioc.errors import SettingError
from store.coverage_history import CoverageAt, VillageAt, coverage_at, history_span, sites_down_at
from store.scope import Scope


def parse_moment(text: str) -> datetime:
    try:
        return parse_local(text)
    except ValueError as err:
        raise SettingError(str(err)) from None


def shown(moment: datetime) -> str:
    local = moment.astimezone(LOCAL_ZONE)
    return f"{local:%Y-%m-%d %H:%M} {local.isoformat()[-6:]}"


def clock(moment: datetime | None) -> str:
    return moment.astimezone(LOCAL_ZONE).strftime("%H:%M %d/%m") if moment else "?"


def _people(n: int) -> str:
    return f"{n:,} {'person' if n == 1 else 'people'}"


def _villages(n: int) -> str:
    return f"{n:,} village{'' if n == 1 else 's'}"


def check_kept(moment: datetime, earliest: datetime | None, now: datetime) -> None:
    """One clear line where the history cannot say what was so at ``moment``."""
    if earliest is None:
        raise SettingError(
            "no coverage history kept yet: run `ioc coverage run` (ioc up does) first"
        )
    if moment < earliest:
        raise SettingError(
            f"no coverage history before {shown(earliest)}: the earliest kept is"
            f" {shown(earliest)}, and {shown(moment)} is earlier"
        )
    if moment > now:
        raise SettingError(f"{shown(moment)} is in the future (now is {shown(now)})")


@coverage_app.command("at")
@clear_errors
def coverage_at_command(
    moment: Annotated[
        str, typer.Argument(help=f"the moment, ISO ({EXAMPLE}); no offset: {LOCAL_ZONE.key}")
    ],
    all_dark: Annotated[
        bool,
        typer.Option("--all", help="list the villages dark in the whole kept history too"),
    ] = False,
    province: Province = None,
) -> None:
    """The villages dark (no operator) or short of operators at a past moment, and why."""
    at = parse_moment(moment)
    scope = Scope.of([province_code(province)])
    with database(load_settings()) as conn:
        span = history_span(conn, scope=scope)
        check_kept(at, span.earliest if span else None, datetime.now(UTC))
        picture = coverage_at(conn, at, scope=scope)
        down = sites_down_at(conn, at, scope=scope)
    for line in report_lines(picture, down, all_dark=all_dark):
        typer.echo(line)


def report_lines(picture: CoverageAt, down: list[str], *, all_dark: bool = False) -> list[str]:
    dark, outages = picture.dark, picture.outages
    never = [v for v in dark if not v.lost]

    def why(v: VillageAt) -> str:
        named = [_site(picture, t) for t in v.towers]
        serving = [t for t in picture.serving.get(v.village_id, []) if t not in v.towers]
        off = [_site(picture, t) for t in serving if _state(picture, t) != "online"]
        text = f"lost {', '.join(v.lost)} at {clock(v.lost_at)}"
        text += f"; sites named by the loss events: {', '.join(named) or 'none'}"
        if off:
            text += f"; serving it now (place_towers, current) and down then: {', '.join(off)}"
        return text

    people = _people(sum(v.population for v in dark))
    sites = f"{len(down):,} site{'' if len(down) == 1 else 's'} down"
    short = [v for v in outages if not v.dead_spot]
    lines = [
        f"{shown(picture.at)}: {_villages(len(dark))} dark, {people}, {sites}"
        f" ({len(dark) - len(never):,} dark by an outage, {_villages(len(short))} short of an"
        " operator)"
    ]
    for title, rows in (
        ("dark (no operator)", [v for v in outages if v.dead_spot]),
        ("short of an operator", short),
    ):
        if not rows:
            continue
        lines.append(f"{title}:")
        for v in rows:
            has = f"; has {', '.join(v.operators)}" if v.operators else ""
            lines.append(
                f"  {v.name} ({v.village_id}) · {v.commune} · {v.district} ·"
                f" {_people(v.population)}{has}"
            )
            lines.append(f"    {why(v)}")
    if never:
        people = _people(sum(v.population for v in never))
        lines.append(
            f"no signal before either (dead spots, no loss event kept): {_villages(len(never))},"
            f" {people}" + ("" if all_dark else " (--all lists them)")
        )
        if all_dark:
            lines += [f"  {v.name} ({v.village_id}) · {v.commune} · {v.district} ·"
                      f" {_people(v.population)}" for v in never]  # fmt: skip
    if not picture.villages:
        lines.append("every village had signal from every operator it had")
    return lines


def _state(picture: CoverageAt, device_id: str) -> str:
    found = picture.devices.get(device_id)
    return found.state if found and found.since else "unknown"


def _site(picture: CoverageAt, device_id: str) -> str:
    found = picture.devices.get(device_id)
    if found is None or found.since is None:
        return f"{device_id} (no status kept before then)"
    reason = f", {found.reason}" if found.reason else ""
    return f"{device_id} ({found.state} since {clock(found.since)}{reason})"
