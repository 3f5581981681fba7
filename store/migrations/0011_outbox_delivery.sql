-- Delivery that is fair and finite (issue 16): each channel drains the head row of every alert
-- (its lowest undelivered seq) by severity then age, and a row that can never succeed is dead.

-- The alert's severity when the row was queued, as a rank (0 critical … 3 info), so the drain
-- orders without a join; the order of store.alerts.SEVERITIES.
ALTER TABLE alert_outbox ADD COLUMN severity_rank smallint NOT NULL DEFAULT 3;
UPDATE alert_outbox o
SET severity_rank = array_position(ARRAY['critical', 'major', 'minor', 'info'], a.severity) - 1
FROM alerts a WHERE a.alert_id = o.alert_id;

-- Set once a row is given up (a 4xx that cannot get better, or too many attempts): it keeps
-- its last_error and is never attempted again; the alert's next transition becomes its head.
ALTER TABLE alert_outbox ADD COLUMN dead_at timestamptz;

-- Rows still to attempt. The drain walks the first in its order (severity, then queue order)
-- and stops after a batch; the second answers "is an earlier seq of this alert still waiting?"
-- (a row that is not its alert's head is skipped), one probe per row looked at.
DROP INDEX alert_outbox_pending;
CREATE INDEX alert_outbox_drain ON alert_outbox (channel, severity_rank, outbox_id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX alert_outbox_pending ON alert_outbox (channel, alert_id, seq)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
-- Dead letters, latest first, for `ioc alerts outbox` and the dashboard.
CREATE INDEX alert_outbox_dead ON alert_outbox (channel, dead_at DESC) WHERE dead_at IS NOT NULL;
