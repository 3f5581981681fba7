-- Channels people carry, routed and escalated (issue 16): each recipient has its own outbox
-- channel ('email:NAME', 'telegram:NAME', 'sms:NAME'), so the rows need no new column for it;
-- escalations are recorded once per alert and route, so a restart never sends one again.

CREATE TABLE alert_escalations (
    alert_id     bigint NOT NULL REFERENCES alerts (alert_id),
    route        text NOT NULL,              -- the escalating [[routes]] entry's name
    escalated_at timestamptz NOT NULL,
    PRIMARY KEY (alert_id, route)
);

-- Set on the row an escalation queued: its message says the alert is still unacknowledged.
ALTER TABLE alert_outbox ADD COLUMN escalated boolean NOT NULL DEFAULT false;

-- The alert service records escalations; the dashboard may show them. The per-service roles
-- come with migration 0013; where it has not run (or a role is missing) there is nothing to
-- grant to, and this migration still applies.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_alerts') THEN
        GRANT SELECT, INSERT ON alert_escalations TO ioc_alerts;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT SELECT ON alert_escalations TO ioc_dashboard;
    END IF;
END $$;
