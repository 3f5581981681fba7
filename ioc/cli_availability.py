"""``ioc coverage availability``: minutes without signal and people x minutes lost over a period,
per district, commune or operator, with the worst villages and the sites that caused it
(issue 18 part 4; store/availability.py holds the SQL and its rules)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from ioc.cli_common import clear_errors, database, load_settings
from ioc.cli_coverage import coverage_app

By = Literal["district", "commune", "operator"]


@coverage_app.command("availability")
@clear_errors
def availability(
    start: Annotated[
        str, typer.Option("--from", help="period start: 2026-11-30 or 2026-11-30T21:00 (local)")
    ],
    end: Annotated[str, typer.Option("--to", help="period end, excluded")],
    by: Annotated[By, typer.Option(help="group by district, commune or operator")] = "district",
    top: Annotated[int, typer.Option(min=1, help="worst villages and sites listed")] = 20,
    csv: Annotated[
        Path | None,
        typer.Option(help="the groups to this CSV; villages, sites, dead spots beside it"),
    ] = None,
    xlsx: Annotated[Path | None, typer.Option(help="every table to this workbook")] = None,
) -> None:
    """Minutes without signal and people x minutes lost over a period (dates without an offset
    are Asia/Ho_Chi_Minh time)."""
    from devices.kinds import Operator
    from processing.coverage.availability import kept_period, parse_moment, report_lines, tables
    from store.availability import availability as measure
    from store.availability import history_span
    from store.scope import NATIONAL

    asked = parse_moment(start, "--from"), parse_moment(end, "--to")
    with database(load_settings()) as conn:
        period = kept_period(*asked, history_span(conn, scope=NATIONAL), datetime.now(UTC))
        report = measure(conn, period.start, period.end, scope=NATIONAL, by=by,
                         operators=[o.value for o in Operator], limit=top)  # fmt: skip
    for line in report_lines(report, period):
        typer.echo(line)
    frames = tables(report, period)
    if csv is not None:
        for name, frame in frames.items():
            path = csv if name == "groups" else csv.with_name(f"{csv.stem}-{name}{csv.suffix}")
            # utf-8-sig: Excel opens Vietnamese names correctly only with the BOM
            frame.to_csv(path, index=False, encoding="utf-8-sig")
            typer.echo(f"wrote {len(frame)} {name.replace('_', ' ')} to {path}")
    if xlsx is not None:
        from dashboard.coverage_view import to_xlsx

        xlsx.write_bytes(to_xlsx(frames))
        typer.echo(f"wrote {len(frames)} sheets to {xlsx}")
