-- Which towers serve which place (issue 17, part 3): per place and operator, the towers whose
-- predicted 3G/4G level there clears the threshold, as the coverage engine last computed it
-- (processing/coverage/state.py ``Coverage.covering``; towers off air are not in it). One row
-- per (place, tower): "villages tower X serves" reads the device_id index, "towers serving
-- village Y" the primary key. The coverage service rewrites it with critical_towers (after a
-- rebuild, and at most every critical_every_s after a change), deleting the pairs gone and
-- inserting the new ones, so it only ever holds the current picture: about one row per
-- village per tower within reach (tens of thousands for the province).
-- since: when the service first wrote this pair (a pair that lapses and returns starts again).

CREATE TABLE place_towers (
    place_kind text NOT NULL CHECK (place_kind IN ('village', 'commune')),
    place_id   text NOT NULL,
    operator   text NOT NULL,
    device_id  text NOT NULL,
    since      timestamptz NOT NULL,
    PRIMARY KEY (place_kind, place_id, operator, device_id)
);
CREATE INDEX place_towers_device ON place_towers (device_id);

-- The coverage service writes it; the dashboard reads it. As in 0016, where the roles of 0013
-- are missing there is nothing to grant to, and this migration still applies.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_coverage') THEN
        GRANT SELECT, INSERT, DELETE ON place_towers TO ioc_coverage;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT SELECT ON place_towers TO ioc_dashboard;
    END IF;
END $$;
