-- Each device's newest reading, one row per device (issue 17), kept by the ingest writer
-- (store/writer.py upserts it with every batch; a late reading never replaces a newer one).
-- The map's latest-reading queries read these instead of searching the readings hypertables:
-- at 60-second reporting the search costs a descent into the newest chunk of each device's
-- index per device per refresh, and grows with the chunks a window spans; this is a join of
-- 3,108 small rows. Columns as the reading tables (LIKE), so the same health rules apply.
-- A row is rewritten in place every minute and only its key is indexed: the free space a
-- lower fillfactor leaves lets those updates stay heap-only (HOT). The same on plain PostgreSQL
-- and TimescaleDB: these are ordinary tables.
CREATE TABLE telemetry_bts_latest (LIKE telemetry_bts INCLUDING DEFAULTS, PRIMARY KEY (device_id))
    WITH (fillfactor = 70);
CREATE TABLE telemetry_camera_latest (LIKE telemetry_camera INCLUDING DEFAULTS,
                                      PRIMARY KEY (device_id)) WITH (fillfactor = 70);
CREATE TABLE telemetry_broadband_latest (LIKE telemetry_broadband INCLUDING DEFAULTS,
                                         PRIMARY KEY (device_id)) WITH (fillfactor = 70);
CREATE TABLE measurements_probe_latest (LIKE measurements_probe INCLUDING DEFAULTS,
                                        PRIMARY KEY (device_id)) WITH (fillfactor = 70);

-- A database upgraded in service starts from what its readings of the last day say.
INSERT INTO telemetry_bts_latest SELECT DISTINCT ON (device_id) * FROM telemetry_bts
    WHERE ts > now() - interval '1 day' ORDER BY device_id, ts DESC, seq DESC;
INSERT INTO telemetry_camera_latest SELECT DISTINCT ON (device_id) * FROM telemetry_camera
    WHERE ts > now() - interval '1 day' ORDER BY device_id, ts DESC, seq DESC;
INSERT INTO telemetry_broadband_latest SELECT DISTINCT ON (device_id) * FROM telemetry_broadband
    WHERE ts > now() - interval '1 day' ORDER BY device_id, ts DESC, seq DESC;
INSERT INTO measurements_probe_latest SELECT DISTINCT ON (device_id) * FROM measurements_probe
    WHERE ts > now() - interval '1 day' ORDER BY device_id, ts DESC, seq DESC;

-- The ingester keeps them; the dashboard's map reads them (0013's least privilege).
GRANT SELECT, INSERT, UPDATE ON telemetry_bts_latest, telemetry_camera_latest,
    telemetry_broadband_latest, measurements_probe_latest TO ioc_ingest;
GRANT SELECT ON telemetry_bts_latest, telemetry_camera_latest, telemetry_broadband_latest,
    measurements_probe_latest TO ioc_dashboard;

-- Readings stored per minute of arrival and writer connection, and the sum of their lag
-- (received_at - ts), counted by the ingest writer with each batch: the ingest page's series
-- and the map's ingest health read a few rows instead of counting the readings of the last
-- half hour (93,000 at 60-second reporting). Keyed by writer, so that concurrent ingesters
-- never wait on one row; the writer prunes what is older than two days.
CREATE TABLE ingest_minutes (
    minute timestamptz NOT NULL,
    writer integer NOT NULL,
    messages bigint NOT NULL,
    lag_sum_s double precision NOT NULL,
    PRIMARY KEY (minute, writer)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_minutes TO ioc_ingest;
GRANT SELECT ON ingest_minutes TO ioc_dashboard;
