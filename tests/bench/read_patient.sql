\set n random(0, 9999)
SELECT version_id, deleted, (extract(epoch from last_updated) * 1000)::bigint, content::text FROM resource WHERE res_type = 'Patient' AND res_id = 'bench-' || :n;
