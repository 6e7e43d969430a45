-- Absolute references were indexed with the target id of their last
-- Type/id segments whatever their base, so another server's Patient/123
-- matched the local Patient/123. They now get a target id only under one of
-- the server's own bases (--public-url, --local-bases). The resources
-- indexed the old way are marked here (index_gen -1) for `eds reindex` or
-- POST [base]/$reindex, which re-extract their rows with the configured
-- bases.
UPDATE resource r SET index_gen = -1
WHERE NOT r.deleted AND EXISTS (
  SELECT 1 FROM search_reference s
  WHERE s.res_type = r.res_type AND s.res_id = r.res_id AND s.url LIKE '%://%' AND s.target_id <> '');
