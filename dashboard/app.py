"""The IOC view (Streamlit). Run with `ioc dashboard` or `ioc up`."""

from __future__ import annotations

import streamlit as st

from dashboard.data import connection, refresh_seconds
from dashboard.livemap import deck, device_frame
from store import queries

st.set_page_config(page_title="IOC Bình Định", page_icon="📡", layout="wide")
st.title("Trung tâm Điều hành thông minh · Bình Định")


@st.fragment(run_every=refresh_seconds())
def live_map() -> None:
    conn = connection()
    counts = queries.state_counts(conn)
    columns = st.columns(3)
    for column, kind in zip(columns, ("bts", "camera", "broadband"), strict=True):
        online = sum(c.devices for c in counts if c.kind == kind and c.state == "online")
        total = sum(c.devices for c in counts if c.kind == kind)
        column.metric(
            f"{kind.upper()} online",
            f"{online:,} / {total:,}",
            delta=f"{total - online:,} not online",
            delta_color="inverse",
        )
    frame = device_frame(queries.device_map(conn))
    st.pydeck_chart(
        deck(frame, queries.districts(conn), queries.map_features(conn)), height=720, key="live-map"
    )
    st.caption(
        "● online  ● offline  ● unknown — positions of villages, roads and districts are "
        "synthetic (see seeds/data/README.md)"
    )


live_map()
