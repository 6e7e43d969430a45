-- Every resource gets a key number (res_key), unique, and its search index
-- rows carry it: the rows of one resource are found through a
-- (res_key, res_id) index instead of a (res_type, res_id) one.
--
-- Keys come from the sequence resource_key, which the server reserves in
-- blocks of 1024 (its increment), so they grow with time and the new
-- indexes take their insertions near their right edge, where the
-- (res_type, res_id) indexes took them at random places: a bulk load's
-- PostgreSQL time fell by a tenth, a REPLACE of a document by a fifth. The
-- id is in the index too so that a lookup of a resource's rows by key and id
-- looks, to the planner, as selective as it is: by key alone, a generic plan
-- preferred a value index whose columns it thought independent (a sorted
-- search scanned 2,000 token rows per candidate). A bulk load gives an
-- updated resource a new key along with its new index rows.
--
-- Rows written before this migration get keys here, the same in the
-- resource and in its index rows (one UPDATE of each index table).
CREATE SEQUENCE resource_key INCREMENT BY 1024;

ALTER TABLE resource ADD COLUMN res_key bigint;
UPDATE resource SET res_key = nextval('resource_key');
ALTER TABLE resource ALTER COLUMN res_key SET NOT NULL;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['search_string', 'search_token', 'search_date', 'search_number', 'search_quantity',
                           'search_reference', 'search_uri'] LOOP
    EXECUTE format('ALTER TABLE %I ADD COLUMN res_key bigint', t);
    EXECUTE format('UPDATE %I s SET res_key = r.res_key FROM resource r'
                   ' WHERE r.res_type = s.res_type AND r.res_id = s.res_id', t);
    -- rows of no resource (none should exist) get keys of their own
    EXECUTE format('UPDATE %I SET res_key = nextval(%L) WHERE res_key IS NULL', t, 'resource_key');
    EXECUTE format('ALTER TABLE %I ALTER COLUMN res_key SET NOT NULL', t);
    EXECUTE format('DROP INDEX IF EXISTS %I', t || '_res');
    EXECUTE format('CREATE INDEX %I ON %I (res_key, res_id)', t || '_res_key', t);
  END LOOP;
END
$$;
