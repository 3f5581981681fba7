-- The dashboard's database role: it reads everything, and writes only what an operator's alert
-- acknowledgement and the dashboard's own login sessions need. A login role made by
-- `ioc roles dashboard-login` is a member of it. The same on TimescaleDB and plain PostgreSQL.

-- Roles belong to the server, not the database: another database of the same server (or a
-- concurrent upgrade) may have made it already.
DO $$
BEGIN
    CREATE ROLE ioc_dashboard NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ioc_dashboard', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO ioc_dashboard;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ioc_dashboard;
-- Tables, views and continuous aggregates that later migrations create are readable too
-- (default privileges cover objects made by the role that runs the migrations).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ioc_dashboard;

-- Acknowledging: exactly the columns the transition touches, one history row, and through the
-- policies below only open → acknowledged. No INSERT or DELETE on alerts, no silences, no
-- resolutions: those stay with the engine and `ioc alerts` (the owner's role).
GRANT UPDATE (state, acknowledged_at, acknowledged_by, ack_comment, last_seq, updated_at)
    ON alerts TO ioc_dashboard;
GRANT INSERT ON alert_transitions TO ioc_dashboard;
GRANT USAGE ON SEQUENCE alert_transitions_transition_id_seq TO ioc_dashboard;

-- Row-level security narrows the dashboard only: the permissive policy keeps every other
-- role's access as its grants say; the restrictive ones are ANDed for ioc_dashboard alone.
-- (The tables' owner bypasses row-level security anyway.)
ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY alerts_by_grants ON alerts USING (true) WITH CHECK (true);
CREATE POLICY dashboard_acknowledges_only ON alerts AS RESTRICTIVE FOR UPDATE TO ioc_dashboard
    USING (state = 'open') WITH CHECK (state = 'acknowledged');

ALTER TABLE alert_transitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY alert_transitions_by_grants ON alert_transitions USING (true) WITH CHECK (true);
CREATE POLICY dashboard_records_acknowledgements ON alert_transitions AS RESTRICTIVE
    FOR INSERT TO ioc_dashboard WITH CHECK (event = 'acknowledged');

-- Logging in and out: the dashboard's own sessions (it cannot change users or roles).
GRANT INSERT, DELETE, UPDATE (last_seen) ON user_sessions TO ioc_dashboard;
