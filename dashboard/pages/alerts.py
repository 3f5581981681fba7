"""Alerts: open / acknowledged / resolved, filters, history; acknowledge and silence (operator)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import auth, runway_view
from dashboard.actions import acknowledge_alert, silence_subject
from dashboard.app import page
from dashboard.data import db, refusals_shown
from dashboard.i18n import labeller, lang, localized, num, t, translated, when
from store import alert_outbox, alerts, incidents, places
from store.users import Role

SUBJECT_KINDS = ("bts", "camera", "broadband", "village", "district", "incident")
DEVICE_KINDS = ("bts", "camera", "broadband")

user = auth.current_user()
scope = auth.scope()
flash = st.session_state.pop("alerts_flash", None)
if flash:
    st.success(flash)
with db() as conn:
    districts = places.district_names(conn, scope=scope)
    waiting = alert_outbox.backlog(conn, scope=scope)
    dead = alert_outbox.dead_letters(conn, scope=scope)


def delivery_health() -> None:
    """The outbox per channel, as `ioc alerts outbox` shows it: dead letters are never sent
    again, so they are shown open, with why, for someone to act on."""
    given_up = sum(b.dead for b in waiting)
    title = t("alerts.delivery_dead", dead=given_up) if given_up else t("alerts.delivery")
    with st.expander(title, expanded=given_up > 0):
        if not waiting:
            st.caption(t("alerts.nothing_waiting"))
            return
        st.dataframe(
            pd.DataFrame(
                {
                    t("alerts.channel"): [b.channel for b in waiting],
                    t("alerts.pending"): [b.pending for b in waiting],
                    t("alerts.failing"): [b.failing for b in waiting],
                    t("alerts.dead"): [b.dead for b in waiting],
                    t("alerts.oldest"): [when(b.oldest, "medium") for b in waiting],
                    t("alerts.last_error"): [b.last_error or "" for b in waiting],
                }
            ),
            hide_index=True,
            width="stretch",
        )
        if dead:
            st.caption(t("alerts.dead_letters"))
            st.dataframe(
                pd.DataFrame(
                    {
                        t("alerts.channel"): [d.channel for d in dead],
                        "#": [d.alert_id for d in dead],
                        t("device.time"): [when(d.dead_at, "medium") for d in dead],
                        t("alerts.attempts"): [d.attempts for d in dead],
                        t("alerts.last_error"): [d.last_error or "" for d in dead],
                    }
                ),
                hide_index=True,
                width="stretch",
            )


delivery_health()


def incident_list() -> None:
    """Incidents first: each a storm's cause in a district, its alerts one click below."""
    with db() as conn:
        found = incidents.list_incidents(conn, scope=scope)
    st.subheader(t("alerts.incidents", n=len(found)))
    st.caption(t("alerts.incident_caption"))
    if not found:
        st.caption(t("alerts.no_incidents"))
    for inc in found:
        facts = inc.facts
        text = inc.summary_vi if lang() == "vi" else inc.summary
        title = f"{t('severity.' + inc.severity)} · #{inc.alert_id} · {text[:160]}"
        with st.expander(title):
            cols = st.columns(4)
            cols[0].metric(t("alerts.villages_dark"), num(facts.get("villages_dark", 0)))
            cols[1].metric(t("alerts.people_affected"), num(facts.get("people_affected", 0)))
            cols[2].metric(t("alerts.member_alerts"), num(inc.open_members))
            cols[3].metric(t("alerts.opened"), when(inc.opened_at, "short"))
            worst = facts.get("worst_villages") or []
            if worst:
                names = ", ".join(f"{w['village']} ({num(w['population'])})" for w in worst)
                st.caption(t("alerts.worst_villages", names=names))
            by_rule = facts.get("by_rule") or {}
            st.dataframe(
                localized(
                    pd.DataFrame(
                        {t("alerts.rule"): list(by_rule), t("alerts.count"): list(by_rule.values())}
                    )
                ),
                hide_index=True,
            )
            with db() as conn:
                members = incidents.members(conn, inc.incident_id, scope=scope)
            st.dataframe(
                pd.DataFrame(
                    {
                        "#": [m.alert_id for m in members],
                        t("alerts.severity"): [t("severity." + m.severity) for m in members],
                        t("alerts.state"): [t("alert_state." + m.state) for m in members],
                        t("alerts.subject"): [m.subject for m in members],
                        t("alerts.inhibited"): [
                            t("alerts.yes") if m.inhibited else "" for m in members
                        ],
                        t("alerts.summary"): [
                            m.summary_vi if lang() == "vi" else m.summary for m in members
                        ],
                    }
                ),
                hide_index=True,
                width="stretch",
                height=min(420, 38 + 35 * len(members)),
            )
            st.page_link(
                page("alerts"),
                label=t("alerts.open_incident_alert"),
                query_params={"alert": str(inc.alert_id)},
            )


incident_list()
runway_view.risk_panel(datetime.now(UTC), scope=scope)

district_labels: dict[int | None, str] = {None: t("alerts.all")}
district_labels.update(districts.items())
filters = st.columns(4)
states = filters[0].multiselect(
    t("alerts.state"),
    ["open", "acknowledged", "resolved"],
    format_func=labeller("alert_state.", ["open", "acknowledged", "resolved"]),
    key=translated("alerts_states", default=["open", "acknowledged"]),
)
severities = filters[1].multiselect(
    t("alerts.severity"),
    list(alerts.SEVERITIES),
    format_func=labeller("severity.", alerts.SEVERITIES),
    placeholder=t("alerts.all"),
    key=translated("alerts_severities"),
)
district = filters[2].selectbox(
    t("alerts.district"),
    [None, *sorted(districts)],
    format_func=district_labels.__getitem__,
    key="alerts_district",
)
subject_kinds = filters[3].multiselect(
    t("alerts.kind"),
    list(SUBJECT_KINDS),
    format_func={
        k: t(("kind." if k in DEVICE_KINDS else "subject.") + k) for k in SUBJECT_KINDS
    }.__getitem__,
    placeholder=t("alerts.all"),
    key=translated("alerts_kinds"),
)

with db() as conn:
    rows = alerts.list_alerts(
        conn,
        alerts.AlertFilter(
            states=tuple(states), severities=tuple(severities), district_code=district, limit=500
        ),
        scope=scope,
    )
# The store filters by rule, not by subject kind; the page narrows the (bounded) list itself.
rows = [a for a in rows if not subject_kinds or a.subject_kind in subject_kinds]
# A deep link (?alert=42) opens its alert even where the filters would hide it (resolved, say).
wanted = st.query_params.get("alert")
if wanted and wanted.isdigit() and all(a.alert_id != int(wanted) for a in rows):
    try:
        with db() as conn:
            rows = [alerts.get_alert(conn, int(wanted), scope=scope), *rows]
    except alerts.AlertNotFound:
        st.warning(t("alerts.link_unknown", alert=wanted))


def summary(alert: alerts.AlertRow) -> str:
    return alert.summary_vi if lang() == "vi" else alert.summary


if not rows:
    st.info(t("alerts.none"))
    st.stop()

table = pd.DataFrame(
    {
        "#": [a.alert_id for a in rows],
        t("alerts.severity"): [t("severity." + a.severity) for a in rows],
        t("alerts.state"): [t("alert_state." + a.state) for a in rows],
        t("alerts.opened"): [when(a.opened_at, "medium") for a in rows],
        t("alerts.district"): [districts.get(a.district_code or -1, "") for a in rows],
        t("alerts.subject"): [a.subject for a in rows],
        t("alerts.summary"): [summary(a) for a in rows],
    }
)
st.dataframe(table, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(rows)))

ids = [a.alert_id for a in rows]
# Follow each new link once; afterwards the picker is the user's.
if (
    wanted
    and wanted.isdigit()
    and int(wanted) in ids
    and (st.session_state.get("alerts_link") != wanted or "alerts_pick" not in st.session_state)
):
    st.session_state["alerts_link"] = wanted
    st.session_state["alerts_pick"] = int(wanted)
by_id = {a.alert_id: a for a in rows}
picked = st.selectbox(
    t("alerts.pick"),
    ids,
    format_func={
        a.alert_id: f"#{a.alert_id} · {t('severity.' + a.severity)} · {a.subject}"
        f" · {summary(a)[:90]}"
        for a in rows
    }.__getitem__,
    key="alerts_pick",
)
alert = by_id[picked]

st.subheader(f"#{alert.alert_id} · {summary(alert)}")
info = st.columns(4)
info[0].metric(t("alerts.severity"), t("severity." + alert.severity))
info[1].metric(t("alerts.state"), t("alert_state." + alert.state))
info[2].metric(t("alerts.opened"), when(alert.opened_at, "short"))
info[3].metric(t("alerts.subject"), alert.subject)
links = st.columns(4)
links[0].page_link(page("map"), label=t("alerts.on_map"), query_params={"focus": alert.subject})
if alert.subject_kind in DEVICE_KINDS:
    links[1].page_link(
        page("device"),
        label=t("alerts.to_device"),
        query_params={"device": alert.subject},
    )
if alert.details:
    with st.expander(t("alerts.details")):
        st.json(alert.details)

with db() as conn:
    history = alerts.transitions(conn, alert.alert_id, scope=scope)
st.caption(t("alerts.history"))
st.dataframe(
    pd.DataFrame(
        {
            t("device.time"): [when(h.ts, "medium") for h in history],
            t("alerts.event"): [t("event." + h.event) for h in history],
            t("alerts.actor"): [h.actor for h in history],
            t("alerts.ack_comment"): [h.comment or "" for h in history],
        }
    ),
    hide_index=True,
    width="stretch",
)

# The forms are shown to everyone; for a viewer they are disabled, and if a crafted request
# submits them anyway, actions.* refuses it against the role stored in the database.
may_act = user is not None and user.role.allows(Role.OPERATOR)
if not may_act:
    st.info(t("alerts.viewer_note"))
act = st.columns(2)
with act[0].form("ack"):
    comment = st.text_input(t("alerts.ack_comment"), key="ack_comment", disabled=not may_act)
    ack = st.form_submit_button(
        t("alerts.ack"), type="primary", disabled=not may_act or alert.state != "open"
    )
with act[1].form("silence"):
    hours = st.number_input(
        t("alerts.silence_hours"), 1, 72, 4, key="silence_hours", disabled=not may_act
    )
    silence_note = st.text_input(
        t("alerts.ack_comment"), key="silence_comment", disabled=not may_act
    )
    silence = st.form_submit_button(t("alerts.silence"), disabled=not may_act)

if ack:
    with refusals_shown(alerts.AlertStateError, alerts.AlertNotFound):
        with db() as conn:
            done = acknowledge_alert(
                conn, auth.token(), alert.alert_id, comment, address=auth.address()
            )
        st.session_state["alerts_flash"] = t("alerts.acked", id=done.alert_id)
        st.rerun()
if silence:
    with refusals_shown():
        with db() as conn:
            row = silence_subject(
                conn,
                auth.token(),
                alert,
                float(hours),
                silence_note,
                now=datetime.now(UTC),
                address=auth.address(),
            )
        st.session_state["alerts_flash"] = t(
            "alerts.silenced", subject=alert.subject, until=when(row.ends_at)
        )
        st.rerun()
