-- Alerting: alerts and their transitions, silences, the delivery outbox, and the engine's inputs.
-- The same on TimescaleDB and plain PostgreSQL (these tables are small and updated in place).

CREATE TABLE alerts (
    alert_id        bigserial PRIMARY KEY,
    rule            text NOT NULL,
    subject         text NOT NULL,          -- device id, village id or district code
    subject_kind    text NOT NULL,          -- bts, camera, broadband, village, district
    severity        text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'info')),
    state           text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    summary         text NOT NULL,
    summary_vi      text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    district_code   integer,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    ack_comment     text,
    resolved_at     timestamptz,
    resolved_by     text,
    resolve_reason  text,
    flapping        boolean NOT NULL DEFAULT false,
    suppressed      boolean NOT NULL DEFAULT false,  -- its last transition fell in a silence
    last_seq        integer NOT NULL DEFAULT 0        -- transitions so far; orders them per alert
);
-- Deduplication is the database's invariant: one unresolved alert per (rule, subject).
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (rule, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_recent ON alerts (opened_at DESC);
CREATE INDEX alerts_unresolved ON alerts (severity, opened_at DESC) WHERE state <> 'resolved';

CREATE TABLE alert_transitions (
    transition_id bigserial PRIMARY KEY,
    alert_id      bigint NOT NULL REFERENCES alerts (alert_id),
    seq           integer NOT NULL,
    ts            timestamptz NOT NULL,
    event         text NOT NULL CHECK (event IN ('opened', 'updated', 'flapping', 'acknowledged',
                                                 'resolved', 'unsilenced')),
    actor         text NOT NULL,
    comment       text,
    payload       jsonb NOT NULL,            -- the alert as it stood after this transition
    fanned_out    boolean NOT NULL DEFAULT false,
    suppressed    boolean NOT NULL DEFAULT false,
    UNIQUE (alert_id, seq)
);
CREATE INDEX alert_transitions_pending ON alert_transitions (transition_id) WHERE NOT fanned_out;

CREATE TABLE alert_silences (
    silence_id   bigserial PRIMARY KEY,
    rule         text,                       -- NULL: every rule of the subject
    subject      text,                       -- NULL: every subject of the rule
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    created_by   text NOT NULL,
    comment      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (rule IS NOT NULL OR subject IS NOT NULL),
    CHECK (ends_at > starts_at)
);
CREATE INDEX alert_silences_ends ON alert_silences (ends_at);

-- One row per transition and channel ('mqtt', 'webhook:NAME'); delivered in seq order per alert.
CREATE TABLE alert_outbox (
    outbox_id       bigserial PRIMARY KEY,
    transition_id   bigint NOT NULL REFERENCES alert_transitions (transition_id),
    alert_id        bigint NOT NULL,
    seq             integer NOT NULL,
    channel         text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_attempt_at timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    UNIQUE (channel, transition_id)
);
CREATE INDEX alert_outbox_pending ON alert_outbox (channel, alert_id, seq) WHERE delivered_at IS NULL;

-- Status changes reach the engine through this queue, filled by a trigger in the ingester's own
-- transaction: the engine consumes each committed change exactly once, whatever the commit order.
CREATE TABLE alert_inbox (
    inbox_id  bigserial PRIMARY KEY,
    ts        timestamptz NOT NULL,
    device_id text NOT NULL,
    state     text NOT NULL,
    reason    text NOT NULL
);

CREATE FUNCTION alert_inbox_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_inbox (ts, device_id, state, reason)
    VALUES (NEW.ts, NEW.device_id, NEW.state, NEW.reason);
    PERFORM pg_notify('ioc_alert_inbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER status_events_to_alert_inbox AFTER INSERT ON status_events
    FOR EACH ROW EXECUTE FUNCTION alert_inbox_status();

-- New village coverage events (migration 0004) wake the engine too; it reads them by id.
CREATE FUNCTION alert_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ioc_alert_inbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER coverage_events_wake_alerts AFTER INSERT ON coverage_events
    FOR EACH STATEMENT EXECUTE FUNCTION alert_wake();

-- Where the engine has read up to in append-only inputs (coverage_events by id).
CREATE TABLE alert_cursors (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);

-- The engine polls the latest readings by arrival; BRIN costs the ingester almost nothing.
CREATE INDEX telemetry_bts_received ON telemetry_bts USING brin (received_at);
CREATE INDEX telemetry_camera_received ON telemetry_camera USING brin (received_at);
CREATE INDEX telemetry_broadband_received ON telemetry_broadband USING brin (received_at);
