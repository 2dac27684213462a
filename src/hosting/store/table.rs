//! The site table every request thread reads: site name → current deployment.

use parking_lot::RwLock;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;

/// Site name → current deployment, shared by all threads so a request resolves its
/// deployment without a query. Reloaded from the database when it changes.
#[derive(Default)]
pub struct SiteTable {
    current: RwLock<SiteMap>,
}

/// A site's current deployment and when it went live.
#[derive(Clone, Debug)]
pub struct Live {
    pub deployment: i64,
    /// Unix seconds when the site's pointer last moved to this deployment
    /// (`sites.updated_at`): the deployment's `created_at` for a deploy, the time of the
    /// rollback for a rollback. This is the `Last-Modified` of every file of the site, so
    /// it never goes back in time when an older deployment is rolled back to (a client
    /// holding the newer copy would otherwise get a 304 for the older one).
    pub since: u64,
    /// `since` as an HTTP-date, formatted once per deploy instead of once per response.
    pub last_modified: Arc<str>,
}

/// foldhash, not SipHash: every request looks its site up here, and the names are the
/// deployed sites' (a client can't add keys).
type SiteMap = HashMap<String, Live, foldhash::fast::RandomState>;

impl SiteTable {
    pub fn current(&self, site: &str) -> Option<Live> {
        self.current.read().get(site).cloned()
    }

    /// The names of the sites served now.
    pub fn names(&self) -> Vec<String> {
        self.current.read().keys().cloned().collect()
    }

    /// Replaces the table from the database; returns the deployments no longer current
    /// (their cache entries can go).
    pub fn reload(&self, conn: &Connection) -> rusqlite::Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(
            "SELECT name, current_deployment, updated_at FROM sites
             WHERE current_deployment IS NOT NULL",
        )?;
        let rows: Vec<(String, i64, u64)> = stmt
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get::<_, i64>(2)?.max(0) as u64,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        // Most database changes are analytics batches, not deploys: leave the table (and
        // the request threads reading it) alone when nothing moved.
        if same_as(&self.current.read(), &rows) {
            return Ok(Vec::new());
        }
        let fresh: SiteMap = rows
            .into_iter()
            .map(|(name, deployment, since)| {
                let last_modified = Arc::from(crate::http::response::http_date(since));
                let live = Live {
                    deployment,
                    since,
                    last_modified,
                };
                (name, live)
            })
            .collect();
        let mut table = self.current.write();
        let replaced = table
            .iter()
            .filter(|(name, live)| fresh.get(*name).map(|l| l.deployment) != Some(live.deployment))
            .map(|(_, live)| live.deployment)
            .collect();
        *table = fresh;
        Ok(replaced)
    }
}

/// Whether the table already holds exactly these (name, deployment, since) rows.
fn same_as(table: &SiteMap, rows: &[(String, i64, u64)]) -> bool {
    table.len() == rows.len()
        && rows.iter().all(|(name, deployment, since)| {
            table
                .get(name)
                .is_some_and(|live| live.deployment == *deployment && live.since == *since)
        })
}
