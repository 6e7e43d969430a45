-- Bulk loads (eds load): how far each source file has been committed, written
-- in the same transaction as every batch, so a load killed at any point and
-- run again starts after the last committed line and stores nothing twice.
CREATE TABLE load_checkpoint (
  source           text PRIMARY KEY,    -- absolute path of the file
  fingerprint      text NOT NULL,       -- size and modification time when the load ran
  committed_offset bigint NOT NULL,     -- bytes of the file committed (whole lines)
  committed_line   bigint NOT NULL,     -- lines committed
  report_offset    bigint NOT NULL,     -- bytes of the rejection report written for them
  stored           bigint NOT NULL DEFAULT 0,  -- versions written so far
  unchanged        bigint NOT NULL DEFAULT 0,  -- resources equal to their stored version
  rejected         bigint NOT NULL DEFAULT 0,  -- lines or entries refused
  complete         boolean NOT NULL DEFAULT false,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
