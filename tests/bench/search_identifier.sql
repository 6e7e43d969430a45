-- pgbench script for tests/bench/search_bench.sh (run with -M extended, as the
-- server sends it: unnamed statements, planned for their values): the SQL the
-- server runs for GET /fhir/Patient?identifier=http://hl7.it/sid/codiceFiscale|<cf>
-- (storage/pg_search.cpp). The codice fiscale comes from a random line of
-- params/identifier.tsv (table bench_param_identifier), one primary-key read.
\set n random(1, :rows)
SELECT cf FROM bench_param_identifier WHERE n = :n \gset
SELECT r.res_id, r.version_id, (extract(epoch from r.last_updated) * 1000)::bigint, r.content::text FROM resource r WHERE r.res_type = 'Patient' AND NOT r.deleted AND EXISTS (SELECT 1 FROM search_token i WHERE i.res_key = r.res_key AND i.res_type = r.res_type AND i.res_id = r.res_id AND i.param = 'identifier' AND ((i.code = :cf AND i.system = 'http://hl7.it/sid/codiceFiscale'))) ORDER BY r.res_id LIMIT 51;
