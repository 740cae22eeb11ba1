-- The PostgreSQL database that fleetwatch server replicas share (docs/scale-out.md).
-- Run once as a superuser: psql -v password="'...'" -f postgresql-example.sql
-- The replicas create and migrate the schema themselves; they need only to own the database.

CREATE ROLE fleetwatch LOGIN PASSWORD :password;
CREATE DATABASE fleetwatch OWNER fleetwatch ENCODING 'UTF8' TEMPLATE template0;

-- Settings worth checking (postgresql.conf, then reload or restart):
--   max_connections       >= one per replica, plus your own tools
--   password_encryption   = scram-sha-256   (and a matching hostssl line in pg_hba.conf:
--                                            hostssl fleetwatch fleetwatch 10.0.0.0/8 scram-sha-256)
--   ssl                   = on               (then add ?sslmode=verify-full to the URL)
--   idle_in_transaction_session_timeout = 60s (a replica's transactions last milliseconds)
-- Through PgBouncer, use pool_mode = session (the server keeps prepared statements and takes an
-- advisory lock per session); transaction pooling breaks them.

-- Who holds which host, and which replicas are live (lease time 10 s):
--   SELECT i.name, i.lock_owner, to_timestamp(i.lock_expires_at / 1e6) AS until
--     FROM instances i ORDER BY i.lock_owner, i.name;
--   SELECT id, version, to_timestamp(heartbeat_at / 1e6) AS heartbeat FROM replicas
--     WHERE heartbeat_at > (extract(epoch FROM now()) * 1e6)::bigint - 10000000;
