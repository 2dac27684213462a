-- fazt schema 8 (after 007, acme): dashboard accounts, their sessions, the one-time setup
-- link and the audit log (issue #13).

-- People who sign in to the dashboard. The password is an Argon2id PHC string; the scope
-- is written like an API key's (owner, deploy:*, deploy:<site>, comma-separated).
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash       TEXT NOT NULL,
    scope               TEXT NOT NULL,
    created_at          INTEGER NOT NULL,     -- unix seconds
    password_changed_at INTEGER NOT NULL
);

-- A signed-in browser. The cookie holds a random token; only its sha-256 is stored. `id`
-- names the session in listings and revocations without revealing the token. A session
-- ends when unused for its idle time (`expires_at` moves forward on use) or on logout.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    remember     INTEGER NOT NULL,            -- 1: "remember me" (the longer idle time)
    created_at   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    device       TEXT NOT NULL,               -- the browser, as its User-Agent names it
    ip           TEXT NOT NULL                -- where it signed in from
);

CREATE INDEX sessions_expires_at ON sessions(expires_at);
CREATE INDEX sessions_user ON sessions(user_id);

-- The first-run setup link's token (sha-256): valid until `expires_at`, used once.
CREATE TABLE setup_tokens (
    token_sha256 BLOB PRIMARY KEY CHECK (length(token_sha256) = 32),
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Who did what: sign-ins (ok and failed), sign-outs, changes of keys, redirects, webhooks,
-- sites and passwords, vacuums. Kept for its own retention.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,                    -- "user NAME", "key NAME" or the username tried
    ip      TEXT NOT NULL,
    action  TEXT NOT NULL,                    -- e.g. login, logout, key.create, site.delete
    target  TEXT,
    outcome TEXT NOT NULL                     -- ok, or why it was refused
);

CREATE INDEX audit_log_at ON audit_log(at);
