//! An in-memory [`Services`] and [`Host`], for the unit tests and the runtime benchmark: kv
//! with TTLs, ds with equality queries and shallow merges, env, logs, canned fetches and
//! recorded broadcasts, all kept per site in one shared [`Memory`].

use super::super::fetch::{FetchRequest, FetchResponse};
use super::super::pool::Services;
use super::super::store::{KvEntry, LogLevel};
use super::bindings::broadcast_fits;
use super::{Code, Host, Style};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// (site, key) → (JSON value, expires at ms).
type Kv = BTreeMap<(String, String), (String, Option<i64>)>;
/// (site, collection) → documents, each an object with its `id`.
type Docs = HashMap<(String, String), Vec<Map<String, Value>>>;

/// The largest broadcast the fake hubs take (the server's is `FAZT_WS_MESSAGE_MAX`).
pub(crate) const MESSAGE_MAX: usize = 1 << 10;

/// Everything the fake hosts share, by site.
#[derive(Default)]
pub(crate) struct Memory {
    pub kv: Mutex<Kv>,
    pub docs: Mutex<Docs>,
    pub env: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// (site, level, message).
    pub logs: Mutex<Vec<(String, &'static str, String)>>,
    pub sources: Mutex<HashMap<[u8; 32], String>>,
    pub fetched: Mutex<Vec<FetchRequest>>,
    /// The deadline each fetch was given.
    pub fetch_deadlines: Mutex<Vec<Instant>>,
    /// (site, text) of every broadcast.
    pub broadcasts: Mutex<Vec<(String, String)>>,
    /// The clients every site's hub has (and each broadcast reaches).
    pub socket_clients: AtomicUsize,
    /// When set, every kv and ds call fails with this message.
    pub failure: Mutex<Option<String>>,
    pub env_calls: AtomicUsize,
    pub loads: AtomicUsize,
    pub idles: AtomicUsize,
    pub starts: AtomicUsize,
    next_id: AtomicUsize,
}

impl Memory {
    /// The code of `source` in `style`, its source kept for `load_code`.
    pub(crate) fn code(&self, style: Style, source: &str) -> Code {
        let sha256: [u8; 32] = Sha256::digest(source.as_bytes()).into();
        self.sources.lock().insert(sha256, source.to_string());
        Code {
            sha256,
            size: source.len() as u64,
            style,
        }
    }

    /// `site`'s log lines as `level: message`.
    #[cfg(test)]
    pub(crate) fn logs_of(&self, site: &str) -> Vec<String> {
        self.logs
            .lock()
            .iter()
            .filter(|(s, _, _)| s == site)
            .map(|(_, level, message)| format!("{level}: {message}"))
            .collect()
    }
}

pub(crate) struct FakeServices(pub Arc<Memory>);

impl Services for FakeServices {
    fn start_worker(&self) {
        self.0.starts.fetch_add(1, Ordering::Relaxed);
    }

    fn load_code(&self, code: &Code) -> Result<String, String> {
        self.0.loads.fetch_add(1, Ordering::Relaxed);
        self.0
            .sources
            .lock()
            .get(&code.sha256)
            .cloned()
            .ok_or_else(|| "no such code".to_string())
    }

    fn host(&self, site: &str) -> Box<dyn Host> {
        Box::new(FakeHost {
            site: site.to_string(),
            memory: Arc::clone(&self.0),
        })
    }

    fn idle(&self) {
        self.0.idles.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct FakeHost {
    site: String,
    memory: Arc<Memory>,
}

use crate::platform::clock::unix_now_ms as now_ms;

fn object(json: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("{what} is not an object")),
    }
}

fn matches(doc: &Map<String, Value>, query: &Map<String, Value>) -> bool {
    query.iter().all(|(k, v)| doc.get(k) == Some(v))
}

impl FakeHost {
    fn check(&self) -> Result<(), String> {
        match self.memory.failure.lock().as_ref() {
            Some(message) => Err(message.clone()),
            None => Ok(()),
        }
    }

    fn key(&self, key: &str) -> (String, String) {
        (self.site.clone(), key.to_string())
    }
}

impl Host for FakeHost {
    fn kv_get(&mut self, key: &str) -> Result<Option<String>, String> {
        self.check()?;
        assert!(key != "panic", "the host panicked");
        let kv = self.memory.kv.lock();
        Ok(kv
            .get(&self.key(key))
            .filter(|(_, exp)| exp.is_none_or(|at| at > now_ms()))
            .map(|(value, _)| value.clone()))
    }

    fn kv_set(&mut self, key: &str, value_json: &str, ttl_ms: Option<u64>) -> Result<(), String> {
        self.check()?;
        let expires = ttl_ms.map(|ms| now_ms() + ms as i64);
        self.memory
            .kv
            .lock()
            .insert(self.key(key), (value_json.to_string(), expires));
        Ok(())
    }

    fn kv_delete(&mut self, key: &str) -> Result<bool, String> {
        self.check()?;
        Ok(self.memory.kv.lock().remove(&self.key(key)).is_some())
    }

    fn kv_list(&mut self, prefix: &str) -> Result<Vec<KvEntry>, String> {
        self.check()?;
        let kv = self.memory.kv.lock();
        Ok(kv
            .iter()
            .filter(|((site, key), (_, exp))| {
                *site == self.site && key.starts_with(prefix) && exp.is_none_or(|at| at > now_ms())
            })
            .map(|((_, key), (value, exp))| KvEntry {
                key: key.clone(),
                value: value.clone(),
                expires_at_ms: *exp,
            })
            .collect())
    }

    fn ds_insert(&mut self, coll: &str, doc_json: &str) -> Result<String, String> {
        self.check()?;
        let mut doc = object(doc_json, "the document")?;
        let id = match doc.get("id") {
            Some(Value::String(id)) => id.clone(),
            _ => format!(
                "{:016x}",
                self.memory.next_id.fetch_add(1, Ordering::Relaxed) + 1
            ),
        };
        doc.insert("id".into(), Value::String(id.clone()));
        let mut docs = self.memory.docs.lock();
        docs.entry((self.site.clone(), coll.to_string()))
            .or_default()
            .push(doc);
        Ok(id)
    }

    fn ds_find(
        &mut self,
        coll: &str,
        query_json: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>, String> {
        self.check()?;
        let query = object(query_json, "the query")?;
        let docs = self.memory.docs.lock();
        let all = docs.get(&(self.site.clone(), coll.to_string()));
        Ok(all
            .into_iter()
            .flatten()
            .filter(|doc| matches(doc, &query))
            .take(limit.unwrap_or(usize::MAX))
            .map(|doc| Value::Object(doc.clone()).to_string())
            .collect())
    }

    fn ds_update(
        &mut self,
        coll: &str,
        query_json: &str,
        changes_json: &str,
    ) -> Result<u64, String> {
        self.check()?;
        let (query, changes) = (
            object(query_json, "the query")?,
            object(changes_json, "the changes")?,
        );
        let mut docs = self.memory.docs.lock();
        let mut n = 0;
        for doc in docs
            .entry((self.site.clone(), coll.to_string()))
            .or_default()
            .iter_mut()
            .filter(|doc| matches(doc, &query))
        {
            for (k, v) in &changes {
                doc.insert(k.clone(), v.clone());
            }
            n += 1;
        }
        Ok(n)
    }

    fn ds_delete(&mut self, coll: &str, query_json: &str) -> Result<u64, String> {
        self.check()?;
        let query = object(query_json, "the query")?;
        let mut docs = self.memory.docs.lock();
        let list = docs
            .entry((self.site.clone(), coll.to_string()))
            .or_default();
        let before = list.len();
        list.retain(|doc| !matches(doc, &query));
        Ok((before - list.len()) as u64)
    }

    fn env(&mut self) -> Result<Vec<(String, String)>, String> {
        self.memory.env_calls.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .memory
            .env
            .lock()
            .get(&self.site)
            .cloned()
            .unwrap_or_default())
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        let entry = (self.site.clone(), level.as_str(), message.to_string());
        self.memory.logs.lock().push(entry);
    }

    fn fetch(&mut self, request: FetchRequest, deadline: Instant) -> Result<FetchResponse, String> {
        if Instant::now() >= deadline {
            return Err("fetch: the invocation's deadline passed".into());
        }
        let url = request.url.clone();
        self.memory.fetched.lock().push(request);
        self.memory.fetch_deadlines.lock().push(deadline);
        Ok(FetchResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-seen".into(), "1".into()),
                ("x-seen".into(), "2".into()),
            ],
            body: format!("{{\"url\":\"{url}\"}}").into_bytes(),
            url,
        })
    }

    fn socket_broadcast(&mut self, text: &str) -> Result<usize, String> {
        broadcast_fits(text, MESSAGE_MAX)?;
        let entry = (self.site.clone(), text.to_string());
        self.memory.broadcasts.lock().push(entry);
        self.socket_clients()
    }

    fn socket_clients(&mut self) -> Result<usize, String> {
        Ok(self.memory.socket_clients.load(Ordering::Relaxed))
    }
}
