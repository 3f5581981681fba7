-- Coverage (processing/coverage): each place's coverage now and its history, the village
-- change events the alert engine consumes, N-1 criticality per tower, and what was refused.
-- The same on TimescaleDB and plain PostgreSQL: these tables are small or append slowly.

CREATE TABLE coverage_places (
    place_kind    text NOT NULL CHECK (place_kind IN ('village', 'commune')),
    place_id      text NOT NULL,          -- village id, or the commune's GSO code
    name          text NOT NULL,
    district_code integer NOT NULL,
    commune_code  integer NOT NULL,
    population    integer NOT NULL,       -- 0 for a commune centre (counted in its villages)
    operators     text[] NOT NULL,        -- operators whose 3G/4G clears the threshold here
    measured      text[] NOT NULL,        -- operators judged here on probe measurements
    dead_spot     boolean NOT NULL,       -- no operator covers it
    levels        jsonb NOT NULL,         -- {"viettel": {"4G": -93.1, ...}, ...}, dBm
    since         timestamptz NOT NULL,   -- when ``operators`` last changed
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (place_kind, place_id)
);
CREATE INDEX coverage_places_district ON coverage_places (district_code);

CREATE TABLE coverage_history (
    ts         timestamptz NOT NULL,
    place_kind text NOT NULL,
    place_id   text NOT NULL,
    operators  text[] NOT NULL,
    measured   text[] NOT NULL,
    dead_spot  boolean NOT NULL
);
CREATE INDEX coverage_history_place ON coverage_history (place_kind, place_id, ts DESC);

-- One row per change of a village's coverage; consumers read by ``id`` in order.
CREATE TABLE coverage_events (
    id             bigserial PRIMARY KEY,
    ts             timestamptz NOT NULL,
    village_id     text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('lost', 'restored', 'degraded', 'improved')),
    operators_lost text[] NOT NULL,
    operators_now  text[] NOT NULL,
    towers         text[] NOT NULL,       -- device ids whose loss (or return) caused it
    population     integer NOT NULL
);
CREATE INDEX coverage_events_village ON coverage_events (village_id, ts DESC);

-- N-1: who would lose signal if this tower alone failed (with the others as they are now).
CREATE TABLE critical_towers (
    device_id           text PRIMARY KEY,
    operator            text NOT NULL,
    population_all      integer NOT NULL, -- would lose every operator
    villages_all        integer NOT NULL,
    population_operator integer NOT NULL, -- would lose this tower's operator
    villages_operator   integer NOT NULL,
    computed_at         timestamptz NOT NULL
);
CREATE INDEX critical_towers_rank ON critical_towers (population_all DESC, population_operator DESC);

-- Sectors refused at registration and probe samples refused, by reason (current picture).
CREATE TABLE coverage_rejections (
    source    text NOT NULL CHECK (source IN ('sector', 'probe')),
    device_id text NOT NULL,              -- '' for probe samples counted together
    sector    integer,
    reason    text NOT NULL,
    count     integer NOT NULL,
    seen_at   timestamptz NOT NULL
);
