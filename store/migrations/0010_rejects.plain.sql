-- Rejects keep what identifies a payload (its first 1 KiB, its size and SHA-256; the writer
-- cuts it, store/writer.py) and live 30 days: a device's rejected bytes are bounded in size
-- and in time. The common part is the same in 0010_rejects.timescale.sql.
ALTER TABLE rejects ADD COLUMN payload_size integer, ADD COLUMN payload_sha256 bytea;
UPDATE rejects SET payload_size = length(payload), payload_sha256 = sha256(payload);
ALTER TABLE rejects ALTER COLUMN payload_size SET NOT NULL,
                    ALTER COLUMN payload_sha256 SET NOT NULL;

-- Plain PostgreSQL has no retention policy: the ingester calls this (hourly), in slices so
-- that a large backlog never holds a long lock.
CREATE INDEX rejects_received_at ON rejects USING brin (received_at);
CREATE FUNCTION prune_rejects() RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM rejects WHERE ctid IN (
            SELECT ctid FROM rejects WHERE received_at < now() - INTERVAL '30 days' LIMIT 50000)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
