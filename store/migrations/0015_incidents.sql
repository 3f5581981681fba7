-- Incidents, not storms (issue 16, part 6): open alerts grouped by cause and district, as
-- Alertmanager groups them, but stored and visible. An incident is told to people through its
-- own alert row (rule 'incident_<cause>', subject the district code), so its notifications use
-- the outbox's fairness, retries and dead letters unchanged; its member alerts stay stored,
-- linked here, and reach only the MQTT topic on their own (processing/alerts/incidents.py).

CREATE TABLE incidents (
    incident_id   bigserial PRIMARY KEY,
    cause         text NOT NULL,               -- a [[causes]] name of the rules file: power, fibre…
    district_code integer,                     -- NULL when the rules file groups by cause only
    alert_id      bigint NOT NULL REFERENCES alerts (alert_id),  -- its notifications
    opened_at     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,        -- its facts last written
    told_at       timestamptz NOT NULL,        -- its last notification (open or size change)
    told_size     integer NOT NULL,            -- member alerts at its last notification
    resolved_at   timestamptz,
    facts         jsonb NOT NULL DEFAULT '{}'::jsonb  -- districts, villages dark, people, worst…
);
-- One open incident per group key, as one unresolved alert per (rule, subject).
CREATE UNIQUE INDEX incidents_one_open ON incidents (cause, coalesce(district_code, -1))
    WHERE resolved_at IS NULL;
CREATE INDEX incidents_recent ON incidents (opened_at DESC);

-- The member alerts: still stored, listed under their incident. inhibited: placed there by an
-- inhibit rule (a symptom under its cause: a village under the tower that went down).
ALTER TABLE alerts ADD COLUMN incident_id bigint REFERENCES incidents (incident_id);
ALTER TABLE alerts ADD COLUMN inhibited boolean NOT NULL DEFAULT false;
CREATE INDEX alerts_incident ON alerts (incident_id) WHERE incident_id IS NOT NULL;

-- The alert service writes incidents; the dashboard reads them. As in 0014, where the roles of
-- 0013 are missing there is nothing to grant to, and this migration still applies.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_alerts') THEN
        GRANT SELECT, INSERT, UPDATE ON incidents TO ioc_alerts;
        GRANT USAGE ON SEQUENCE incidents_incident_id_seq TO ioc_alerts;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT SELECT ON incidents TO ioc_dashboard;
    END IF;
END $$;
