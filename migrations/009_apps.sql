-- fazt schema 9 (after 008, accounts): serverless apps' storage (issue #14): each site's
-- key-value pairs, documents, environment variables and logs, and what it uses of its
-- quotas. Everything is keyed by the site's name (as `sites.name`); deleting a site deletes
-- its rows in the same transaction (`hosting::store::delete_site`).

-- `fazt.app.kv`. The value is JSON text. `expires_at` (unix ms) NULL: never expires; an
-- expired row is invisible at once and deleted by the periodic sweep or when overwritten.
CREATE TABLE app_kv (
    site       TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (site, key)
) WITHOUT ROWID;

CREATE INDEX app_kv_expires_at ON app_kv(expires_at) WHERE expires_at IS NOT NULL;

-- `fazt.app.ds`. `doc` is a JSON object in SQLite's JSONB (queries read fields without
-- parsing text), without `id`, `_createdAt` and `_updatedAt`, which come from the
-- columns. `seq` keeps insertion order for `find`.
CREATE TABLE app_docs (
    seq        INTEGER PRIMARY KEY,
    site       TEXT NOT NULL,
    coll       TEXT NOT NULL,
    id         TEXT NOT NULL,
    doc        BLOB NOT NULL,
    created_at INTEGER NOT NULL,              -- unix ms
    updated_at INTEGER NOT NULL,
    UNIQUE (site, coll, id)
);

CREATE INDEX app_docs_order ON app_docs(site, coll, seq);

-- `fazt.env`: set with `fazt env set` or the admin API; values are never shown back.
CREATE TABLE app_env (
    site       TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,              -- unix seconds
    PRIMARY KEY (site, key)
) WITHOUT ROWID;

-- `console.*` of the site's scripts: the newest rows per site are kept, for a few days.
-- AUTOINCREMENT: ids never go back, even when every row was deleted, so a follower that
-- polls with the last id it saw never misses a line.
CREATE TABLE app_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    site    TEXT NOT NULL,
    ts      INTEGER NOT NULL,                 -- unix ms
    level   TEXT NOT NULL,                    -- log, info, warn, error
    message TEXT NOT NULL
);

CREATE INDEX app_logs_site ON app_logs(site, id);
CREATE INDEX app_logs_ts ON app_logs(ts);

-- What each site holds of its quotas, kept in the transaction of every kv and ds write (a
-- count per write would scan the site's rows).
CREATE TABLE app_usage (
    site    TEXT PRIMARY KEY,
    kv_keys INTEGER NOT NULL DEFAULT 0,
    docs    INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0        -- kv keys and values, doc ids and docs (JSONB)
) WITHOUT ROWID;
