-- The content of a resource's current version is stored once, in
-- resource.content: the history row of that version keeps its metadata and
-- no content (NULL). When a version is superseded (updated or deleted), its
-- content is copied into resource_history_content, which readers of old
-- versions consult. A resource written once and never changed, most of a
-- clinical repository, then takes its content's space once instead of
-- twice, and a write carries it once to the table and the WAL.
--
-- The content of a history row is therefore, in order: its own column
-- (rows written before this migration, and versions a bulk load superseded
-- in the same batch), the current row's when the versions match, the
-- archived copy. Rows written before keep their content: nothing is moved.
ALTER TABLE resource_history DROP CONSTRAINT IF EXISTS resource_history_check;

CREATE TABLE resource_history_content (
  res_type   text COLLATE "C" NOT NULL,
  res_id     text COLLATE "C" NOT NULL,
  version_id bigint NOT NULL,
  content    json   NOT NULL,
  PRIMARY KEY (res_type, res_id, version_id)
);

