-- Feeding records of the FSE ingestion API, the region of assistance of
-- each patient, the key of the fiscal-code hashes, and the monitoring views
-- that answer who feeds and who uses the EDS (docs/monitoring.md).

-- Rows of the tables below are never changed after they are written,
-- whoever asks; old data goes by dropping whole monthly partitions.
CREATE FUNCTION eds_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;

-- One row per call of the ingestion API (PUBLISH, REPLACE, UPDATE of the
-- metadata, DELETE), accepted or rejected. An accepted call's row is written
-- in the same transaction as the document; a rejected call's in its own,
-- once the answer is known. Partitioned by month of received_at
-- (eds_feeding_partitions makes the partitions ahead).
CREATE TABLE feeding_record (
  received_at             timestamptz NOT NULL,  -- when the request arrived
  completed_at            timestamptz NOT NULL,  -- when its outcome was known
  request_id              text NOT NULL,         -- X-Request-Id, traceID of the answer
  operation               text NOT NULL CHECK (operation IN ('PUBLISH', 'REPLACE', 'UPDATE', 'DELETE')),
  workflow_instance_id    text NOT NULL DEFAULT '',
  identifier              text NOT NULL DEFAULT '',  -- master identifier of the document
  document_type           text NOT NULL DEFAULT '',  -- LOINC code of Composition.type
  tipo_documento_liv_alto text NOT NULL DEFAULT '',  -- DocumentReference.category
  rde                     text NOT NULL DEFAULT '',  -- region of delivery
  rda                     text NOT NULL DEFAULT '',  -- region of assistance
  producer_app_id         text NOT NULL DEFAULT '',
  producer_app_vendor     text NOT NULL DEFAULT '',
  producer_app_version    text NOT NULL DEFAULT '',
  producer_org            text NOT NULL DEFAULT '',  -- custodian organisation (identifier, else name)
  priority                text NOT NULL DEFAULT '',  -- HIGH, NULL, LOW (PUBLISH and REPLACE)
  entries                 integer NOT NULL DEFAULT 0,
  validation_errors       integer NOT NULL DEFAULT 0,
  status                  integer NOT NULL,          -- HTTP status of the answer
  problem_type            text NOT NULL DEFAULT '',  -- /err/client, /err/resource, /err/server
  problem_title           text NOT NULL DEFAULT '',
  patient                 text NOT NULL DEFAULT '',  -- Patient/id
  fiscal_code_hash        text NOT NULL DEFAULT ''   -- HMAC-SHA256 of the fiscal code, hex; never the code
) PARTITION BY RANGE (received_at);

CREATE INDEX feeding_record_received ON feeding_record USING brin (received_at);

CREATE TRIGGER feeding_record_append_only BEFORE UPDATE OR DELETE ON feeding_record
  FOR EACH ROW EXECUTE FUNCTION eds_refuse_change();

-- Partitions of feeding_record for the month of `from_ts` and the
-- `months_ahead` after it.
CREATE FUNCTION eds_feeding_partitions(months_ahead integer, from_ts timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  m date;
  name text;
BEGIN
  FOR i IN 0..months_ahead LOOP
    m := (date_trunc('month', from_ts) + make_interval(months => i))::date;
    name := 'feeding_record_' || to_char(m, 'YYYY_MM');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF feeding_record FOR VALUES FROM (%L) TO (%L)',
                     name, m, (m + interval '1 month')::date);
    END IF;
  END LOOP;
END $$;

SELECT eds_feeding_partitions(3, now() - interval '1 month');

-- The region of assistance (RDA) of each patient, as the last document
-- published for it with an rda said; cross-region accesses compare it with
-- the caller's region.
CREATE TABLE patient_region (
  patient    text PRIMARY KEY,           -- Patient/id
  rda        text NOT NULL,
  identifier text NOT NULL DEFAULT '',   -- master identifier of the document that set it
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The key of the fiscal-code hashes when none is configured
-- (--analytics-hash-key): made once, at random, by the first server that
-- needs it. Only the server reads it: grant it to nobody else.
CREATE TABLE analytics_key (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  key        bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON analytics_key FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Monitoring views (docs/monitoring.md).

-- The category of an FSE 2.0 subject_role code.
CREATE FUNCTION monitoring.role_category(role text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN upper(btrim(role)) IN ('ASS', 'TUT', 'GEN') THEN 'citizen'
    WHEN upper(btrim(role)) IN ('APR', 'AAS', 'DRS', 'RSA', 'MRP', 'DSA') THEN 'doctor'
    WHEN upper(btrim(role)) = 'INF' THEN 'nurse'
    WHEN upper(btrim(role)) = 'FAR' THEN 'pharmacist'
    ELSE 'system'
  END
$$;

-- Usage per day x caller region x role category x purpose of use x
-- interaction x resource type.
CREATE VIEW monitoring.usage_category_daily AS
SELECT date_trunc('day', ts)::date AS day, caller_region AS region, monitoring.role_category(caller_role) AS role_category,
       purpose_of_use, interaction, resource_type, count(*) AS requests,
       count(*) FILTER (WHERE status >= 400) AS failed,
       count(*) FILTER (WHERE status IN (401, 403)) AS denied,
       sum(resources_returned) AS resources_returned,
       count(DISTINCT caller_subject) AS callers
FROM audit_event GROUP BY 1, 2, 3, 4, 5, 6;

-- Feeding through the ingestion API per day x operation x RDE x RDA x
-- producer organisation x document type.
CREATE VIEW monitoring.feeding_documents_daily AS
SELECT date_trunc('day', received_at)::date AS day, operation, rde, rda, producer_org, document_type,
       count(*) AS calls,
       count(*) FILTER (WHERE status < 300) AS accepted,
       count(*) FILTER (WHERE status >= 400) AS rejected,
       count(*) FILTER (WHERE status IN (400, 422)) AS rejected_invalid,
       sum(validation_errors) AS validation_errors,
       coalesce(sum(entries) FILTER (WHERE status < 300), 0) AS entries,
       round(avg(ms), 3) AS mean_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms::double precision) AS p95_ms
FROM (SELECT *, extract(epoch FROM completed_at - received_at) * 1000 AS ms FROM feeding_record) f
GROUP BY 1, 2, 3, 4, 5, 6;

-- Accesses to a patient's data by a caller of another region than the
-- patient's region of assistance: one row per request and patient.
CREATE VIEW monitoring.cross_region_access AS
SELECT a.ts, a.request_id, a.caller_subject, a.caller_role, monitoring.role_category(a.caller_role) AS role_category,
       a.caller_org, a.caller_region, p.patient, r.rda AS patient_rda, a.purpose_of_use, a.interaction, a.method,
       a.resource_type, a.resource_id, a.status
FROM audit_event a
CROSS JOIN LATERAL unnest(a.patients) AS p(patient)
JOIN patient_region r ON r.patient = p.patient
WHERE a.caller_region <> '' AND a.caller_region <> r.rda;

CREATE VIEW monitoring.cross_region_daily AS
SELECT date_trunc('day', ts)::date AS day, caller_region, patient_rda, role_category,
       count(*) AS accesses,
       count(DISTINCT patient) AS patients,
       count(DISTINCT caller_subject) AS callers,
       count(*) FILTER (WHERE status IN (401, 403)) AS denied,
       count(*) FILTER (WHERE purpose_of_use = 'BTG') AS break_glass
FROM monitoring.cross_region_access GROUP BY 1, 2, 3, 4;

-- Break-the-glass requests (purpose of use BTG), one row each, and per day.
CREATE VIEW monitoring.break_glass_access AS
SELECT ts, request_id, caller_subject, caller_role, monitoring.role_category(caller_role) AS role_category, caller_org,
       caller_region, interaction, method, resource_type, resource_id, patients, status, outcome_code
FROM audit_event WHERE purpose_of_use = 'BTG';

CREATE VIEW monitoring.break_glass_daily AS
SELECT date_trunc('day', a.ts)::date AS day, a.caller_region AS region,
       monitoring.role_category(a.caller_role) AS role_category,
       count(*) FILTER (WHERE p.n IS NULL OR p.n = 1) AS requests,
       count(*) FILTER (WHERE (p.n IS NULL OR p.n = 1) AND a.status IN (401, 403)) AS denied,
       count(DISTINCT a.caller_subject) AS callers,
       count(DISTINCT p.patient) AS patients
FROM audit_event a
LEFT JOIN LATERAL unnest(a.patients) WITH ORDINALITY AS p(patient, n) ON true
WHERE a.purpose_of_use = 'BTG'
GROUP BY 1, 2, 3;

-- Requests refused for want of authentication (401) or permission (403).
CREATE VIEW monitoring.denied_access AS
SELECT ts, request_id, caller_subject, caller_role, monitoring.role_category(caller_role) AS role_category, caller_org,
       caller_region, purpose_of_use, interaction, method, resource_type, resource_id, patients, status, outcome_code
FROM audit_event WHERE status IN (401, 403);

CREATE VIEW monitoring.denied_daily AS
SELECT date_trunc('day', ts)::date AS day, caller_region AS region, monitoring.role_category(caller_role) AS role_category,
       purpose_of_use, interaction, status, count(*) AS requests, count(DISTINCT caller_subject) AS callers
FROM audit_event WHERE status IN (401, 403)
GROUP BY 1, 2, 3, 4, 5, 6;

-- Materialised copies of the heavy daily aggregates, refreshed by
-- eds_monitoring_refresh() (the server calls it every
-- --monitoring-refresh-seconds). The unique indexes let the refresh run
-- CONCURRENTLY, so readers never wait for it.
CREATE MATERIALIZED VIEW monitoring.usage_category_daily_mv AS SELECT * FROM monitoring.usage_category_daily;
CREATE UNIQUE INDEX usage_category_daily_mv_key ON monitoring.usage_category_daily_mv
  (day, region, role_category, purpose_of_use, interaction, resource_type);

CREATE MATERIALIZED VIEW monitoring.feeding_daily_mv AS SELECT * FROM monitoring.feeding_daily;
CREATE UNIQUE INDEX feeding_daily_mv_key ON monitoring.feeding_daily_mv (day, region, organisation, resource_type);

CREATE MATERIALIZED VIEW monitoring.feeding_documents_daily_mv AS SELECT * FROM monitoring.feeding_documents_daily;
CREATE UNIQUE INDEX feeding_documents_daily_mv_key ON monitoring.feeding_documents_daily_mv
  (day, operation, rde, rda, producer_org, document_type);

-- When each materialised view was last refreshed and how long it took.
CREATE TABLE monitoring.refresh_log (
  view_name    text PRIMARY KEY,
  refreshed_at timestamptz NOT NULL,
  duration_ms  double precision NOT NULL
);

-- Refreshes every materialised view of the monitoring schema; false (and
-- nothing done) while another session is refreshing them.
CREATE FUNCTION eds_monitoring_refresh() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v text;
  t0 timestamptz;
BEGIN
  IF NOT pg_try_advisory_xact_lock(4991205955817393737) THEN  -- 0x4544535f4d4f4e49, "EDS_MONI"
    RETURN false;
  END IF;
  FOREACH v IN ARRAY ARRAY['usage_category_daily_mv', 'feeding_daily_mv', 'feeding_documents_daily_mv'] LOOP
    t0 := clock_timestamp();
    EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY monitoring.%I', v);
    INSERT INTO monitoring.refresh_log (view_name, refreshed_at, duration_ms)
    VALUES (v, clock_timestamp(), extract(epoch FROM clock_timestamp() - t0) * 1000)
    ON CONFLICT (view_name) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at, duration_ms = EXCLUDED.duration_ms;
  END LOOP;
  RETURN true;
END $$;
