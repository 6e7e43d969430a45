-- The key columns of the resource and search index tables compare in byte
-- order (COLLATE "C"), whatever the database's locale. Ids, codes, systems,
-- URIs and the folded string values are matched exactly or by prefix, never
-- by language rules; byte order makes every B-tree comparison a memcmp
-- instead of a locale-aware strcoll, and lets sorts use abbreviated keys.
-- For UTF-8 text byte order is code point order, the order C.UTF-8 gives,
-- so results are unchanged on a database created with that locale. The
-- heaps are not rewritten; the indexes on these columns are rebuilt.
ALTER TABLE resource
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C";
ALTER TABLE resource_history
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C";
ALTER TABLE search_string
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C",
  ALTER COLUMN value_norm TYPE text COLLATE "C",
  ALTER COLUMN value_exact TYPE text COLLATE "C";
ALTER TABLE search_token
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C",
  ALTER COLUMN system TYPE text COLLATE "C",
  ALTER COLUMN code TYPE text COLLATE "C";
ALTER TABLE search_date
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C";
ALTER TABLE search_number
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C";
ALTER TABLE search_quantity
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C",
  ALTER COLUMN system TYPE text COLLATE "C",
  ALTER COLUMN code TYPE text COLLATE "C";
ALTER TABLE search_reference
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C",
  ALTER COLUMN target_type TYPE text COLLATE "C",
  ALTER COLUMN target_id TYPE text COLLATE "C",
  ALTER COLUMN target_version TYPE text COLLATE "C",
  ALTER COLUMN url TYPE text COLLATE "C";
ALTER TABLE search_uri
  ALTER COLUMN res_type TYPE text COLLATE "C",
  ALTER COLUMN res_id TYPE text COLLATE "C",
  ALTER COLUMN param TYPE text COLLATE "C",
  ALTER COLUMN value TYPE text COLLATE "C";
