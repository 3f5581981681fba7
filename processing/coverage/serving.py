"""Whether a base station serves: the one definition, read by the raster, the village verdicts,
N-1 criticality, the report and the map.

A sector serves when
- its site is alive: the site's liveness is ``online`` (a fresh ``online`` status or readings
  within its liveness window; ``processing.liveness`` turns silence past the window into
  ``offline``, and the will or a reported ``offline`` does so at once);
- the site has backhaul: its own latest ``backhaul_up`` is not false, and the broadband nodes
  the registry lists as feeding its commune (``communes_served``) do not all report their
  ``uplink_up`` false;
- and the sector is on air (the site's latest ``sectors_up``; a flag it does not send is on).

A site never heard from is ``unknown``: it serves during the start-up grace (the fleet may still
be connecting) and not after; either way the places that rest on it alone are reported as
resting on unknown towers, never as covered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Why(StrEnum):
    SERVING = "serving"
    UNKNOWN = "unknown"  # never heard from
    OFFLINE = "offline"
    BACKHAUL_DOWN = "backhaul_down"  # its own backhaul_up is false
    UPLINK_DOWN = "uplink_down"  # the broadband node feeding its commune lost its uplink


@dataclass(frozen=True, slots=True)
class SiteState:
    """What the raster takes of a site: does it serve, and which of its sectors are on air."""

    serving: bool = True
    sectors_up: tuple[bool, ...] | None = None  # one flag per sector number 1, 2, …; None: all


@dataclass(frozen=True, slots=True)
class SiteReport:
    """What the store holds about one base station."""

    state: str  # liveness: online, offline or unknown
    state_since: datetime | None = None
    commune_code: int | None = None
    flags_at: datetime | None = None  # reading time of the last change of its flags
    sectors_up: tuple[bool, ...] | None = None
    backhaul_up: bool | None = None


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What the store holds about one broadband node's uplink."""

    uplink_up: bool | None = None
    flags_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    why: Why
    state: SiteState
    since: datetime | None  # when the newest input behind this verdict changed


def judge(site: SiteReport, feeders: Sequence[NodeReport], *, in_grace: bool) -> Verdict:
    times = [t for t in (site.state_since, site.flags_at) if t is not None]
    times += [n.flags_at for n in feeders if n.flags_at is not None]
    since = max(times, default=None)
    if site.state == "unknown":
        why = Why.UNKNOWN
    elif site.state != "online":
        why = Why.OFFLINE
    elif site.backhaul_up is False:
        why = Why.BACKHAUL_DOWN
    elif feeders and all(n.uplink_up is False for n in feeders):
        why = Why.UPLINK_DOWN
    else:
        why = Why.SERVING
    serves = why is Why.SERVING or (why is Why.UNKNOWN and in_grace)
    return Verdict(why, SiteState(serves, site.sectors_up), since)


def judge_all(
    sites: Mapping[str, SiteReport],
    nodes: Mapping[str, NodeReport],
    feeders: Mapping[int, Sequence[str]],
    *,
    in_grace: bool,
) -> dict[str, Verdict]:
    """Every site's verdict; ``feeders`` maps a commune code to the nodes serving it."""
    none: Sequence[str] = ()
    return {
        device_id: judge(
            site,
            [nodes[n] for n in feeders.get(site.commune_code or -1, none) if n in nodes],
            in_grace=in_grace,
        )
        for device_id, site in sites.items()
    }


def verdicts_from_rows(
    rows: Sequence[Mapping[str, Any]], feeders: Mapping[int, Sequence[str]], *, in_grace: bool
) -> dict[str, Verdict]:
    """Verdicts from ``store.coverage.serving_inputs`` rows (base stations and nodes)."""
    sites, nodes = {}, {}
    for r in rows:
        if r["kind"] == "broadband":
            nodes[r["device_id"]] = NodeReport(r["uplink_up"], r["flags_at"])
        else:
            sectors = r["sectors_up"]
            sites[r["device_id"]] = SiteReport(
                state=r["state"],
                state_since=r["state_since"],
                commune_code=r["commune_code"],
                flags_at=r["flags_at"],
                sectors_up=tuple(sectors) if sectors is not None else None,
                backhaul_up=r["backhaul_up"],
            )
    return judge_all(sites, nodes, feeders, in_grace=in_grace)
