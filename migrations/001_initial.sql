-- fazt schema 1: API keys and the content-addressed virtual filesystem (DESIGN §3, D3).
-- The migration runner sets `PRAGMA auto_vacuum = INCREMENTAL` before this runs, while
-- the database still has no table (it can't change afterwards without a full VACUUM).

-- Owner and deploy API keys. Only the sha-256 of a token is stored; `id` is the part of
-- the token (`fzt_<id>_<secret>`) that finds the row, so lookup is one primary-key probe.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    token_sha256 BLOB NOT NULL CHECK (length(token_sha256) = 32),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

-- File contents, keyed by their sha-256 (also the ETag). Shared by every deployment and
-- site that has the same bytes. The bytes themselves are in `blob_chunks`.
CREATE TABLE blobs (
    sha256     BLOB PRIMARY KEY CHECK (length(sha256) = 32),
    size       INTEGER NOT NULL CHECK (size >= 0),
    chunk_size INTEGER NOT NULL CHECK (chunk_size > 0),
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Blob contents in fixed-size chunks (the last one shorter), so a large file is read a
-- chunk per statement: no read transaction spans a whole response and no file is ever
-- loaded whole into memory. A zero-byte blob has no chunks.
CREATE TABLE blob_chunks (
    sha256 BLOB NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    seq    INTEGER NOT NULL CHECK (seq >= 0),
    data   BLOB NOT NULL,
    PRIMARY KEY (sha256, seq)
);

-- A site is a name and a pointer to its current deployment. Flipping the pointer is one
-- UPDATE in the transaction that wrote the deployment: readers see all old or all new.
CREATE TABLE sites (
    name               TEXT PRIMARY KEY,
    current_deployment INTEGER REFERENCES deployments (id),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Immutable deployments: never changed once written, kept for rollback.
CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY,
    site        TEXT NOT NULL REFERENCES sites (name) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    file_count  INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    new_bytes   INTEGER NOT NULL,
    source      TEXT NOT NULL
);
CREATE INDEX deployments_by_site ON deployments (site, id);

-- The files of a deployment: normalised path (no leading slash) → blob and MIME type.
CREATE TABLE files (
    deployment INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    sha256     BLOB NOT NULL REFERENCES blobs (sha256),
    size       INTEGER NOT NULL,
    mime       TEXT NOT NULL,
    PRIMARY KEY (deployment, path)
) WITHOUT ROWID;
CREATE INDEX files_by_blob ON files (sha256);
