-- Audit trail: one row per request that reached the FHIR API or the
-- document API, allowed or denied, successful or failed. Partitioned by
-- month (partitions made ahead by eds_audit_partitions); rows are never
-- updated or deleted (a trigger refuses it, whoever asks); retention drops
-- whole old partitions (eds_audit_retention).
CREATE TABLE audit_event (
  ts                 timestamptz NOT NULL,
  request_id         text NOT NULL,
  interaction        text NOT NULL,   -- read, vread, search-type, create, ..., document, metrics
  method             text NOT NULL,
  resource_type      text NOT NULL DEFAULT '',
  resource_id        text NOT NULL DEFAULT '',
  version_id         bigint,
  patients           text[] NOT NULL DEFAULT '{}',  -- Patient/id touched (capped)
  caller_subject     text NOT NULL DEFAULT 'anonymous',
  caller_role        text NOT NULL DEFAULT '',
  caller_org         text NOT NULL DEFAULT '',
  caller_region      text NOT NULL DEFAULT '',
  purpose_of_use     text NOT NULL DEFAULT '',
  client_app         text NOT NULL DEFAULT '',
  status             integer NOT NULL,
  outcome_code       text NOT NULL DEFAULT '',  -- OperationOutcome issue code of a failure
  latency_ms         double precision NOT NULL,
  bytes_in           bigint NOT NULL,
  bytes_out          bigint NOT NULL,
  resources_returned integer NOT NULL DEFAULT 0,
  query              text NOT NULL DEFAULT ''
) PARTITION BY RANGE (ts);

-- BRIN: cheap to keep up with every request (a btree or GIN index here
-- costs the read path more than the audit itself); rows arrive in time order.
CREATE INDEX audit_event_ts ON audit_event USING brin (ts);

-- Partitions for the month of `from_ts` and the `months_ahead` after it.
CREATE FUNCTION eds_audit_partitions(months_ahead integer, from_ts timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  m date;
  name text;
BEGIN
  FOR i IN 0..months_ahead LOOP
    m := (date_trunc('month', from_ts) + make_interval(months => i))::date;
    name := 'audit_event_' || to_char(m, 'YYYY_MM');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF audit_event FOR VALUES FROM (%L) TO (%L)',
                     name, m, (m + interval '1 month')::date);
    END IF;
  END LOOP;
END $$;

-- Drops the partitions of months wholly older than `keep_months` months.
CREATE FUNCTION eds_audit_retention(keep_months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  p record;
  dropped integer := 0;
  cutoff date := (date_trunc('month', now()) - make_interval(months => keep_months))::date;
BEGIN
  FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'audit_event'::regclass AND c.relname ~ '^audit_event_[0-9]{4}_[0-9]{2}$' LOOP
    IF to_date(substr(p.relname, 13), 'YYYY_MM') < cutoff THEN
      EXECUTE format('DROP TABLE %I', p.relname);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END $$;

CREATE FUNCTION eds_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION eds_audit_append_only();

SELECT eds_audit_partitions(3, now() - interval '1 month');

-- Views for analysts (docs/monitoring.md).
CREATE SCHEMA monitoring;

CREATE VIEW monitoring.usage_daily AS
SELECT date_trunc('day', ts)::date AS day, caller_region AS region, caller_role AS role, purpose_of_use,
       interaction, resource_type, count(*) AS requests,
       count(*) FILTER (WHERE status >= 400) AS failed,
       count(*) FILTER (WHERE status IN (401, 403)) AS denied,
       sum(resources_returned) AS resources_returned
FROM audit_event GROUP BY 1, 2, 3, 4, 5, 6;

CREATE VIEW monitoring.latency_daily AS
SELECT date_trunc('day', ts)::date AS day, interaction, count(*) AS requests,
       round(count(*) FILTER (WHERE status >= 500) * 100.0 / count(*), 3) AS server_error_pct,
       round(count(*) FILTER (WHERE status >= 400 AND status < 500) * 100.0 / count(*), 3) AS client_error_pct,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
FROM audit_event GROUP BY 1, 2;

CREATE VIEW monitoring.patients_accessed_daily AS
SELECT date_trunc('day', ts)::date AS day, count(DISTINCT p) AS distinct_patients, count(*) AS accesses
FROM audit_event, unnest(patients) AS p
WHERE method IN ('GET', 'HEAD') OR interaction IN ('search-type', 'search-system')
GROUP BY 1;

CREATE VIEW monitoring.feeding_daily AS
SELECT date_trunc('day', ts)::date AS day, caller_region AS region, caller_org AS organisation, resource_type,
       count(*) FILTER (WHERE interaction = 'create' AND status < 300) AS created,
       count(*) FILTER (WHERE interaction IN ('update', 'patch') AND status < 300) AS updated,
       count(*) FILTER (WHERE interaction IN ('transaction', 'document') AND status < 300) AS bundles,
       count(*) FILTER (WHERE method <> 'GET' AND status IN (400, 422)) AS rejected
FROM audit_event WHERE method <> 'GET' GROUP BY 1, 2, 3, 4;

CREATE VIEW monitoring.documents_daily AS
SELECT date_trunc('day', published_at)::date AS day, rde, rda, priority, count(*) AS documents,
       sum(cardinality(resources)) AS resources
FROM fse_document GROUP BY 1, 2, 3, 4;
