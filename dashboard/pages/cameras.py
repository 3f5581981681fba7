"""Cameras per district: online, recording, storage free, tamper; the faulted ones listed."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from statistics import median

import pandas as pd
import streamlit as st

from dashboard import auth
from dashboard.data import db
from dashboard.i18n import num, t, when
from devices.health import DisplayState
from store import cameras

now = datetime.now(UTC)
scope = auth.scope()
with db() as conn:
    found = cameras.cameras(conn, now, scope=scope)

live = [c for c in found if DisplayState(c.state).live]
recording = [c for c in found if c.recording]
tampered = [c for c in found if c.tamper]
storage_low = [c for c in found if c.storage_alert]
# A fault: dark, or alive with a health rule broken (stream down, not recording, tampered), or
# its storage nearly full (the alert rule's threshold).
faulted = [
    c
    for c in found
    if c.state in (DisplayState.OFFLINE.value, DisplayState.DEGRADED.value) or c.storage_alert
]

head = st.columns(4)
head[0].metric(
    t("head.online_of", kind=t("kind.camera"), total=num(len(found))),
    num(len(live)),
    delta=t("head.not_online", n=num(len(found) - len(live))),
    delta_color="inverse" if len(live) < len(found) else "off",
    delta_arrow="off",
)
# Recording and storage come from a reading within the latest window: counted against the
# cameras that sent one, so a fleet still connecting does not read as not recording.
reporting = [c for c in found if c.recording is not None]
head[1].metric(
    t("cam.recording"),
    num(len(recording)),
    delta=t("cam.of_reporting", n=num(len(reporting))),
    delta_color="off",
    delta_arrow="off",
)
head[2].metric(t("cam.tamper"), num(len(tampered)))
head[3].metric(t("cam.storage_low"), num(len(storage_low)))


def storage(values: list[float]) -> tuple[str, str]:
    """Median and lowest storage free of the cameras that report it."""
    if not values:
        return "—", "—"
    return num(median(values)) + " %", num(min(values)) + " %"


st.subheader(t("cov.by_district"))
by_district: dict[str, list[cameras.CameraState]] = defaultdict(list)
for c in found:
    by_district[c.district_name or "—"].append(c)
rows = []
for district, cams in sorted(by_district.items()):
    middle, lowest = storage([c.storage_free_pct for c in cams if c.storage_free_pct is not None])
    rows.append(
        {
            t("cov.district"): district,
            t("cam.cameras"): num(len(cams)),
            t("cam.online"): num(sum(DisplayState(c.state).live for c in cams)),
            t("cam.reporting"): num(sum(c.recording is not None for c in cams)),
            t("cam.recording"): num(sum(bool(c.recording) for c in cams)),
            t("cam.storage_median"): middle,
            t("cam.storage_min"): lowest,
            t("cam.tamper"): num(sum(bool(c.tamper) for c in cams)),
            t("cam.storage_low"): num(sum(c.storage_alert for c in cams)),
        }
    )
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height="content")


def yes_no(value: bool | None) -> str:
    return "—" if value is None else t("cam.yes") if value else t("cam.no")


st.subheader(t("cam.faults", n=num(len(faulted))))
if not faulted:
    st.success(t("cam.no_faults"))
else:
    st.dataframe(
        pd.DataFrame(
            {
                t("cam.camera"): [f"{c.device_id} · {c.name or ''}" for c in faulted],
                t("cov.district"): [c.district_name or "—" for c in faulted],
                t("cov.commune"): [c.commune_name or "—" for c in faulted],
                t("device.state"): [t("state." + c.state) for c in faulted],
                t("cam.stream"): [yes_no(c.online) for c in faulted],
                t("cam.recording"): [yes_no(c.recording) for c in faulted],
                t("cam.storage_free"): [
                    "—" if c.storage_free_pct is None else num(c.storage_free_pct) + " %"
                    for c in faulted
                ],
                t("cam.tamper"): [yes_no(c.tamper) for c in faulted],
                t("device.last_seen"): [when(c.last_seen) for c in faulted],
            }
        ),
        hide_index=True,
        width="stretch",
    )
