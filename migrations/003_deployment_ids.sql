-- fazt schema 3: deployment ids are never reused.
-- `deployments.id` is a plain rowid, so deleting the site that holds the newest deployment
-- would let the next deploy take the same id, and a cache entry of the deleted deployment
-- (keyed by id and path) could then be served for the new one. The last id ever given out
-- is kept here and every new deployment takes the next one.
CREATE TABLE deployment_ids (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    last INTEGER NOT NULL
);
INSERT INTO deployment_ids (one, last) SELECT 1, coalesce(max(id), 0) FROM deployments;
