-- A hardened dashboard login (issue 16): failed logins counted per account and per client
-- address, locks that hold across dashboard processes and restarts, an idle timeout stored with
-- each session, and an audit log of user actions. Plain tables: the same on TimescaleDB and
-- plain PostgreSQL.

-- One row per failed login. `username` is what was typed (no foreign key): attempts on names
-- that do not exist count and lock like real ones, so a lock tells nothing about who exists.
CREATE TABLE login_failures (
    at        timestamptz NOT NULL,
    username  text NOT NULL,
    address   text                         -- NULL: the address was unknown (localhost)
);
CREATE INDEX login_failures_username ON login_failures (username, at);
CREATE INDEX login_failures_address ON login_failures (address, at) WHERE address IS NOT NULL;

-- A lock in force until `locked_until`, on an account or on a client address.
CREATE TABLE login_locks (
    kind          text NOT NULL CHECK (kind IN ('account', 'address')),
    subject       text NOT NULL,
    locked_until  timestamptz NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- The idle limit is fixed at login and kept with the session, so every check of the token
-- (a page run, an action's role check) enforces it without being handed the setting.
ALTER TABLE user_sessions ADD COLUMN idle_timeout interval;

-- Who did what, when and from where. Append-only for the dashboard's role.
CREATE TABLE audit_log (
    audit_id  bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,               -- a username, the name typed at login, or cli:<os user>
    address   text,
    event     text NOT NULL CHECK (event IN ('login_ok', 'login_failed', 'locked', 'unlock',
                  'logout', 'acknowledge', 'resolve', 'silence', 'user_added', 'user_changed',
                  'user_removed')),
    subject   text,                        -- the alert, user, account or address acted on
    detail    text
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC);

-- The dashboard logs people in and out and records what they do; it may not lift a lock
-- (that is `ioc users unlock`, the owner's role) nor edit the audit log.
GRANT INSERT, DELETE ON login_failures TO ioc_dashboard;
GRANT INSERT, UPDATE ON login_locks TO ioc_dashboard;
GRANT INSERT ON audit_log TO ioc_dashboard;
GRANT USAGE ON SEQUENCE audit_log_audit_id_seq TO ioc_dashboard;
