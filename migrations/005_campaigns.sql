-- fazt schema 5 (numbered after 004, the precompressed variants): campaign dimensions.
-- The utm_source, utm_medium and utm_campaign of an event (from the page's query string,
-- a /track beacon's `q`, a pixel's or a short link's query), stored once as strings of
-- kind 6 and referred to by id. Their counts are roll-up dimensions 6, 7 and 8 in the
-- existing roll-up tables (no new table: a dimension is a number there), so /api/stats
-- lists the top sources, mediums and campaigns from the roll-ups like paths and tags.
-- Events from before this version have none.
ALTER TABLE events ADD COLUMN utm_source INTEGER;    -- strings(kind 6)
ALTER TABLE events ADD COLUMN utm_medium INTEGER;    -- strings(kind 6)
ALTER TABLE events ADD COLUMN utm_campaign INTEGER;  -- strings(kind 6)
