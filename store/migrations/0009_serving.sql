-- What decides whether a tower serves, pushed to the coverage service as it changes
-- (processing/coverage/serving.py holds the rule). The same on TimescaleDB and plain PostgreSQL.

-- The latest serving flags each device has reported (bts: sectors_up, backhaul_up; broadband:
-- uplink_up), kept by the ingester in the batch's own transaction. A row changes only when a
-- flag does, so ``ts`` is the reading time of the last change: the coverage service dates
-- measurements against it.
CREATE TABLE device_flags (
    device_id   text PRIMARY KEY,
    ts          timestamptz NOT NULL,
    sectors_up  boolean[],
    backhaul_up boolean,
    uplink_up   boolean
);

-- Coverage places: operators whose coverage here rests only on towers never heard from.
ALTER TABLE coverage_places ADD COLUMN unknown text[] NOT NULL DEFAULT '{}';

-- One wake-up channel for the coverage service; the payload says what to re-read ('state' or
-- 'registry'). PostgreSQL folds identical notifications of one transaction into one.
CREATE FUNCTION coverage_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ioc_coverage', TG_ARGV[0]);
    RETURN NULL;
END $$;

-- Row triggers: a hypertable (status_events on TimescaleDB) takes no transition tables, and a
-- statement trigger would fire for every status message, changed or not.
CREATE TRIGGER status_events_wake_coverage AFTER INSERT ON status_events
    FOR EACH ROW EXECUTE FUNCTION coverage_wake('state');
CREATE TRIGGER device_flags_wake_coverage AFTER INSERT OR UPDATE ON device_flags
    FOR EACH ROW EXECUTE FUNCTION coverage_wake('state');
CREATE TRIGGER devices_wake_coverage_insert AFTER INSERT ON devices
    FOR EACH ROW WHEN (NEW.kind IN ('bts', 'broadband'))
    EXECUTE FUNCTION coverage_wake('registry');
CREATE TRIGGER devices_wake_coverage_update AFTER UPDATE OF meta ON devices
    FOR EACH ROW WHEN (NEW.kind IN ('bts', 'broadband') AND OLD.meta IS DISTINCT FROM NEW.meta)
    EXECUTE FUNCTION coverage_wake('registry');
