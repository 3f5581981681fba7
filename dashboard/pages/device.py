"""One device: meta, state, rolled-up time series, status history, its alerts; for a tower,
its N-1 criticality, the villages whose coverage its loss or return changed, and the villages
it serves now (and whether it is the only tower, of its operator or of any, there)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import auth, runway_view
from dashboard.app import page
from dashboard.coverage_view import criticality_text, tower_criticality
from dashboard.data import db
from dashboard.i18n import ZONE_NAME, labeller, lang, localized, num, t, translated, when
from devices.kinds import Kind
from devices.metrics import metric
from store import alerts, readings, registry, villages

SERVED_SHOWN = 30  # villages a tower serves, linked one by one (those it alone serves first)
RANGES = {
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}

# A device outside the user's provinces is found by no read below: it looks like no device.
scope = auth.scope()
# ?device=ID (the map's click-through and links), or ?id=ID as older links have it; each new
# link is followed once (and again once its widgets were dropped on leaving the page).
linked = st.query_params.get("device") or st.query_params.get("id")
if linked and (st.session_state.get("device_link") != linked or "device_q" not in st.session_state):
    st.session_state["device_link"] = linked
    st.session_state["device_q"] = linked
    st.session_state["device_pick"] = linked
text = st.text_input(t("device.search"), key="device_q", placeholder="BTS-VTL-0001")
if not text.strip():
    st.stop()
with db() as conn:
    found = registry.search_devices(conn, text, scope=scope)
if not found:
    st.info(t("device.none"))
    st.stop()
if st.session_state.get("device_pick") not in {d.device_id for d in found}:
    st.session_state.pop("device_pick", None)  # a pick the new search no longer lists
device_id = st.selectbox(
    t("device.pick"),
    [d.device_id for d in found],
    format_func={d.device_id: f"{d.device_id} · {d.name or ''}" for d in found}.__getitem__,
    key="device_pick",
)
now = datetime.now(UTC)
with db() as conn:
    device = registry.device_detail(conn, device_id, scope=scope)
    history = registry.status_events(conn, device_id, limit=50, scope=scope)
    its_alerts = alerts.list_alerts(
        conn, alerts.AlertFilter(subject=device_id, limit=50), scope=scope
    )
if device is None:
    st.info(t("device.none"))
    st.stop()

st.subheader(f"{device.name or device.device_id} · {device.device_id}")
head = st.columns(4)
head[0].metric(
    t("device.state"),
    t("state." + device.state),
    delta=t("device.since", when=when(device.state_since)),
    delta_color="off",
)
head[1].metric(t("device.last_seen"), when(device.last_seen, "medium"))
head[2].metric(t("device.operator"), device.operator or "—")
head[3].metric(
    t("device.district"), device.district_name or "—", delta=device.commune_name, delta_color="off"
)

with st.expander(t("device.meta"), expanded=False):
    position = f"{device.lat:.5f}, {device.lon:.5f}" if device.lat and device.lon else "—"
    st.write(f"**{t('device.position')}:** {position}")
    sectors = device.meta.get("sectors") or []
    if sectors:
        st.write(f"**{t('device.sectors')}:**")
        st.dataframe(localized(pd.DataFrame(sectors)), hide_index=True)
    st.json({k: v for k, v in device.meta.items() if k != "sectors"}, expanded=False)

span = st.radio(
    t("device.range"),
    list(RANGES),
    horizontal=True,
    format_func=labeller("device.range_", RANGES),
    key=translated("device_range", default="24h"),
)
kind = Kind(device.kind)
with db() as conn:
    series = readings.rollup_series(conn, kind, device_id, now - RANGES[span], now, scope=scope)
if not series:
    st.info(t("device.no_readings"))
else:
    frame = pd.DataFrame(series).set_index("bucket")
    frame.index = pd.to_datetime(frame.index, utc=True).tz_convert(ZONE_NAME).tz_localize(None)
    columns = [c for c in frame.columns if c != "readings"]
    grid = st.columns(2)
    for i, name in enumerate(columns):
        spec = metric(kind, name)
        with grid[i % 2]:
            label = spec.label[lang()]
            st.caption(f"{label} ({spec.unit})" if spec.unit else label)
            st.line_chart(frame[[name]].astype(float), height=180)

if kind is Kind.BTS:
    with db() as conn:
        n1 = tower_criticality(conn, device_id, scope=scope)
        touched = villages.tower_villages(conn, device_id, scope=scope)
        on_battery = runway_view.site_forecast(conn, device_id, scope=scope)
    runway_view.device_forecast(on_battery, now)
    if n1 is not None or touched:
        st.subheader(t("device.villages"))
    if n1 is not None:
        (st.error if n1["villages_all"] else st.success)(criticality_text(n1))
        loss = t(
            "device.operator_loss",
            n=num(n1["villages_operator"]),
            population=num(n1["population_operator"]),
            operator=n1["operator"],
        )
        st.caption(loss)
    if touched:
        st.caption(t("device.villages_touched", n=num(len(touched))))
        for v in touched[:20]:
            label = t("device.village_line", name=v["name"], commune=v["commune_name"],
                      population=num(v["population"]), event=t("village.kind_" + v["kind"]),
                      when=when(v["ts"], "short"))  # fmt: skip
            st.page_link(page("village"), label=label, query_params={"village": v["village_id"]})
    with db() as conn:
        serves = villages.tower_serves(conn, device_id, scope=scope)
    st.subheader(t("device.serves", n=num(len(serves))))
    st.caption(t("device.serves_note" if serves else "device.serves_none"))
    for v in serves[:SERVED_SHOWN]:
        if v["towers_all"] == 1:
            role = t("device.serve_only")
        elif v["towers_operator"] == 1:
            role = t("device.serve_only_operator", operator=v["operator"])
        else:
            role = t("device.serve_shared", n=num(v["towers_operator"]), operator=v["operator"])
        label = t("device.serve_line", name=v["name"], commune=v["commune_name"],
                  population=num(v["population"]), role=role)  # fmt: skip
        st.page_link(page("village"), label=label, query_params={"village": v["village_id"]})
    if len(serves) > SERVED_SHOWN:
        st.caption(t("device.serve_more", n=num(len(serves) - SERVED_SHOWN)))

left, right = st.columns(2)
with left:
    st.subheader(t("device.status_history"))
    st.dataframe(
        pd.DataFrame(
            {
                t("device.time"): [when(h["ts"], "medium") for h in history],
                t("device.state"): [t("state." + h["state"]) for h in history],
                t("device.reason"): [h["reason"] for h in history],
            }
        ),
        hide_index=True,
        width="stretch",
    )
with right:
    st.subheader(t("device.alerts"))
    for a in its_alerts:
        text = a.summary_vi if lang() == "vi" else a.summary
        st.page_link(
            page("alerts"),
            query_params={"alert": str(a.alert_id)},
            label=f"#{a.alert_id} · {t('severity.' + a.severity)} ·"
            f" {t('alert_state.' + a.state)} · {text[:80]}",
        )
