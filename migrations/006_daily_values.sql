-- fazt schema 6: the distinct values each site has had in each capped dimension on each
-- (UTC) day, so the daily cap (FAZT_MAX_DAILY_VALUES; values past it are stored and
-- counted as `(other)`) holds across restarts. Written by the writer in the same
-- transaction as the events that brought the values; only today's and yesterday's rows
-- are kept (the writer deletes older days when a new day starts), so the table holds at
-- most 2 days × sites × dimensions × the cap.
CREATE TABLE daily_values (
    domain INTEGER NOT NULL,  -- strings(kind 1)
    day    INTEGER NOT NULL,  -- days since the Unix epoch
    dim    INTEGER NOT NULL,  -- the roll-up dimension number (path: every event's path)
    key    INTEGER NOT NULL,  -- strings id of the value
    PRIMARY KEY (domain, day, dim, key)
) WITHOUT ROWID;
