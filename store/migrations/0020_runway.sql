-- Battery runway (issue 18, part 1): for each tower on battery, when it goes dark if mains does
-- not return, fitted from its own battery readings; for each place and operator (and 'any'),
-- when it loses signal, as the last of its serving towers goes dark. Only the current picture
-- is kept: the coverage service rewrites both tables (a tower back on mains, or dark, leaves
-- them), so they hold at most one row per tower and per (place, operator).

CREATE TABLE site_runway (
    device_id        text PRIMARY KEY,
    on_battery_since timestamptz NOT NULL,   -- the first reading of this stretch on battery
    battery_pct      double precision,       -- the last reading's charge; NULL = none reported
    read_at          timestamptz NOT NULL,   -- the last reading's time
    drain_pct_per_h  double precision,       -- the rate the forecast uses; NULL = unknown
    method           text NOT NULL CHECK (method IN ('fit', 'nominal', 'unknown')),
    readings         integer NOT NULL,       -- battery readings the fit used
    dark_at          timestamptz,            -- central forecast; NULL when unknown
    dark_early       timestamptz,            -- the uncertainty band around it
    dark_late        timestamptz,
    computed_at      timestamptz NOT NULL
);
CREATE INDEX site_runway_dark ON site_runway (dark_at);

-- A row exists only while every tower serving the place for ``operator`` is on battery: one on
-- mains keeps the place served. loses_at is the last of their dark_at (NULL = unknown: one of
-- them has no forecast); sites are those towers.
CREATE TABLE place_runway (
    place_kind  text NOT NULL CHECK (place_kind IN ('village', 'commune')),
    place_id    text NOT NULL,
    operator    text NOT NULL,               -- an operator, or 'any': all mobile signal
    loses_at    timestamptz,
    loses_early timestamptz,
    loses_late  timestamptz,
    sites       text[] NOT NULL,
    population  integer NOT NULL,
    computed_at timestamptz NOT NULL,
    PRIMARY KEY (place_kind, place_id, operator)
);
CREATE INDEX place_runway_loses ON place_runway (loses_at);

-- The coverage service finds the towers on battery from each one's last reading
-- (telemetry_bts_latest, 0017), reads their stretch of readings and writes the runway; the
-- alert engine and the dashboard read it. As in 0016, where the roles of 0013 are missing this
-- still applies.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_coverage') THEN
        GRANT SELECT ON telemetry_bts, telemetry_bts_latest TO ioc_coverage;
        GRANT SELECT, INSERT, UPDATE, DELETE ON site_runway, place_runway TO ioc_coverage;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_alerts') THEN
        GRANT SELECT ON site_runway, place_runway TO ioc_alerts;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT SELECT ON site_runway, place_runway TO ioc_dashboard;
    END IF;
END $$;
