-- Audit rows as FHIR AuditEvent resources: each row gets a stable event id
-- (AuditEvent.id), its action (C/R/U/D/E), the resources it touched
-- (entity.what) and whether it was written inside the transaction of the
-- write it records. A write's row is committed with the write itself, so it
-- is written before the answer is ready and knows no response size
-- (bytes_out NULL).
ALTER TABLE audit_event ADD COLUMN event_id text NOT NULL DEFAULT '';
ALTER TABLE audit_event ADD COLUMN action text NOT NULL DEFAULT '';
ALTER TABLE audit_event ADD COLUMN entities text[] NOT NULL DEFAULT '{}';  -- Type/id or Type/id/_history/v (capped)
ALTER TABLE audit_event ADD COLUMN in_transaction boolean NOT NULL DEFAULT false;
ALTER TABLE audit_event ADD COLUMN service text NOT NULL DEFAULT '';  -- SERV_ASS_xx, SERV_PRO_xx, SERV_WRITE_0x
ALTER TABLE audit_event ALTER COLUMN bytes_out DROP NOT NULL;

-- AuditEvent?patient=...: the accesses to one patient's data. GIN with
-- pending-list inserts keeps the cost of each audit batch low.
CREATE INDEX audit_event_patients ON audit_event USING gin (patients) WITH (fastupdate = on);
