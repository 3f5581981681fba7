"""Ingest health: throughput, latency, rejects by reason with samples of their raw payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import auth
from dashboard.data import db
from dashboard.i18n import ZONE_NAME, localized, num, t, when
from store import readings

now = datetime.now(UTC)
scope = auth.scope()
with db() as conn:
    health = readings.ingest_health(conn, now)
    series = readings.ingest_series(conn, now)
    reasons = readings.reject_counts(conn, now - timedelta(hours=24), scope=scope)

head = st.columns(3)
head[0].metric(t("head.ingest"), num(health.messages_per_s, 1))
head[1].metric(t("ingest.latency"), num(health.lag_s, 2))
head[2].metric(t("ingest.rejects"), num(sum(reasons.values())))

st.caption(t("ingest.window"))
if series:
    frame = pd.DataFrame(series).set_index("minute")
    frame.index = pd.to_datetime(frame.index, utc=True).tz_convert(ZONE_NAME).tz_localize(None)
    left, right = st.columns(2)
    left.caption(t("ingest.throughput"))
    left.bar_chart(frame[["messages"]], height=220)
    right.caption(t("ingest.latency"))
    right.line_chart(frame[["lag_s"]], height=220)

st.subheader(t("ingest.rejects"))
if not reasons:
    st.info(t("ingest.no_rejects"))
    st.stop()
counts = pd.DataFrame(
    {t("ingest.reason"): list(reasons), t("ingest.count"): list(reasons.values())}
).sort_values(t("ingest.count"), ascending=False)
st.dataframe(localized(counts), hide_index=True)
reason = st.selectbox(t("ingest.reason"), list(counts[t("ingest.reason")]), key="ingest_reason")
with db() as conn:
    samples = readings.reject_samples(conn, now - timedelta(hours=24), reason, scope=scope)
st.subheader(t("ingest.samples"))
st.dataframe(
    pd.DataFrame(
        {
            t("device.time"): [when(s["received_at"], "medium") for s in samples],
            "topic": [s["topic"] for s in samples],
            "detail": [s["detail"] for s in samples],
            # Raw bytes as received: shown as text where they decode, never interpreted.
            "payload": [bytes(s["payload"])[:400].decode("utf-8", "replace") for s in samples],
            "bytes": [num(s["payload_size"]) for s in samples],
        }
    ),
    hide_index=True,
    width="stretch",
)
