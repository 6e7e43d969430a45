-- Search index: typed rows extracted from each resource's current version
-- by its SearchParameters, rewritten in the same transaction as every write
-- (so rows of old versions never match). _id and _lastUpdated are answered
-- from the resource table itself.

CREATE TABLE search_string (
  res_type    text NOT NULL,
  res_id      text NOT NULL,
  param       text NOT NULL,
  value_norm  text NOT NULL,  -- case- and accent-folded
  value_exact text NOT NULL
);
CREATE INDEX search_string_value ON search_string (res_type, param, value_norm text_pattern_ops);
CREATE INDEX search_string_res ON search_string (res_type, res_id);

CREATE TABLE search_token (
  res_type text NOT NULL,
  res_id   text NOT NULL,
  param    text NOT NULL,
  system   text NOT NULL,  -- '' when none
  code     text NOT NULL,  -- '' when only text is known
  display  text NOT NULL
);
CREATE INDEX search_token_code ON search_token (res_type, param, code, system);
CREATE INDEX search_token_res ON search_token (res_type, res_id);

CREATE TABLE search_date (
  res_type text NOT NULL,
  res_id   text NOT NULL,
  param    text NOT NULL,
  low      timestamptz NOT NULL,  -- inclusive
  high     timestamptz NOT NULL   -- exclusive
);
CREATE INDEX search_date_low ON search_date (res_type, param, low);
CREATE INDEX search_date_high ON search_date (res_type, param, high);
CREATE INDEX search_date_res ON search_date (res_type, res_id);

CREATE TABLE search_number (
  res_type text NOT NULL,
  res_id   text NOT NULL,
  param    text NOT NULL,
  value    numeric NOT NULL,
  low      numeric NOT NULL,
  high     numeric NOT NULL
);
CREATE INDEX search_number_value ON search_number (res_type, param, value);
CREATE INDEX search_number_res ON search_number (res_type, res_id);

CREATE TABLE search_quantity (
  res_type text NOT NULL,
  res_id   text NOT NULL,
  param    text NOT NULL,
  value    numeric NOT NULL,
  low      numeric NOT NULL,
  high     numeric NOT NULL,
  system   text NOT NULL,
  code     text NOT NULL,
  unit     text NOT NULL
);
CREATE INDEX search_quantity_value ON search_quantity (res_type, param, code, value);
CREATE INDEX search_quantity_res ON search_quantity (res_type, res_id);

CREATE TABLE search_reference (
  res_type       text NOT NULL,
  res_id         text NOT NULL,
  param          text NOT NULL,
  target_type    text NOT NULL,  -- '' for a URL that names no local resource
  target_id      text NOT NULL,
  target_version text NOT NULL,
  url            text NOT NULL
);
CREATE INDEX search_reference_target ON search_reference (res_type, param, target_id, target_type);
CREATE INDEX search_reference_reverse ON search_reference (target_type, target_id);
CREATE INDEX search_reference_res ON search_reference (res_type, res_id);

CREATE TABLE search_uri (
  res_type text NOT NULL,
  res_id   text NOT NULL,
  param    text NOT NULL,
  value    text NOT NULL
);
CREATE INDEX search_uri_value ON search_uri (res_type, param, value);
CREATE INDEX search_uri_res ON search_uri (res_type, res_id);

-- Listing current resources of a type in id order (search without criteria,
-- keyset paging) and by time.
CREATE INDEX resource_type_updated ON resource (res_type, last_updated, res_id) WHERE NOT deleted;
