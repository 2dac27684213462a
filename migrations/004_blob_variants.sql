-- fazt schema 4: precompressed variants of stored files (DESIGN D8).
-- At deploy time each compressible file over 1 KiB is compressed once with brotli and with
-- gzip; a variant that saves at least 10 % is stored as a blob like any other (content
-- addressed, in chunks) and named here by the identity blob it encodes. A row whose
-- `variant` is NULL records that the coding was tried and did not pay, so a re-deploy of
-- the same bytes compresses nothing again. Rows go with their identity blob (GC deletes
-- the variant blobs nothing else uses in the same transaction).
CREATE TABLE blob_variants (
    sha256   BLOB NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    encoding TEXT NOT NULL CHECK (encoding IN ('br', 'gzip')),
    variant  BLOB REFERENCES blobs (sha256),
    PRIMARY KEY (sha256, encoding)
) WITHOUT ROWID;
CREATE INDEX blob_variants_by_variant ON blob_variants (variant);
