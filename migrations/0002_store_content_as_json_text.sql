-- Keep resource content as the exact JSON text the server wrote (json), not
-- jsonb: reads return it without conversion, object keys keep their order
-- (resourceType, id and meta first), and numbers keep their representation,
-- which FHIR requires for decimals (jsonb prints 1.0E+3 as 1000). Searches
-- use index tables, not operators on this column.

ALTER TABLE resource ALTER COLUMN content TYPE json USING content::json;
ALTER TABLE resource_history ALTER COLUMN content TYPE json USING content::json;
