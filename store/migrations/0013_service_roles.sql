-- Least privilege (issue 16): one NOLOGIN group role per service, each granted only what its
-- service's store modules do. `ioc roles login SERVICE` makes a login role a member of exactly
-- one of them and gives that login CONNECT to this database alone. The same on TimescaleDB and
-- plain PostgreSQL (grants on a hypertable reach its chunks; a continuous aggregate is read
-- through its view, which runs with the owner's rights).
--
-- The dashboard reads no password hash, no session token hash, no failed-login record: its
-- writes go through the SECURITY DEFINER functions below, each of which checks the session and
-- its user's role itself. Its password check runs here too (pgcrypto's bcrypt), so a hash never
-- leaves the database and a session cannot be minted without the password. The embedded
-- PostgreSQL of `ioc up` has no pgcrypto: there the login function is not made, and the
-- dashboard runs as the owner (whose login path checks the password in Python, store/users.py).

-- Roles are the server's: another database of the same server may have made them already.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['ioc_ingest', 'ioc_processing', 'ioc_coverage', 'ioc_alerts',
                                'ioc_dashboard'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END $$;

-- Confined to this database: nobody connects by default, and the group roles are shared by
-- every IOC database of the server, so CONNECT goes to each login role (`ioc roles login`),
-- never to a group role (0008 had granted it to ioc_dashboard).
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM ioc_dashboard', current_database());
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO ioc_ingest, ioc_processing, ioc_coverage, ioc_alerts, ioc_dashboard;

-- The dashboard's old "select everything, now and later" (0008, 0012) goes: explicit grants only.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM ioc_dashboard;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ioc_dashboard;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ioc_dashboard;

-- 0008's row-level security narrowed the dashboard's direct UPDATE of alerts; it has no write
-- grant left (the functions below check instead), so the policies go with it.
DROP POLICY dashboard_acknowledges_only ON alerts;
DROP POLICY alerts_by_grants ON alerts;
ALTER TABLE alerts DISABLE ROW LEVEL SECURITY;
DROP POLICY dashboard_records_acknowledgements ON alert_transitions;
DROP POLICY alert_transitions_by_grants ON alert_transitions;
ALTER TABLE alert_transitions DISABLE ROW LEVEL SECURITY;

-- Places are loaded by `ioc scenario load` (the owner); every service reads them.
GRANT SELECT ON districts, communes, villages, map_features
    TO ioc_ingest, ioc_processing, ioc_coverage, ioc_alerts, ioc_dashboard;

-- A status change fills the alert engine's inbox through a trigger that runs with the rights of
-- whoever inserted the status event: the ingester and liveness.
GRANT INSERT ON alert_inbox TO ioc_ingest, ioc_processing;
GRANT USAGE ON SEQUENCE alert_inbox_inbox_id_seq TO ioc_ingest, ioc_processing;

-- Ingester (store/writer.py, registry.py): readings, rejects, status, the registry.
GRANT SELECT, INSERT ON telemetry_bts, telemetry_camera, telemetry_broadband, measurements_probe,
    status_events, device_meta_history TO ioc_ingest;
GRANT SELECT, INSERT, DELETE ON rejects TO ioc_ingest;  -- DELETE: prune_rejects() on plain PG
GRANT SELECT, INSERT, UPDATE ON devices, device_flags TO ioc_ingest;

-- Processing, liveness (store/liveness.py): a silent device goes offline and back.
GRANT SELECT, UPDATE ON devices TO ioc_processing;
GRANT SELECT, INSERT ON status_events TO ioc_processing;

-- Coverage service (store/coverage.py): reads the fleet and probes, writes coverage.
GRANT SELECT ON devices, device_flags, measurements_probe TO ioc_coverage;
GRANT SELECT, INSERT, UPDATE ON coverage_places TO ioc_coverage;
GRANT SELECT, INSERT ON coverage_events, coverage_history TO ioc_coverage;
GRANT SELECT, INSERT, DELETE ON coverage_rejections, critical_towers TO ioc_coverage;
GRANT USAGE ON SEQUENCE coverage_events_id_seq TO ioc_coverage;

-- Alert engine and delivery (store/alert_engine.py, alerts.py, alert_outbox.py).
GRANT SELECT ON devices, device_flags, status_events, coverage_events, coverage_places,
    telemetry_bts, telemetry_camera, telemetry_broadband TO ioc_alerts;
GRANT SELECT, INSERT, UPDATE ON alerts, alert_transitions, alert_outbox, alert_cursors
    TO ioc_alerts;
GRANT SELECT ON alert_silences TO ioc_alerts;
GRANT SELECT, UPDATE, DELETE ON alert_inbox TO ioc_alerts;  -- UPDATE: FOR UPDATE SKIP LOCKED
GRANT USAGE ON SEQUENCE alerts_alert_id_seq, alert_transitions_transition_id_seq,
    alert_outbox_outbox_id_seq TO ioc_alerts;

-- Dashboard: reads what its pages show. Of users only what the users page lists, of sessions
-- no token hash, no failed logins (the definer functions below use them).
GRANT SELECT ON devices, device_flags, device_meta_history, status_events, rejects,
    telemetry_bts, telemetry_camera, telemetry_broadband, measurements_probe,
    telemetry_bts_1m, telemetry_bts_1h, telemetry_camera_1m, telemetry_camera_1h,
    telemetry_broadband_1m, telemetry_broadband_1h, measurements_probe_1m, measurements_probe_1h,
    coverage_places, coverage_history, coverage_events, critical_towers, coverage_rejections,
    alerts, alert_transitions, alert_silences, alert_outbox, login_locks, audit_log
    TO ioc_dashboard;
GRANT SELECT (username, display_name, role, disabled, created_at, updated_at) ON users
    TO ioc_dashboard;
-- Sessions without their token hashes: the dashboard's /metrics counts the ones in force.
GRANT SELECT (username, created_at, expires_at, last_seen, idle_timeout) ON user_sessions
    TO ioc_dashboard;

-- ---------------------------------------------------------------------------------------------
-- The dashboard's writes. Every function below runs as the migration's owner with a fixed
-- search_path, is not executable by PUBLIC, and is granted to ioc_dashboard only where named.

-- The SHA-256 of a session token, as store/users.py stores it.
CREATE FUNCTION ioc_token_hash(token text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
    SELECT encode(sha256(convert_to(token, 'UTF8')), 'hex')
$$;

-- The clock of a session check: a caller who may read password hashes (the owner: the CLI, the
-- tests) may pass one; everyone else gets the server's, so a dashboard cannot revive an expired
-- session by claiming an old time.
CREATE FUNCTION ioc_clock(at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT CASE WHEN at IS NOT NULL
                 AND has_column_privilege(session_user, 'public.users', 'password_hash', 'SELECT')
           THEN at ELSE now() END
$$;

-- The user of a live session (not expired, not idle past its limit, user enabled); touches
-- last_seen at most once a minute (a page run every few seconds need not write). No row: none.
CREATE FUNCTION ioc_session_user(token text, at timestamptz DEFAULT NULL)
RETURNS TABLE (username text, display_name text, role text, disabled boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    t timestamptz := ioc_clock(at);
    h text := ioc_token_hash(token);
BEGIN
    UPDATE user_sessions s SET last_seen = greatest(s.last_seen, t)
    WHERE s.token_hash = h AND s.last_seen < t - interval '1 minute'
      AND s.expires_at > t AND (s.idle_timeout IS NULL OR s.last_seen + s.idle_timeout > t);
    RETURN QUERY
    SELECT u.username, u.display_name, u.role, u.disabled
    FROM user_sessions s JOIN users u ON s.username = u.username
    WHERE s.token_hash = h AND s.expires_at > t AND NOT u.disabled
      AND (s.idle_timeout IS NULL OR s.last_seen + s.idle_timeout > t);
END $$;

-- The session's username when its user's role reaches `needed` (the ranks of store/users.py's
-- Role: viewer < operator < admin); raises insufficient_privilege otherwise.
CREATE FUNCTION ioc_require_role(token text, needed text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    ranks CONSTANT text[] := ARRAY['viewer', 'operator', 'admin'];
    who record;
BEGIN
    SELECT * INTO who FROM ioc_session_user(token);
    IF who.username IS NULL THEN
        RAISE EXCEPTION 'not logged in, or the session has expired'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF array_position(ranks, who.role) < array_position(ranks, needed) THEN
        RAISE EXCEPTION 'role % may not do what needs %', who.role, needed
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN who.username;
END $$;

-- After the password was checked (in Python on the owner's path, by ioc_login below on the
-- dashboard's): the one home of the throttling rules (store/throttle.py keeps their settings and
-- the admin's unlock). A lock refuses whatever the password and is not pushed on by refused
-- tries; a failure is counted per account (names that do not exist too) and per address, and
-- locks the one that reached its limit within the window; a success opens a session and starts
-- the account's count afresh. Every outcome is in the audit log.
-- `account_failures` NULL: no throttling (the command line's own checks). `verified` NULL: the
-- stored hash cannot be checked here ("reset_needed", after the lock check, counted as nothing).
CREATE FUNCTION ioc_login_finish(
    name text, verified boolean, address text, at timestamptz, ttl interval, idle interval,
    account_failures integer, address_failures integer, win interval, lockout interval)
RETURNS TABLE (outcome text, token text, expires_at timestamptz, locked_until timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    t timestamptz := ioc_clock(at);
    until timestamptz;
    fresh text;
    n bigint;
BEGIN
    IF account_failures IS NOT NULL THEN
        SELECT max(l.locked_until) INTO until FROM login_locks l WHERE l.locked_until > t
          AND ((l.kind = 'account' AND l.subject = name)
               OR (l.kind = 'address' AND l.subject = address));
        IF until IS NOT NULL THEN
            INSERT INTO audit_log (at, actor, address, event, detail)
            VALUES (t, left(name, 64), address, 'login_failed', 'locked');
            RETURN QUERY SELECT 'locked', NULL::text, NULL::timestamptz, until;
            RETURN;
        END IF;
    END IF;
    IF verified IS NULL THEN
        INSERT INTO audit_log (at, actor, address, event, detail)
        VALUES (t, left(name, 64), address, 'login_failed', 'password needs an admin reset');
        RETURN QUERY SELECT 'reset_needed', NULL::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF NOT verified THEN
        INSERT INTO audit_log (at, actor, address, event) VALUES (t, left(name, 64), address,
                                                                  'login_failed');
        IF account_failures IS NOT NULL THEN
            INSERT INTO login_failures (at, username, address) VALUES (t, name, address);
            SELECT count(*) INTO n FROM login_failures f WHERE f.username = name AND f.at > t - win;
            IF n >= account_failures THEN
                INSERT INTO login_locks (kind, subject, locked_until)
                VALUES ('account', name, t + lockout)
                ON CONFLICT (kind, subject) DO UPDATE SET locked_until = EXCLUDED.locked_until;
                INSERT INTO audit_log (at, actor, address, event, subject)
                VALUES (t, left(name, 64), address, 'locked', 'account ' || name);
            END IF;
            IF address IS NOT NULL THEN
                SELECT count(*) INTO n FROM login_failures f
                WHERE f.address = ioc_login_finish.address AND f.at > t - win;
                IF n >= address_failures THEN
                    INSERT INTO login_locks (kind, subject, locked_until)
                    VALUES ('address', address, t + lockout)
                    ON CONFLICT (kind, subject) DO UPDATE SET locked_until = EXCLUDED.locked_until;
                    INSERT INTO audit_log (at, actor, address, event, subject)
                    VALUES (t, left(name, 64), address, 'locked', 'address ' || address);
                END IF;
            END IF;
        END IF;
        RETURN QUERY SELECT 'failed', NULL::text, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    -- 32 random bytes (two v4 UUIDs: 244 random bits; gen_random_uuid is core since PG 13).
    fresh := translate(encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text,
                                             '-', ''), 'hex'), 'base64'), '+/=', '-_');
    DELETE FROM user_sessions s WHERE s.expires_at < t;
    INSERT INTO user_sessions (token_hash, username, created_at, expires_at, last_seen, idle_timeout)
    VALUES (ioc_token_hash(fresh), name, t, t + ttl, t, idle);
    DELETE FROM login_failures f WHERE f.username = name;
    INSERT INTO audit_log (at, actor, address, event) VALUES (t, name, address, 'login_ok');
    RETURN QUERY SELECT 'ok', fresh, t + ttl, NULL::timestamptz;
END $$;

CREATE FUNCTION ioc_logout(token text, address text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    who text;
BEGIN
    DELETE FROM user_sessions s WHERE s.token_hash = ioc_token_hash(token)
    RETURNING s.username INTO who;
    IF who IS NOT NULL THEN
        INSERT INTO audit_log (actor, address, event) VALUES (who, address, 'logout');
    END IF;
    RETURN who IS NOT NULL;
END $$;

-- An operator's transition of one alert (acknowledged: from open; resolved: from any unresolved
-- state) with its history row and its audit row; false when the alert is not in a state that
-- allows it. The same snapshot as store/alerts.py's _TRANSITION, which the engine uses.
CREATE FUNCTION ioc_alert_operator_transition(
    event text, id bigint, actor text, comment text, address text, at timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    t timestamptz := coalesce(at, now());
    done bigint;
BEGIN
    IF event NOT IN ('acknowledged', 'resolved') THEN
        RAISE EXCEPTION 'not an operator transition: %', event;
    END IF;
    WITH a AS (
        UPDATE alerts SET last_seq = last_seq + 1, updated_at = t,
            state = event,
            acknowledged_at = CASE WHEN event = 'acknowledged' THEN t ELSE acknowledged_at END,
            acknowledged_by = CASE WHEN event = 'acknowledged' THEN actor ELSE acknowledged_by END,
            ack_comment = CASE WHEN event = 'acknowledged' THEN comment ELSE ack_comment END,
            resolved_at = CASE WHEN event = 'resolved' THEN t ELSE resolved_at END,
            resolved_by = CASE WHEN event = 'resolved' THEN actor ELSE resolved_by END,
            resolve_reason = CASE WHEN event = 'resolved' THEN comment ELSE resolve_reason END,
            flapping = CASE WHEN event = 'resolved' THEN false ELSE flapping END
        WHERE alert_id = id
          AND CASE WHEN event = 'acknowledged' THEN state = 'open' ELSE state <> 'resolved' END
        RETURNING *
    )
    INSERT INTO alert_transitions (alert_id, seq, ts, event, actor, comment, payload)
    SELECT a.alert_id, a.last_seq, t, event, actor, comment,
           to_jsonb(a) - 'last_seq' || jsonb_build_object('event', event, 'seq', a.last_seq,
               'ts', t, 'actor', actor, 'comment', comment)
    FROM a RETURNING transition_id INTO done;
    IF done IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO audit_log (at, actor, address, event, subject, detail)
    VALUES (t, left(actor, 64), address,
            CASE WHEN event = 'acknowledged' THEN 'acknowledge' ELSE 'resolve' END,
            'alert ' || id, comment);
    RETURN true;
END $$;

-- A silence of `rule` on `subject` with its audit row; returns its id.
CREATE FUNCTION ioc_alert_silence(
    rule text, subject text, starts timestamptz, ends timestamptz, actor text, comment text,
    address text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    id bigint;
BEGIN
    INSERT INTO alert_silences (rule, subject, starts_at, ends_at, created_by, comment)
    VALUES (rule, subject, starts, ends, actor, comment) RETURNING silence_id INTO id;
    INSERT INTO audit_log (actor, address, event, subject, detail)
    VALUES (left(actor, 64), address, 'silence', 'silence ' || id,
            format('rule %s subject %s until %s', rule, subject, ends));
    RETURN id;
END $$;

-- The dashboard's entry points: the session token names the actor, its role must allow it.
CREATE FUNCTION ioc_acknowledge(token text, id bigint, comment text, address text)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT ioc_alert_operator_transition('acknowledged', id,
                                         ioc_require_role(token, 'operator'), comment, address,
                                         NULL)
$$;

CREATE FUNCTION ioc_silence(
    token text, rule text, subject text, starts timestamptz, ends timestamptz, comment text,
    address text)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT ioc_alert_silence(rule, subject, starts, ends, ioc_require_role(token, 'operator'),
                             comment, address)
$$;

-- An admin's new user from the users page: the hash is made by the caller (bcrypt; the password
-- rules are store/users.py's), the session must be an admin's; false when the name is taken.
CREATE FUNCTION ioc_add_user(
    token text, username text, display_name text, role text, password_hash text, address text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    admin text := ioc_require_role(token, 'admin');
    added text;
BEGIN
    IF password_hash NOT LIKE '$2a$%' THEN
        RAISE EXCEPTION 'not a bcrypt hash' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO users AS u (username, display_name, role, password_hash)
    VALUES ($2, $3, $4, $5) ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING
    RETURNING u.username INTO added;
    IF added IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO audit_log (actor, address, event, subject, detail)
    VALUES (admin, $6, 'user_added', added, 'role ' || $4);
    RETURN true;
END $$;

-- The floor of the login limits, written by the owner (`ioc roles login dashboard`, from the
-- settings): ioc_login takes the dashboard's own limits but only where they are stricter, so a
-- compromised dashboard cannot switch throttling off by passing lax ones (or none).
CREATE TABLE login_limits (
    only_row          boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    account_failures  integer NOT NULL CHECK (account_failures > 0),
    address_failures  integer NOT NULL CHECK (address_failures > 0),
    win               interval NOT NULL,
    lockout           interval NOT NULL
);

-- The password check for the dashboard: bcrypt through pgcrypto, where the server has it.
-- pgcrypto reads the $2a$ prefix (store/users.py writes it); an argon2 hash of an older version
-- cannot be checked here: "reset_needed" until an admin resets it (or the user logs in once on
-- the owner's path, which rehashes it). A missing or disabled user costs one bcrypt too, so
-- the time a refusal takes does not tell who exists.
DO $outer$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto') THEN
        RETURN;
    END IF;
    CREATE EXTENSION IF NOT EXISTS pgcrypto;
    EXECUTE $fn$
CREATE FUNCTION ioc_login(
    username text, password text, address text, ttl interval, idle interval,
    account_failures integer, address_failures integer, win interval, lockout interval)
RETURNS TABLE (outcome text, token text, expires_at timestamptz, locked_until timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    name text := lower(btrim(username));
    stored text;
    dummy CONSTANT text := '$2a$12$orfI.cz9NIT1TRyisvQXAOAZcVyIBTksHtf1p3/fprURIEs329OOe';
    ok boolean;
    lim record;
BEGIN
    SELECT l.* INTO lim FROM login_limits l;
    IF FOUND THEN  -- the owner's floor: the caller may only be stricter
        account_failures := least(coalesce(account_failures, lim.account_failures),
                                  lim.account_failures);
        address_failures := least(coalesce(address_failures, lim.address_failures),
                                  lim.address_failures);
        win := greatest(coalesce(win, lim.win), lim.win);
        lockout := greatest(coalesce(lockout, lim.lockout), lim.lockout);
    END IF;
    SELECT u.password_hash INTO stored FROM users u WHERE u.username = name AND NOT u.disabled;
    IF stored LIKE '$2a$%' THEN
        ok := crypt(password, stored) = stored;
    ELSE  -- no such user, or a hash bcrypt cannot check (NULL: "reset_needed")
        ok := CASE WHEN stored IS NULL THEN false END;
        PERFORM crypt(password, dummy);
    END IF;
    RETURN QUERY SELECT * FROM ioc_login_finish(name, ok, address, NULL, ttl, idle,
        account_failures, address_failures, win, lockout);
END $$
$fn$;
    EXECUTE 'REVOKE ALL ON FUNCTION ioc_login(text, text, text, interval, interval, integer,'
            ' integer, interval, interval) FROM PUBLIC';
    EXECUTE 'GRANT EXECUTE ON FUNCTION ioc_login(text, text, text, interval, interval, integer,'
            ' integer, interval, interval) TO ioc_dashboard';
END $outer$;

REVOKE ALL ON FUNCTION ioc_clock(timestamptz), ioc_session_user(text, timestamptz),
    ioc_require_role(text, text),
    ioc_login_finish(text, boolean, text, timestamptz, interval, interval, integer, integer,
                     interval, interval),
    ioc_logout(text, text),
    ioc_alert_operator_transition(text, bigint, text, text, text, timestamptz),
    ioc_alert_silence(text, text, timestamptz, timestamptz, text, text, text),
    ioc_acknowledge(text, bigint, text, text),
    ioc_silence(text, text, text, timestamptz, timestamptz, text, text),
    ioc_add_user(text, text, text, text, text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ioc_session_user(text, timestamptz), ioc_logout(text, text),
    ioc_acknowledge(text, bigint, text, text),
    ioc_silence(text, text, text, timestamptz, timestamptz, text, text),
    ioc_add_user(text, text, text, text, text, text)
TO ioc_dashboard;
