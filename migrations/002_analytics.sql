-- fazt schema 2: privacy-first analytics (DESIGN §3): compact raw events, roll-ups kept
-- in the same transaction as the raw rows, redirects and webhooks.

-- Repeated strings (domains, paths, referrer hosts, event types, tags) are stored once
-- and events refer to them by small integer ids.
CREATE TABLE strings (
    id    INTEGER PRIMARY KEY,
    kind  INTEGER NOT NULL,  -- 1 domain, 2 path, 3 referrer host, 4 event type, 5 tag
    value TEXT NOT NULL,
    UNIQUE (kind, value)
);

-- Raw events. No IP address: `visitor` is a 64-bit hash of (daily salt, site, IP,
-- user agent), so one visitor is countable within a day and unlinkable across days.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,          -- unix seconds
    domain   INTEGER NOT NULL,          -- strings(kind 1)
    path     INTEGER,                   -- strings(kind 2)
    type     INTEGER NOT NULL,          -- strings(kind 4)
    referrer INTEGER,                   -- strings(kind 3)
    visitor  INTEGER NOT NULL,
    source   INTEGER NOT NULL,          -- 1 track, 2 pixel, 3 redirect, 4 webhook, 5 hosted page
    tags     TEXT,                      -- tag ids (strings kind 5) as ",3,7,", NULL when none
    query    TEXT                       -- the `q` object as compact JSON, NULL when none
);
-- (domain) is (domain, id) underneath: a site's events newest first, keyset-paginated by
-- id, without a sort. (ts) finds what retention deletes, oldest first. Time ranges per
-- site are answered by the roll-ups, never by raw rows.
CREATE INDEX events_by_domain ON events (domain);
CREATE INDEX events_by_ts ON events (ts);

-- The salt of each day (UTC), for visitor hashes; deleted once older than a day.
CREATE TABLE salts (
    day  INTEGER PRIMARY KEY,           -- days since the Unix epoch
    salt BLOB NOT NULL CHECK (length(salt) = 32)
);

-- Visitors seen per site and day, to count each one once a day.
CREATE TABLE visitors_daily (
    domain  INTEGER NOT NULL,
    day     INTEGER NOT NULL,
    visitor INTEGER NOT NULL,
    PRIMARY KEY (domain, day, visitor)
) WITHOUT ROWID;

-- Hourly totals per site. `visitors` counts a visitor in the hour of their first event
-- of the day, so the hours of a day add up to that day's unique visitors.
CREATE TABLE rollup_hourly (
    domain    INTEGER NOT NULL,
    hour      INTEGER NOT NULL,         -- unix seconds / 3600
    events    INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    visitors  INTEGER NOT NULL,
    PRIMARY KEY (domain, hour)
) WITHOUT ROWID;

-- Hourly counts per site and dimension value: paths (of pageviews), referrer hosts,
-- event types, tags, redirect slugs.
CREATE TABLE rollup_hourly_dims (
    domain INTEGER NOT NULL,
    dim    INTEGER NOT NULL,            -- 1 path, 2 referrer, 3 event type, 4 tag, 5 redirect
    hour   INTEGER NOT NULL,
    key    INTEGER NOT NULL,            -- a strings id
    count  INTEGER NOT NULL,
    PRIMARY KEY (domain, dim, hour, key)
) WITHOUT ROWID;

-- The same per day, so top-N lists over long ranges read days, not hours.
CREATE TABLE rollup_daily_dims (
    domain INTEGER NOT NULL,
    dim    INTEGER NOT NULL,
    day    INTEGER NOT NULL,            -- days since the Unix epoch (UTC)
    key    INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (domain, dim, day, key)
) WITHOUT ROWID;

-- The same per calendar month (UTC), so a year of top-N lists reads about twelve months
-- and a few edge days instead of 365 days of rows.
CREATE TABLE rollup_monthly_dims (
    domain INTEGER NOT NULL,
    dim    INTEGER NOT NULL,
    month  INTEGER NOT NULL,            -- months since 1970-01: (year - 1970) * 12 + month - 1
    key    INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (domain, dim, month, key)
) WITHOUT ROWID;

-- Short links: /r/<slug> answers 302 to `url` and counts a click (an event with source
-- redirect and path "/r/<slug>", carrying `tags`).
CREATE TABLE redirects (
    slug       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    tags       TEXT,                    -- comma-separated tags given to each click, or NULL
    created_at INTEGER NOT NULL
);

-- Webhook endpoints: POST /webhook/<endpoint>, optionally signed with `secret`.
CREATE TABLE webhooks (
    endpoint   TEXT PRIMARY KEY,
    secret     TEXT,
    active     INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
