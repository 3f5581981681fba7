-- Dashboard users and their login sessions (the same on TimescaleDB and plain PostgreSQL).

CREATE TABLE users (
    username      text PRIMARY KEY CHECK (username ~ '^[a-z0-9_.-]{2,64}$'),
    display_name  text NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,             -- argon2id, encoded with its parameters
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Only a hash of the token is stored: a copy of this table does not log anyone in.
CREATE TABLE user_sessions (
    token_hash  text PRIMARY KEY,
    username    text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);
CREATE INDEX user_sessions_expiry ON user_sessions (expires_at);
