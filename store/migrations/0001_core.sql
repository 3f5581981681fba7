-- Core registry and event tables, the same on TimescaleDB and plain PostgreSQL.

CREATE TABLE devices (
    device_id     text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('bts', 'camera', 'broadband', 'probe')),
    name          text,
    operator      text,
    lat           double precision,
    lon           double precision,
    district_code integer,
    commune_code  integer,
    interval_s    integer NOT NULL DEFAULT 60,
    meta          jsonb NOT NULL DEFAULT '{}'::jsonb,
    meta_updated  timestamptz,
    -- ``state`` is the derived liveness (reported status, will, or missed intervals).
    state         text NOT NULL DEFAULT 'unknown' CHECK (state IN ('online', 'offline', 'unknown')),
    state_since   timestamptz,
    state_reason  text,
    last_seen     timestamptz,
    last_seq      bigint
);
CREATE INDEX devices_kind_state ON devices (kind, state);
CREATE INDEX devices_district ON devices (district_code);

CREATE TABLE device_meta_history (
    device_id   text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    meta        jsonb NOT NULL
);
CREATE INDEX device_meta_history_device ON device_meta_history (device_id, changed_at DESC);

CREATE TABLE status_events (
    ts          timestamptz NOT NULL,
    device_id   text NOT NULL,
    state       text NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_events_device ON status_events (device_id, ts DESC);

CREATE TABLE rejects (
    received_at timestamptz NOT NULL,
    reason      text NOT NULL,
    topic       text NOT NULL,
    device_id   text,
    detail      text NOT NULL,
    payload     bytea NOT NULL
);
CREATE INDEX rejects_reason ON rejects (reason, received_at DESC);

-- The scenario: province, districts, communes, villages (loaded by ``ioc scenario load``).
CREATE TABLE districts (
    code     integer PRIMARY KEY,
    name     text NOT NULL,
    town     text NOT NULL,
    lat      double precision NOT NULL,
    lon      double precision NOT NULL,
    mountainous boolean NOT NULL,
    polygon  jsonb NOT NULL
);

CREATE TABLE communes (
    code          integer PRIMARY KEY,
    name          text NOT NULL,
    district_code integer NOT NULL REFERENCES districts (code),
    division_type text NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    population    integer NOT NULL,
    has_fibre     boolean NOT NULL
);

CREATE TABLE villages (
    village_id     text PRIMARY KEY,
    name           text NOT NULL,
    commune_code   integer NOT NULL REFERENCES communes (code),
    district_code  integer NOT NULL REFERENCES districts (code),
    lat            double precision NOT NULL,
    lon            double precision NOT NULL,
    population     integer NOT NULL,
    synthetic      boolean NOT NULL,
    seed_dead_spot boolean NOT NULL
);

CREATE TABLE map_features (
    name      text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('outline', 'road')),
    points    jsonb NOT NULL,
    synthetic boolean NOT NULL
);
