-- FSE 2.0 documents published through the ingestion API: one row per master
-- identifier, with the workflow instance that published it and the
-- resources the document wrote (shared ones, such as its Patient, are not
-- listed: replacing or deleting a document leaves them).
CREATE TABLE fse_document (
  identifier           text PRIMARY KEY,  -- master identifier as sent, e.g. 2.16.840.1.113883.2.9.2.120.4.4^290700
  workflow_instance_id text NOT NULL,
  resources            text[] NOT NULL,   -- Type/id
  document_reference   text NOT NULL,     -- Type/id of its DocumentReference
  rda                  text NOT NULL DEFAULT '',
  rde                  text NOT NULL DEFAULT '',
  priority             text NOT NULL DEFAULT '',
  published_at         timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fse_document_workflow ON fse_document (workflow_instance_id);
