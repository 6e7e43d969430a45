-- Audit rows kept in batches. The rows the audit sink writes (reads,
-- searches, refused and failed requests: everything not committed with a
-- write) arrive by the thousand per second; stored one table row each, they
-- cost PostgreSQL more than the reads they record. They are now stored one
-- table row per batch (`audit_event_batch`: one row per write of the sink,
-- every few milliseconds), the batch's audit rows held as an array of
-- `audit_record` values, compressed. The rows a write commits with its
-- changes stay one table row each (`audit_event_row`, the former
-- `audit_event` table).
--
-- `audit_event` is now a view of both, one row per audited request with the
-- same columns as before: analysts' queries and the monitoring views read
-- it unchanged. `audit_event_scan` adds the batch's bounds (its first and
-- last instant and all its patients), so a query that knows them skips whole
-- batches before unpacking them (the AuditEvent search does).

ALTER TABLE audit_event RENAME TO audit_event_row;
ALTER INDEX audit_event_ts RENAME TO audit_event_row_ts;
ALTER INDEX audit_event_patients RENAME TO audit_event_row_patients;
-- The partitions, and their indexes, take the new name too.
DO $$
DECLARE
  p record;
  x record;
BEGIN
  FOR p IN SELECT c.oid, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'audit_event_row'::regclass AND c.relname ~ '^audit_event_[0-9]{4}_[0-9]{2}$' LOOP
    FOR x IN SELECT ic.relname FROM pg_index ix JOIN pg_class ic ON ic.oid = ix.indexrelid
             WHERE ix.indrelid = p.oid AND starts_with(ic.relname, p.relname || '_') LOOP
      EXECUTE format('ALTER INDEX %I RENAME TO %I', x.relname,
                     'audit_event_row_' || substr(x.relname, 13));
    END LOOP;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', p.relname, 'audit_event_row_' || substr(p.relname, 13));
  END LOOP;
END $$;

-- One audit row: the columns of audit_event_row, in its order.
CREATE TYPE audit_record AS (
  ts                 timestamptz,
  request_id         text,
  interaction        text,
  method             text,
  resource_type      text,
  resource_id        text,
  version_id         bigint,
  patients           text[],
  caller_subject     text,
  caller_role        text,
  caller_org         text,
  caller_region      text,
  purpose_of_use     text,
  client_app         text,
  status             integer,
  outcome_code       text,
  latency_ms         double precision,
  bytes_in           bigint,
  bytes_out          bigint,
  resources_returned integer,
  query              text,
  event_id           text,
  action             text,
  entities           text[],
  in_transaction     boolean,
  service            text
);

CREATE TABLE audit_event_batch (
  first_ts  timestamptz NOT NULL,           -- the earliest ts of its rows
  last_ts   timestamptz NOT NULL,           -- the latest
  row_count integer NOT NULL,
  patients  text[] COLLATE "C" NOT NULL DEFAULT '{}',  -- every Patient/id its rows touched, sorted
  records   text NOT NULL                   -- audit_record[] literal, one element per row
) PARTITION BY RANGE (first_ts);

CREATE INDEX audit_event_batch_ts ON audit_event_batch USING brin (first_ts, last_ts);
-- GIN sorts each array's keys: with byte order (COLLATE "C") and keys the
-- server already sorted, that costs little.
CREATE INDEX audit_event_batch_patients ON audit_event_batch USING gin (patients);

CREATE TRIGGER audit_event_batch_append_only BEFORE UPDATE OR DELETE ON audit_event_batch
  FOR EACH ROW EXECUTE FUNCTION eds_refuse_change();

CREATE VIEW audit_event_scan AS
SELECT r.ts, r.request_id, r.interaction, r.method, r.resource_type, r.resource_id, r.version_id, r.patients,
       r.caller_subject, r.caller_role, r.caller_org, r.caller_region, r.purpose_of_use, r.client_app, r.status,
       r.outcome_code, r.latency_ms, r.bytes_in, r.bytes_out, r.resources_returned, r.query, r.event_id, r.action,
       r.entities, r.in_transaction, r.service,
       r.ts AS batch_first_ts, r.ts AS batch_last_ts, r.patients COLLATE "C" AS batch_patients
FROM audit_event_row r
UNION ALL
SELECT x.ts, x.request_id, x.interaction, x.method, x.resource_type, x.resource_id, x.version_id,
       coalesce(x.patients, '{}'), x.caller_subject, x.caller_role, x.caller_org, x.caller_region, x.purpose_of_use,
       x.client_app, x.status, x.outcome_code, x.latency_ms, x.bytes_in, x.bytes_out, x.resources_returned, x.query,
       x.event_id, x.action, coalesce(x.entities, '{}'), x.in_transaction, x.service,
       b.first_ts, b.last_ts, b.patients
FROM audit_event_batch b CROSS JOIN LATERAL unnest(b.records::audit_record[]) AS x;

CREATE VIEW audit_event AS
SELECT ts, request_id, interaction, method, resource_type, resource_id, version_id, patients, caller_subject,
       caller_role, caller_org, caller_region, purpose_of_use, client_app, status, outcome_code, latency_ms,
       bytes_in, bytes_out, resources_returned, query, event_id, action, entities, in_transaction, service
FROM audit_event_scan;

-- The monitoring views read the renamed table: point them at the view.
DO $$
DECLARE
  v record;
BEGIN
  FOR v IN SELECT DISTINCT c.oid::regclass AS name, pg_get_viewdef(c.oid) AS def
           FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class c ON c.oid = w.ev_class
           WHERE d.refobjid = 'audit_event_row'::regclass AND c.relkind = 'v'
             AND c.relname <> 'audit_event_scan' LOOP
    EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v.name,
                   regexp_replace(v.def, '\maudit_event_row\M', 'audit_event', 'g'));
  END LOOP;
END $$;

-- Partitions of both tables for the month of `from_ts` and the
-- `months_ahead` after it. A batch's records and patients are compressed
-- with lz4 where the server has it (pglz otherwise).
CREATE OR REPLACE FUNCTION eds_audit_partitions(months_ahead integer, from_ts timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  m date;
  t text;
  name text;
BEGIN
  FOR i IN 0..months_ahead LOOP
    m := (date_trunc('month', from_ts) + make_interval(months => i))::date;
    FOREACH t IN ARRAY ARRAY['audit_event_row', 'audit_event_batch'] LOOP
      name := t || '_' || to_char(m, 'YYYY_MM');
      IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       name, t, m, (m + interval '1 month')::date);
        IF t = 'audit_event_batch' THEN
          BEGIN
            EXECUTE format('ALTER TABLE %I ALTER COLUMN records SET COMPRESSION lz4,'
                           ' ALTER COLUMN patients SET COMPRESSION lz4', name);
          EXCEPTION WHEN OTHERS THEN
            NULL;  -- built without lz4: the default compression
          END;
        END IF;
      END IF;
    END LOOP;
  END LOOP;
END $$;

-- Drops the partitions (of both tables) of months wholly older than
-- `keep_months` months; returns how many tables it dropped.
CREATE OR REPLACE FUNCTION eds_audit_retention(keep_months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  p record;
  dropped integer := 0;
  cutoff date := (date_trunc('month', now()) - make_interval(months => keep_months))::date;
BEGIN
  FOR p IN SELECT c.relname, right(c.relname, 7) AS month FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent IN ('audit_event_row'::regclass, 'audit_event_batch'::regclass)
             AND c.relname ~ '^audit_event_(row|batch)_[0-9]{4}_[0-9]{2}$' LOOP
    IF to_date(p.month, 'YYYY_MM') < cutoff THEN
      EXECUTE format('DROP TABLE %I', p.relname);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END $$;

SELECT eds_audit_partitions(3, now() - interval '1 month');
