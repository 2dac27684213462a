//! Writing event batches with their roll-ups, and retention (being written).
