-- Current versions and the append-only history of every resource.
-- resource holds the newest version of each (type, id), tombstones included;
-- resource_history holds every version, with a global change sequence (seq)
-- that the change feed and history paging order by.

CREATE TABLE resource (
  res_type     text        NOT NULL,
  res_id       text        NOT NULL,
  version_id   bigint      NOT NULL CHECK (version_id > 0),
  last_updated timestamptz NOT NULL,
  deleted      boolean     NOT NULL DEFAULT false,
  content      jsonb,
  PRIMARY KEY (res_type, res_id),
  CHECK (deleted OR content IS NOT NULL)
);

CREATE TABLE resource_history (
  seq          bigint      GENERATED ALWAYS AS IDENTITY,
  res_type     text        NOT NULL,
  res_id       text        NOT NULL,
  version_id   bigint      NOT NULL CHECK (version_id > 0),
  last_updated timestamptz NOT NULL,
  method       text        NOT NULL CHECK (method IN ('POST', 'PUT', 'DELETE')),
  deleted      boolean     NOT NULL DEFAULT false,
  content      jsonb,
  PRIMARY KEY (res_type, res_id, version_id),
  CHECK (deleted OR content IS NOT NULL)
);

CREATE UNIQUE INDEX resource_history_seq ON resource_history (seq);
CREATE INDEX resource_history_type_seq ON resource_history (res_type, seq);
CREATE INDEX resource_history_last_updated ON resource_history (last_updated);

-- The content of a version without the server-owned meta elements, so that
-- an update that changes nothing else can be recognised and skipped.
CREATE FUNCTION eds_strip_server_meta(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN doc IS NULL OR NOT (doc ? 'meta') THEN doc
    WHEN (doc->'meta') - 'versionId' - 'lastUpdated' = '{}'::jsonb THEN doc - 'meta'
    ELSE jsonb_set(doc, '{meta}', (doc->'meta') - 'versionId' - 'lastUpdated')
  END
$$;
