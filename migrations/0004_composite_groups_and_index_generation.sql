-- Composite search parameters: the rows of one component tuple (e.g. an
-- Observation.component's code and value) share a group number; plain rows
-- keep 0.
ALTER TABLE search_string ADD COLUMN grp integer NOT NULL DEFAULT 0;
ALTER TABLE search_token ADD COLUMN grp integer NOT NULL DEFAULT 0;
ALTER TABLE search_date ADD COLUMN grp integer NOT NULL DEFAULT 0;
ALTER TABLE search_number ADD COLUMN grp integer NOT NULL DEFAULT 0;
ALTER TABLE search_quantity ADD COLUMN grp integer NOT NULL DEFAULT 0;
ALTER TABLE search_reference ADD COLUMN grp integer NOT NULL DEFAULT 0;
ALTER TABLE search_uri ADD COLUMN grp integer NOT NULL DEFAULT 0;

-- Custom SearchParameters (SearchParameter resources stored here, status
-- active) take effect at an index generation; every resource records the
-- generation of the parameter set that indexed it, so searches on a
-- parameter newer than a resource's index know that resource is not
-- reindexed yet.
ALTER TABLE resource ADD COLUMN index_gen bigint NOT NULL DEFAULT 0;
CREATE INDEX resource_index_gen ON resource (res_type, index_gen) WHERE NOT deleted;

CREATE SEQUENCE search_index_generation;

CREATE TABLE custom_search_param (
  res_id     text PRIMARY KEY,   -- the SearchParameter resource
  version_id bigint NOT NULL,    -- its version this generation belongs to
  generation bigint NOT NULL
);
