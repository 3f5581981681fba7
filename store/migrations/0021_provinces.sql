-- Several provinces in one deployment (issue 19, part 2). GSO district and commune codes are
-- national, so a place, device, alert or coverage row keeps its district_code and reaches its
-- province through districts.province_code: one join, no second copy of the fact to drift.
-- A dashboard user is scoped to provinces (users.provinces; NULL: the whole country), and the
-- dashboard's writes below refuse what lies outside the session's provinces. The same on
-- TimescaleDB and plain PostgreSQL.

CREATE TABLE provinces (
    code      integer PRIMARY KEY,            -- GSO code (52: Bình Định)
    name      text NOT NULL,                  -- "Tỉnh Bình Định"
    lat       double precision NOT NULL,      -- where a national map puts its figures
    lon       double precision NOT NULL,
    synthetic boolean NOT NULL                -- a generated scenario (all but Bình Định)
);

ALTER TABLE districts ADD COLUMN province_code integer REFERENCES provinces (code);
CREATE INDEX districts_province ON districts (province_code);
ALTER TABLE map_features ADD COLUMN province_code integer REFERENCES provinces (code);

-- A database loaded before this migration holds Bình Định alone (its districts are GSO 540-555);
-- anything else is filled by the next `ioc scenario load`.
INSERT INTO provinces (code, name, lat, lon, synthetic)
SELECT 52, 'Tỉnh Bình Định', 14.16653, 108.90268, false
WHERE EXISTS (SELECT 1 FROM districts WHERE code BETWEEN 540 AND 555);
UPDATE districts SET province_code = 52 WHERE code BETWEEN 540 AND 555;
UPDATE map_features SET province_code = 52 WHERE EXISTS (SELECT 1 FROM provinces WHERE code = 52);

ALTER TABLE users ADD COLUMN provinces integer[]
    CHECK (provinces IS NULL OR (cardinality(provinces) > 0 AND array_position(provinces, NULL) IS NULL));

-- Whether district ``district`` lies in ``provinces`` (NULL: every province, the national role).
-- A row without a district (a device never placed) is the national role's alone.
CREATE FUNCTION ioc_in_provinces(provinces integer[], district integer) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT provinces IS NULL
        OR EXISTS (SELECT 1 FROM districts d WHERE d.code = district
                                               AND d.province_code = ANY (provinces))
$$;

-- The session's user now says its provinces. The return type changes, so the function is made
-- anew (ioc_require_role reads it by name at run time) and granted again.
DROP FUNCTION ioc_session_user(text, timestamptz);
CREATE FUNCTION ioc_session_user(token text, at timestamptz DEFAULT NULL)
RETURNS TABLE (username text, display_name text, role text, disabled boolean, provinces integer[])
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
    SELECT u.username, u.display_name, u.role, u.disabled, u.provinces
    FROM user_sessions s JOIN users u ON s.username = u.username
    WHERE s.token_hash = h AND s.expires_at > t AND NOT u.disabled
      AND (s.idle_timeout IS NULL OR s.last_seen + s.idle_timeout > t);
END $$;

-- Raises insufficient_privilege unless the session's provinces hold ``district``.
CREATE FUNCTION ioc_require_district(token text, district integer, what text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    scope integer[];
BEGIN
    SELECT s.provinces INTO scope FROM ioc_session_user(token) s;
    IF NOT ioc_in_provinces(scope, district) THEN
        RAISE EXCEPTION '% is outside the provinces of this account', what
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

-- Acknowledging: the operator's role and the alert's province.
CREATE OR REPLACE FUNCTION ioc_acknowledge(token text, id bigint, comment text, address text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    actor text := ioc_require_role(token, 'operator');
BEGIN
    PERFORM ioc_require_district(token, (SELECT a.district_code FROM alerts a
                                         WHERE a.alert_id = id), 'alert ' || id);
    RETURN ioc_alert_operator_transition('acknowledged', id, actor, comment, address, NULL);
END $$;

-- Silencing: the subject (a device, a village or a district code) must lie in the session's
-- provinces; a subject the deployment does not know is the national role's alone.
CREATE OR REPLACE FUNCTION ioc_silence(
    token text, rule text, subject text, starts timestamptz, ends timestamptz, comment text,
    address text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    actor text := ioc_require_role(token, 'operator');
BEGIN
    PERFORM ioc_require_district(token, coalesce(
        (SELECT d.district_code FROM devices d WHERE d.device_id = subject),
        (SELECT v.district_code FROM villages v WHERE v.village_id = subject),
        (SELECT x.code FROM districts x WHERE x.code::text = subject)), 'subject ' || subject);
    RETURN ioc_alert_silence(rule, subject, starts, ends, actor, comment, address);
END $$;

-- An admin's new user from the users page: within the admin's own provinces (a provincial
-- admin cannot mint a national account).
DROP FUNCTION ioc_add_user(text, text, text, text, text, text);
CREATE FUNCTION ioc_add_user(
    token text, username text, display_name text, role text, password_hash text, address text,
    provinces integer[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    admin text := ioc_require_role(token, 'admin');
    scope integer[];
    added text;
BEGIN
    SELECT s.provinces INTO scope FROM ioc_session_user(token) s;
    IF scope IS NOT NULL AND (provinces IS NULL OR NOT provinces <@ scope) THEN
        RAISE EXCEPTION 'an admin of provinces % may only add users of those provinces', scope
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF password_hash NOT LIKE '$2a$%' THEN
        RAISE EXCEPTION 'not a bcrypt hash' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO users AS u (username, display_name, role, password_hash, provinces)
    VALUES ($2, $3, $4, $5, $7) ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING
    RETURNING u.username INTO added;
    IF added IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO audit_log (actor, address, event, subject, detail)
    VALUES (admin, $6, 'user_added', added,
            'role ' || $4 || coalesce(', provinces ' || array_to_string($7, ','), ''));
    RETURN true;
END $$;

REVOKE ALL ON FUNCTION ioc_session_user(text, timestamptz),
    ioc_require_district(text, integer, text),
    ioc_add_user(text, text, text, text, text, text, integer[])
FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_dashboard') THEN
        GRANT EXECUTE ON FUNCTION ioc_session_user(text, timestamptz),
            ioc_add_user(text, text, text, text, text, text, integer[]) TO ioc_dashboard;
        GRANT SELECT ON provinces TO ioc_dashboard;
        GRANT SELECT (provinces) ON users TO ioc_dashboard;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_coverage') THEN
        GRANT SELECT ON provinces TO ioc_coverage;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_alerts') THEN
        GRANT SELECT ON provinces TO ioc_alerts;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc_processing') THEN
        GRANT SELECT ON provinces TO ioc_processing;
    END IF;
END $$;
