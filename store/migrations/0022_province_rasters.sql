-- Coverage rasters per province (issue 19, part 2): the coverage service runs one engine per
-- province loaded, each on its own grid (its own extent on UTM 49N), so a raster is
-- keyed by (province_code, operator): five rows a province.
--
-- Existing rows (one deployment of one province, before this migration) are kept and given
-- that province when exactly one is loaded; otherwise they are dropped. Either way the coverage
-- service's rebuild at start-up rewrites every province's rasters.
--
-- No foreign key to provinces: `ioc scenario load` replaces the provinces (DELETE, INSERT), and
-- the service drops the rasters of a province no longer loaded at its next rebuild.

ALTER TABLE coverage_rasters ADD COLUMN province_code integer;
UPDATE coverage_rasters SET province_code = (SELECT min(code) FROM provinces)
WHERE (SELECT count(*) FROM provinces) = 1;
DELETE FROM coverage_rasters WHERE province_code IS NULL;
ALTER TABLE coverage_rasters ALTER COLUMN province_code SET NOT NULL;
ALTER TABLE coverage_rasters DROP CONSTRAINT coverage_rasters_pkey;
ALTER TABLE coverage_rasters ADD PRIMARY KEY (province_code, operator);

-- As in 0016; DELETE now too, for the rasters of a province no longer loaded.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_coverage') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON coverage_rasters TO ioc_coverage;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT SELECT ON coverage_rasters TO ioc_dashboard;
    END IF;
END $$;
