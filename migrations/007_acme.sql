-- fazt schema 7 (after 006, daily_values): ACME accounts and certificates (issue #12).
-- Keys are PEM text and never leave the database except to the TLS certificate store.

-- One account per ACME directory (production and staging are different CAs): the P-256
-- account key (PKCS#8 PEM) and the account URL the CA gave it (the JWS `kid`).
CREATE TABLE acme_accounts (
    directory_url TEXT PRIMARY KEY,
    key_pem       TEXT NOT NULL,
    account_url   TEXT NOT NULL,
    created_at    INTEGER NOT NULL          -- unix seconds
) WITHOUT ROWID;

-- One row per name fazt wants a certificate for. chain_pem, key_pem, not_before and
-- not_after are NULL until the first certificate is in hand, and a failed attempt never
-- touches them: the old certificate keeps being served until a new one replaces it.
CREATE TABLE certificates (
    name         TEXT PRIMARY KEY,          -- a DNS name, lower case
    chain_pem    TEXT,                      -- leaf first, then the intermediates
    key_pem      TEXT,                      -- the leaf's private key, PKCS#8 PEM
    not_before   INTEGER,                   -- unix seconds, from the leaf
    not_after    INTEGER,
    issued_at    INTEGER,                   -- when fazt stored this chain
    last_error   TEXT,                      -- the last attempt's error, NULL after a success
    last_attempt INTEGER,
    failures     INTEGER NOT NULL DEFAULT 0,  -- failed attempts since the last success (backoff)
    next_attempt INTEGER NOT NULL DEFAULT 0   -- when the certificate thread tries next
) WITHOUT ROWID;

CREATE INDEX certificates_next_attempt ON certificates(next_attempt);
