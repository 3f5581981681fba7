-- The battery runway (0020) finds the towers on battery from each one's last reading, kept in
-- telemetry_bts_latest (0017), instead of searching the readings for it: the coverage service's
-- role reads that table too (0020 granted it the readings only).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_coverage') THEN
        GRANT SELECT ON telemetry_bts_latest TO ioc_coverage;
    END IF;
END $$;
