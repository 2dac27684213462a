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
    /// Bumped each time the table changes, so a follower syncs only then.
    generation: std::sync::atomic::AtomicU64,
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
    /// The deployment's server-side script, if it has one (issue #14).
    pub script: Option<Script>,
    /// `/ws` is the site's WebSocket endpoint (issue #15): unless the deployment has its
    /// own file there (`ws` or `ws/index.html`), which a deploy may add to take it away.
    pub websocket: bool,
}

/// A deployment's server-side script: which requests it answers, and the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Script {
    pub kind: ScriptKind,
    pub sha256: [u8; 32],
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptKind {
    /// `api/main.js`: requests for `/api` and under it; the rest is served statically.
    Api,
    /// `main.js` at the root of a site without `index.html` (the v0.7.1 app layout): every
    /// request. A static site's own browser `main.js` always comes with an `index.html`
    /// (what else would load it), so it stays a file.
    Root,
}

impl Script {
    /// Whether this script answers a request for `path`.
    #[inline]
    pub fn answers(&self, path: &str) -> bool {
        match self.kind {
            ScriptKind::Root => true,
            ScriptKind::Api => path == "/api" || path.starts_with("/api/"),
        }
    }
}

/// The script of `deployment`, by the layout rules of [`ScriptKind`].
fn find_script(conn: &Connection, deployment: i64) -> rusqlite::Result<Option<Script>> {
    let mut stmt = conn.prepare_cached(
        "SELECT path, sha256, size FROM files
         WHERE deployment = ?1 AND path IN ('api/main.js', 'main.js', 'index.html')",
    )?;
    let rows: Vec<(String, [u8; 32], i64)> = stmt
        .query_map([deployment], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let file = |path: &str| rows.iter().find(|(p, _, _)| p == path);
    let script = |kind, (_, sha256, size): &(String, [u8; 32], i64)| Script {
        kind,
        sha256: *sha256,
        size: (*size).max(0) as u64,
    };
    Ok(
        match (file("api/main.js"), file("main.js"), file("index.html")) {
            (Some(api), _, _) => Some(script(ScriptKind::Api, api)),
            (None, Some(root), None) => Some(script(ScriptKind::Root, root)),
            _ => None,
        },
    )
}

/// Whether `deployment` has a file of its own at `/ws` (then it is served, not upgraded).
fn has_own_ws(conn: &Connection, deployment: i64) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM files
         WHERE deployment = ?1 AND path IN ('ws', 'ws/index.html'))",
    )?;
    stmt.query_row([deployment], |r| r.get(0))
}

/// foldhash, not SipHash: every request looks its site up here, and the names are the
/// deployed sites' (a client can't add keys).
type SiteMap = HashMap<String, Live, foldhash::fast::RandomState>;

impl SiteTable {
    pub fn current(&self, site: &str) -> Option<Live> {
        self.current.read().get(site).cloned()
    }

    /// The script of `site`'s current deployment, if it answers `path` (one lookup, no
    /// clone of the rest: this is on every site request's path).
    #[inline]
    pub fn script_for(&self, site: &str, path: &str) -> Option<Script> {
        let table = self.current.read();
        let script = table.get(site)?.script?;
        script.answers(path).then_some(script)
    }

    /// Whether `site` is served and `/ws` is its WebSocket endpoint.
    pub fn websocket(&self, site: &str) -> bool {
        self.current
            .read()
            .get(site)
            .is_some_and(|live| live.websocket)
    }

    /// Changes with every change of the table.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
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
                    script: find_script(conn, deployment)?,
                    websocket: !has_own_ws(conn, deployment)?,
                };
                Ok((name, live))
            })
            .collect::<rusqlite::Result<_>>()?;
        let mut table = self.current.write();
        let replaced = table
            .iter()
            .filter(|(name, live)| fresh.get(*name).map(|l| l.deployment) != Some(live.deployment))
            .map(|(_, live)| live.deployment)
            .collect();
        *table = fresh;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
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
