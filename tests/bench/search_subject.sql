-- pgbench script for tests/bench/search_bench.sh (run with -M extended, as the
-- server sends it): the SQL the server runs for
-- GET /fhir/Observation?subject=Patient/<id>&code=http://loinc.org|<c>&date=ge2023-01-01
-- (storage/pg_search.cpp). The values come from a random line of
-- params/subject_code_date.tsv (table bench_param_subject), one primary-key read.
\set n random(1, :rows)
SELECT pid, code FROM bench_param_subject WHERE n = :n \gset
SELECT r.res_id, r.version_id, (extract(epoch from r.last_updated) * 1000)::bigint, r.content::text FROM resource r WHERE r.res_type = 'Observation' AND NOT r.deleted AND EXISTS (SELECT 1 FROM search_reference i WHERE i.res_key = r.res_key AND i.res_type = r.res_type AND i.res_id = r.res_id AND i.param = 'subject' AND ((i.target_type = 'Patient' AND i.target_id = :pid))) AND EXISTS (SELECT 1 FROM search_token i WHERE i.res_key = r.res_key AND i.res_type = r.res_type AND i.res_id = r.res_id AND i.param = 'code' AND ((i.code = :code AND i.system = 'http://loinc.org'))) AND EXISTS (SELECT 1 FROM search_date i WHERE i.res_key = r.res_key AND i.res_type = r.res_type AND i.res_id = r.res_id AND i.param = 'date' AND ((i.high > (timestamptz 'epoch' + 1672617600000::bigint * interval '1 millisecond') OR (i.low >= (timestamptz 'epoch' + 1672531200000::bigint * interval '1 millisecond') AND i.high <= (timestamptz 'epoch' + 1672617600000::bigint * interval '1 millisecond'))))) ORDER BY r.res_id LIMIT 51;
