-- Resource content is compressed with lz4 instead of pglz where PostgreSQL
-- was built with it (Debian's is). Only content past the TOAST threshold
-- (about 2 kB) is compressed at all; for it lz4 compresses and decompresses
-- several times faster at a similar ratio, and gives up quickly on what does
-- not compress: a transaction with a 9 MB base64 attachment spent a fifth of
-- the machine's time in pglz_compress, which in the end stored it
-- uncompressed (12.6 MB: 0.56 s with pglz, 0.38 s with lz4). Values already
-- stored keep their compression; nothing is rewritten.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE resource ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE resource_history ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE resource_history_content ALTER COLUMN content SET COMPRESSION lz4;
  END IF;
END
$$;
