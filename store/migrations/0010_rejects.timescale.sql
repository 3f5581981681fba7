-- Rejects keep what identifies a payload (its first 1 KiB, its size and SHA-256; the writer
-- cuts it, store/writer.py) and live 30 days: a device's rejected bytes are bounded in size
-- and in time. The common part is the same in 0010_rejects.plain.sql.
ALTER TABLE rejects ADD COLUMN payload_size integer, ADD COLUMN payload_sha256 bytea;
UPDATE rejects SET payload_size = length(payload), payload_sha256 = sha256(payload);
ALTER TABLE rejects ALTER COLUMN payload_size SET NOT NULL,
                    ALTER COLUMN payload_sha256 SET NOT NULL;

SELECT remove_retention_policy('rejects');
SELECT add_retention_policy('rejects', INTERVAL '30 days');
ALTER TABLE rejects SET (timescaledb.compress, timescaledb.compress_segmentby = 'reason',
                         timescaledb.compress_orderby = 'received_at DESC');
SELECT add_compression_policy('rejects', INTERVAL '1 day');

-- The retention policy prunes: nothing for the ingester to do here.
CREATE FUNCTION prune_rejects() RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;
