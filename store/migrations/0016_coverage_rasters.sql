-- The coverage raster for the map (issue 17, part 2): per operator and for "any" operator, the
-- best predicted 3G/4G level of each cell of the engine's grid, as the coverage service last
-- computed it. Only the latest is kept (one row per operator, upserted), so the table never
-- grows: five rows.
--
-- The grid is the engine's: north-up on ``crs`` (UTM zone 49N, EPSG:32649), row 0 the northern
-- edge, cell (r, c) centred at (x0_m + (c + 0.5)·res_m, y0_m − (r + 0.5)·res_m).
-- west/south/east/north: the lon/lat box (WGS 84) that holds the whole grid, for the map.
-- levels: zlib (RFC 1950) of rows·cols bytes, row-major, one per cell: −dBm rounded (1..255),
-- 0 where there is no signal (below the technology's floor). At 100 m the province grid is
-- 1340 × 711 cells: 0.95 MB raw, 150–290 kB a row compressed (levels change smoothly).
-- Stored EXTERNAL: it is compressed already, TOAST need not try again.

CREATE TABLE coverage_rasters (
    operator    text PRIMARY KEY
                CHECK (operator IN ('any', 'viettel', 'mobifone', 'vinaphone', 'vietnamobile')),
    crs         text NOT NULL,
    x0_m        double precision NOT NULL,
    y0_m        double precision NOT NULL,
    res_m       double precision NOT NULL CHECK (res_m > 0),
    rows        integer NOT NULL CHECK (rows > 0),
    cols        integer NOT NULL CHECK (cols > 0),
    west        double precision NOT NULL,
    south       double precision NOT NULL,
    east        double precision NOT NULL,
    north       double precision NOT NULL,
    levels      bytea NOT NULL,
    computed_at timestamptz NOT NULL
);
ALTER TABLE coverage_rasters ALTER COLUMN levels SET STORAGE EXTERNAL;

-- The coverage service writes it; the dashboard reads it. As in 0014, where the roles of 0013
-- are missing there is nothing to grant to, and this migration still applies.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_coverage') THEN
        GRANT SELECT, INSERT, UPDATE ON coverage_rasters TO ioc_coverage;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT SELECT ON coverage_rasters TO ioc_dashboard;
    END IF;
END $$;
