//! The site table every request thread reads: site name → current deployment.

use parking_lot::RwLock;
use rusqlite::Connection;
use std::collections::HashMap;

/// Site name → current deployment id, shared by all threads so a request resolves its
/// deployment without a query. Reloaded from the database when it changes.
#[derive(Default)]
pub struct SiteTable {
    current: RwLock<SiteMap>,
}

/// foldhash, not SipHash: every request looks its site up here, and the names are the
/// deployed sites' (a client can't add keys).
type SiteMap = HashMap<String, i64, foldhash::fast::RandomState>;

impl SiteTable {
    pub fn current(&self, site: &str) -> Option<i64> {
        self.current.read().get(site).copied()
    }

    /// Replaces the table from the database; returns the deployments no longer current
    /// (their cache entries can go).
    pub fn reload(&self, conn: &Connection) -> rusqlite::Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(
            "SELECT name, current_deployment FROM sites WHERE current_deployment IS NOT NULL",
        )?;
        let fresh: SiteMap = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        // Most database changes are analytics batches, not deploys: leave the table (and
        // the request threads reading it) alone when nothing moved.
        if *self.current.read() == fresh {
            return Ok(Vec::new());
        }
        let mut table = self.current.write();
        let replaced = table
            .iter()
            .filter(|(name, id)| fresh.get(*name) != Some(id))
            .map(|(_, id)| *id)
            .collect();
        *table = fresh;
        Ok(replaced)
    }
}
