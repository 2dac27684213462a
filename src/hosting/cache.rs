//! The one shared file cache (DESIGN §1 "One shared cache", §2 cache limits): a byte-bounded LRU
//! of immutable file bodies shared by every core thread, plus a small pinned map for the admin
//! dashboard assets.
//!
//! # Invariants
//!
//! - **Weight ≤ limit, always.** Every entry weighs its body bytes plus an estimate of its
//!   bookkeeping ([`entry_weight`], [`ENTRY_OVERHEAD`]). The sum of the weights of the entries
//!   present never exceeds `limit_bytes`, not even for an instant: each shard's limit is a share
//!   of it (the shares sum to it), and an insert first evicts the shard's least-recently-used
//!   entries until the new one fits, then adds it, all under the shard's lock. A body larger than
//!   `max_file_bytes`, or an entry heavier than its shard's whole limit, is refused (counted in
//!   `rejected_too_large`) and the caller streams it instead. (A body evicted while a response
//!   still holds its `Arc` lives until that response is sent: the limit bounds what the cache
//!   holds, the connection limits bound the rest.)
//! - **Pinned entries are never evicted** and are not counted against the LRU limit. They live in a
//!   separate map (loaded at start: the admin dashboard assets, DESIGN §1 admin thread) and are
//!   reported separately (`pinned_bytes`, `pinned_entries`).
//! - **A lock is held only for map operations**: look up and clone an `Arc`, insert, evict,
//!   remove, bump a counter. No I/O, no content hashing and no body allocation happens under it,
//!   and evicted, replaced, invalidated or cleared entries are dropped (their bodies possibly
//!   freed) only after the lock is released.
//! - **Entries are immutable.** A key is `(deployment id, path)`; deployments are immutable
//!   (DESIGN §3), so an entry never goes stale. A site's pointer flip makes new lookups use the new
//!   deployment id; the old deployment's entries simply age out, or are dropped at once with
//!   [`SiteCache::invalidate_deployment`].
//!
//! # Sharding
//!
//! DESIGN says "sharded if contention shows in benchmarks". The cache is built from
//! power-of-two shards, each an independent `clru` LRU with its own lock, counters and
//! `limit / shards` bytes, picked by a hash of `(deployment, path)` computed before locking (LRU
//! order is then per shard). [`SiteCache::new`] uses **one shard**: exact LRU, no hashing, the
//! plain `parking_lot::Mutex<CLruCache>` of DESIGN §1. `benches/cache_contention.rs` (2 vCPUs
//! shared with other builds, so noisy): an uncontended `get` takes ~75–100 ns. Back-to-back
//! `get`s from 2 threads usually do fewer lookups in total than 1 thread (typically 0.6–0.9x,
//! range 0.15–1.4x) — but 2 or 8 shards did not do consistently better (0.3–1.3x) and add
//! ~15–25 ns of hashing to every lookup. With ~2 µs of other work per lookup (still several times
//! a saturated server's lookup rate) 2 threads on one shard reach 1.65–2.0x, level with the
//! no-lookup control. So: one shard until a server benchmark shows the lock;
//! [`SiteCache::with_shards`] is the switch, tested to keep every invariant.

use crate::hosting::encoding::{Encoding, EncodingSet};
use crate::platform::metrics::Kind::{Counter as C, Gauge as G};
use crate::platform::metrics::{Collector, Desc, Source};
use clru::{CLruCache, CLruCacheConfig, WeightScale};
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Estimated bytes of bookkeeping per cached entry beyond its variable-length strings and body
/// (64-bit target, glibc-style malloc rounding). Derived from:
///
/// | part | bytes |
/// |---|---|
/// | LRU list node (`prev`, `next`, key `i64` + `Arc<str>` + encoding, value `Arc`) = 56, ×2 for `Vec` growth slack | 112 |
/// | free-slot index in the LRU list | 8 |
/// | hash-table slot (`usize` + control byte) at ≤ 7/8 load and doubling growth | 24 |
/// | path `Arc<str>` header (two counts) + malloc rounding | 24 |
/// | `Arc<CachedFile>` allocation: counts 16 + `CachedFile` 88, rounded | 112 |
/// | body `Arc<[u8]>` header (two counts) + malloc rounding | 32 |
/// | mime and etag `Arc<str>` headers (two counts each) + malloc rounding | 40 |
/// | **total** | **352** |
///
/// The path, mime and etag lengths are added per entry on top of this (see [`entry_weight`]); a
/// shared mime string is counted in every entry that uses it, which errs on the safe side.
pub const ENTRY_OVERHEAD: u64 = 352;

/// The weight of one entry: body bytes, variable-length strings, and [`ENTRY_OVERHEAD`].
pub fn entry_weight(path: &str, file: &CachedFile) -> u64 {
    file.body.len() as u64
        + path.len() as u64
        + file.mime.len() as u64
        + file.etag.len() as u64
        + ENTRY_OVERHEAD
}

/// A cached file: immutable, shared by `Arc` between the cache and the responses that send it.
/// One entry per stored representation (identity, or a compressed variant) that was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The bytes in `encoding`.
    pub body: Arc<[u8]>,
    /// sha-256 of the identity bytes (the content-addressed blob key, DESIGN §3).
    pub sha256: [u8; 32],
    pub mime: Arc<str>,
    /// Quoted strong ETag of this representation: the hex sha-256 of the identity bytes, with
    /// a suffix for a variant (`files::etag_for`). Shared, so a response's ETag header costs
    /// no copy.
    pub etag: Arc<str>,
    pub encoding: Encoding,
    /// Every representation the file has (whether a better one than this may exist).
    pub available: EncodingSet,
}

impl CachedFile {
    /// A file whose content hash is already known (the blob key from the store); no hashing.
    pub fn new(body: Arc<[u8]>, sha256: [u8; 32], mime: impl Into<Arc<str>>) -> CachedFile {
        CachedFile::encoded(
            body,
            sha256,
            mime,
            Encoding::Identity,
            EncodingSet::IDENTITY,
        )
    }

    /// The `encoding` representation of the file whose identity bytes hash to `sha256`.
    pub fn encoded(
        body: Arc<[u8]>,
        sha256: [u8; 32],
        mime: impl Into<Arc<str>>,
        encoding: Encoding,
        available: EncodingSet,
    ) -> CachedFile {
        CachedFile {
            body,
            etag: crate::hosting::files::etag_for(&sha256, encoding).into(),
            sha256,
            mime: mime.into(),
            encoding,
            available,
        }
    }

    /// A file whose hash is computed here (e.g. embedded admin assets at start). Call it outside
    /// any cache lock.
    pub fn from_bytes(body: Arc<[u8]>, mime: impl Into<Arc<str>>) -> CachedFile {
        let sha256: [u8; 32] = Sha256::digest(&body).into();
        CachedFile::new(body, sha256, mime)
    }
}

/// Cache key: the deployment id keeps entries of different deploys of the same site distinct;
/// the encoding, the representations of one file.
#[derive(Debug, Clone)]
pub struct CacheKey {
    pub deployment: i64,
    pub path: Arc<str>,
    pub encoding: Encoding,
}

impl CacheKey {
    /// The key of a file's identity bytes.
    pub fn new(deployment: i64, path: impl Into<Arc<str>>) -> CacheKey {
        CacheKey::encoded(deployment, path, Encoding::Identity)
    }

    pub fn encoded(deployment: i64, path: impl Into<Arc<str>>, encoding: Encoding) -> CacheKey {
        CacheKey {
            deployment,
            path: path.into(),
            encoding,
        }
    }
}

/// The borrowed form of a key, so [`SiteCache::get_path`] looks up by `(i64, &str)` without
/// allocating. `Hash` and `Eq` of [`CacheKey`] and of `dyn KeyRef` agree by construction: both go
/// through `parts()`.
trait KeyRef {
    fn parts(&self) -> (i64, &str, Encoding);
}

impl KeyRef for CacheKey {
    fn parts(&self) -> (i64, &str, Encoding) {
        (self.deployment, &self.path, self.encoding)
    }
}

impl KeyRef for (i64, &str, Encoding) {
    fn parts(&self) -> (i64, &str, Encoding) {
        (self.0, self.1, self.2)
    }
}

impl Hash for dyn KeyRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (deployment, path, encoding) = self.parts();
        deployment.hash(state);
        path.hash(state);
        encoding.hash(state);
    }
}

impl PartialEq for dyn KeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyRef + '_ {}

impl<'a> Borrow<dyn KeyRef + 'a> for CacheKey {
    fn borrow(&self) -> &(dyn KeyRef + 'a) {
        self
    }
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyRef).hash(state)
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for CacheKey {}

/// `clru` counts every entry as 1 + its scale weight against the capacity, so the scale reports
/// `entry_weight - 1` and the capacity is the byte limit: clru's `len() + weight()` is then exactly
/// the sum of our entry weights. (`entry_weight` ≥ [`ENTRY_OVERHEAD`] > 0, so no underflow.)
struct Scale;

impl WeightScale<CacheKey, Arc<CachedFile>> for Scale {
    fn weight(&self, key: &CacheKey, value: &Arc<CachedFile>) -> usize {
        to_usize(entry_weight(&key.path, value)).saturating_sub(1)
    }
}

/// foldhash instead of the default SipHash: a lookup hashes a short path on every request, and
/// SipHash cost more than the rest of the lookup. Keys are paths of deployed files (a client
/// can only look up, not insert, arbitrary keys), and the seed is still random per process.
type Lru = CLruCache<CacheKey, Arc<CachedFile>, foldhash::fast::RandomState, Scale>;

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Entries a single insert usually displaces; the buffer that carries them out of the lock is
/// allocated before taking it.
const EVICT_BUF: usize = 4;

/// Pinned files by path, each with its representations by encoding.
#[derive(Default)]
struct Pinned {
    map: HashMap<Box<str>, HashMap<Encoding, Arc<CachedFile>>>,
    bytes: u64,
}

/// One shard: an LRU with its own lock, byte limit and counters. The counters live under the lock
/// (whose cache line the holder owns anyway), so a lookup touches no other shared line. Aligned so
/// neighbouring shards never share a cache line.
#[repr(align(128))]
struct Shard {
    state: Mutex<ShardState>,
    /// This shard's byte limit (equal to its LRU's capacity); the shard limits sum to the
    /// cache's limit.
    limit: u64,
}

struct ShardState {
    lru: Lru,
    hits: u64,
    misses: u64,
    evictions: u64,
    inserts: u64,
}

impl Shard {
    fn new(limit: u64) -> Shard {
        Shard {
            state: Mutex::new(ShardState {
                lru: new_lru(limit),
                hits: 0,
                misses: 0,
                evictions: 0,
                inserts: 0,
            }),
            limit,
        }
    }
}

fn new_lru(limit: u64) -> Lru {
    let capacity = NonZeroUsize::new(to_usize(limit)).unwrap_or(NonZeroUsize::MIN);
    CLruCache::with_config(
        CLruCacheConfig::new(capacity)
            .with_hasher(foldhash::fast::RandomState::default())
            .with_scale(Scale),
    )
}

/// The sum of entry weights in `lru` (`len + weight`, see [`Scale`]).
fn used(lru: &Lru) -> u64 {
    (lru.len() + lru.weight()) as u64
}

/// Hash of `(deployment, path)` that picks the shard, computed before any lock is taken. Eight
/// bytes per step (FxHash-style rotate-xor-multiply) with a final mix: a byte-at-a-time hash
/// (FNV-1a) cost ~45 ns on a 30-byte key, more than the whole uncontended lookup.
fn shard_hash(deployment: i64, path: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (deployment as u64 ^ path.len() as u64).wrapping_mul(K);
    let mut chunks = path.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The shared file cache. See the module documentation for its invariants.
pub struct SiteCache {
    /// A power-of-two number of shards.
    shards: Box<[Shard]>,
    /// The byte limit (clamped to `usize`): the sum of the shard limits.
    limit: u64,
    max_file: u64,
    pinned: RwLock<Pinned>,
    rejected_too_large: AtomicU64,
}

/// A snapshot of the cache counters and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries pushed out by inserts (not invalidations, replacements or `clear`).
    pub evictions: u64,
    pub inserts: u64,
    pub rejected_too_large: u64,
    /// Sum of entry weights present (body bytes + estimated overhead), ≤ `bytes_limit`.
    pub bytes_used: u64,
    pub bytes_limit: u64,
    pub entries: u64,
    /// Weights (same estimate) of the pinned entries, outside `bytes_limit`.
    pub pinned_bytes: u64,
    pub pinned_entries: u64,
    /// Bytes of files over the size cap written to clients, straight from the store
    /// (`METRICS.streamed_bytes`, counted as the socket takes them).
    pub streamed_bytes: u64,
}

static HITS: Desc = Desc::new(
    C,
    "fazt_cache_hits_total",
    "cache.hits",
    "File cache lookups that found the file.",
);
static MISSES: Desc = Desc::new(
    C,
    "fazt_cache_misses_total",
    "cache.misses",
    "File cache lookups that did not find the file.",
);
static EVICTIONS: Desc = Desc::new(
    C,
    "fazt_cache_evictions_total",
    "cache.evictions",
    "File cache entries evicted to make room.",
);
static INSERTS: Desc = Desc::new(
    C,
    "fazt_cache_inserts_total",
    "cache.inserts",
    "Files put into the file cache.",
);
static REJECTED_TOO_LARGE: Desc = Desc::new(
    C,
    "fazt_cache_rejected_too_large_total",
    "cache.rejected_too_large",
    "Files not cached because they are larger than the largest cached file.",
);
static BYTES: Desc = Desc::new(
    G,
    "fazt_cache_bytes",
    "cache.bytes_used",
    "Bytes held by the file cache (bodies plus estimated overhead).",
);
static LIMIT_BYTES: Desc = Desc::new(
    G,
    "fazt_cache_limit_bytes",
    "cache.bytes_limit",
    "Byte limit of the file cache.",
);
static ENTRIES: Desc = Desc::new(
    G,
    "fazt_cache_entries",
    "cache.entries",
    "Files in the file cache.",
);
static PINNED_BYTES: Desc = Desc::new(
    G,
    "fazt_cache_pinned_bytes",
    "cache.pinned_bytes",
    "Bytes of pinned admin assets (not counted against the cache limit).",
);
static PINNED_ENTRIES: Desc = Desc::new(
    G,
    "fazt_cache_pinned_entries",
    "cache.pinned_entries",
    "Pinned admin assets.",
);
static STREAMED_BYTES: Desc = Desc::new(
    C,
    "fazt_cache_streamed_bytes_total",
    "cache.streamed_bytes",
    "Bytes of files too large to cache written to clients from the store.",
);

impl Source for SiteCache {
    fn collect(&self, out: &mut Collector) {
        let s = self.stats();
        out.int(&HITS, s.hits);
        out.int(&MISSES, s.misses);
        out.int(&EVICTIONS, s.evictions);
        out.int(&INSERTS, s.inserts);
        out.int(&REJECTED_TOO_LARGE, s.rejected_too_large);
        out.int(&BYTES, s.bytes_used);
        out.int(&LIMIT_BYTES, s.bytes_limit);
        out.int(&ENTRIES, s.entries);
        out.int(&PINNED_BYTES, s.pinned_bytes);
        out.int(&PINNED_ENTRIES, s.pinned_entries);
        out.int(&STREAMED_BYTES, s.streamed_bytes);
    }
}

impl SiteCache {
    /// A cache holding at most `limit_bytes` (entry weights), caching files of at most
    /// `max_file_bytes` body bytes, as one shard (exact LRU order).
    pub fn new(limit_bytes: u64, max_file_bytes: u64) -> SiteCache {
        SiteCache::with_shards(limit_bytes, max_file_bytes, 1)
    }

    /// Like `new` with an explicit shard count (rounded up to a power of two, at least 1). Each
    /// shard is an independent LRU over `limit_bytes / shards` (the first takes the remainder),
    /// so the limit holds overall; an entry heavier than its shard's limit is refused, so keep
    /// `limit_bytes / shards` at several times `max_file_bytes` (DESIGN §2's largest file is
    /// limit / 16, which allows up to 4 shards of 4 largest files each).
    pub fn with_shards(limit_bytes: u64, max_file_bytes: u64, shards: usize) -> SiteCache {
        let limit = to_usize(limit_bytes) as u64;
        let n = shards.max(1).next_power_of_two();
        let each = limit / n as u64;
        let shards = (0..n)
            .map(|i| {
                Shard::new(if i == 0 {
                    limit - each * (n as u64 - 1)
                } else {
                    each
                })
            })
            .collect();
        SiteCache {
            shards,
            limit,
            max_file: max_file_bytes,
            pinned: RwLock::new(Pinned::default()),
            rejected_too_large: AtomicU64::new(0),
        }
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.max_file
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Whether a body of `len` bytes is small enough to be cached (otherwise stream it and call
    /// [`SiteCache::record_streamed`]). The exact check in `insert` also counts the key's strings.
    pub fn admits(&self, len: u64) -> bool {
        let smallest = self.shards.iter().map(|s| s.limit).min().unwrap_or(0);
        len <= self.max_file && len.saturating_add(ENTRY_OVERHEAD) <= smallest
    }

    fn shard(&self, deployment: i64, path: &str) -> &Shard {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        let i = shard_hash(deployment, path) as usize & (self.shards.len() - 1);
        &self.shards[i]
    }

    /// Looks a file up, marking it most recently used. Counts a hit or a miss.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedFile>> {
        self.lookup(key)
    }

    /// Like [`SiteCache::get`] for a file's identity bytes, without building a [`CacheKey`]
    /// (no allocation).
    pub fn get_path(&self, deployment: i64, path: &str) -> Option<Arc<CachedFile>> {
        self.lookup(&(deployment, path, Encoding::Identity))
    }

    fn lookup(&self, key: &dyn KeyRef) -> Option<Arc<CachedFile>> {
        let (deployment, path, _) = key.parts();
        let mut state = self.shard(deployment, path).state.lock();
        let found = state.lru.get(key).cloned();
        if found.is_some() {
            state.hits += 1;
        } else {
            state.misses += 1;
        }
        found
    }

    /// The first representation of a file cached among `order` (best first), in one lookup
    /// under one lock: counts one hit or one miss. The caller checks the entry's `available`
    /// set for a better representation not cached yet. All representations of a file live in
    /// the same shard (the shard hash leaves the encoding out).
    pub fn get_preferred(
        &self,
        deployment: i64,
        path: &str,
        order: &[Encoding],
    ) -> Option<Arc<CachedFile>> {
        let mut state = self.shard(deployment, path).state.lock();
        let found = order.iter().find_map(|e| {
            state
                .lru
                .get(&(deployment, path, *e) as &dyn KeyRef)
                .cloned()
        });
        if found.is_some() {
            state.hits += 1;
        } else {
            state.misses += 1;
        }
        found
    }

    /// Caches a file, evicting least-recently-used entries (of its shard) until it fits. Returns
    /// false (and counts `rejected_too_large`) when the body is over `max_file_bytes` or the entry
    /// would weigh more than its shard's whole limit. Replaces an existing entry under the same
    /// key.
    pub fn insert(&self, key: CacheKey, file: Arc<CachedFile>) -> bool {
        let weight = entry_weight(&key.path, &file);
        let shard = self.shard(key.deployment, &key.path);
        if file.body.len() as u64 > self.max_file || weight > shard.limit {
            self.rejected_too_large.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Whatever leaves the cache is carried out of the lock and dropped after it.
        let mut out: Vec<Arc<CachedFile>> = Vec::with_capacity(EVICT_BUF);
        let stored = {
            let mut state = shard.state.lock();
            if let Some(old) = state.lru.pop(&key) {
                out.push(old);
            }
            while used(&state.lru) + weight > shard.limit {
                match state.lru.pop_back() {
                    Some((_, v)) => {
                        out.push(v);
                        state.evictions += 1;
                    }
                    None => break,
                }
            }
            // Room is made above, so clru neither evicts nor refuses here; a refusal (which the
            // weight check above rules out) is reported as "not cached", never a panic.
            match state.lru.put_with_weight(key, file) {
                Ok(old) => {
                    out.extend(old);
                    state.inserts += 1;
                    true
                }
                Err((_, file)) => {
                    out.push(file);
                    false
                }
            }
        };
        drop(out);
        stored
    }

    /// Removes every entry of `deployment` and returns how many were removed. A full scan of
    /// every shard (O(entries), each shard under its own lock; no body is freed under a lock):
    /// deploys and garbage collection are rare, lookups are not, so no per-deployment index is
    /// kept.
    pub fn invalidate_deployment(&self, deployment: i64) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut out: Vec<Arc<CachedFile>> = Vec::new();
            shard.state.lock().lru.retain(|k, v| {
                if k.deployment == deployment {
                    out.push(Arc::clone(v));
                    false
                } else {
                    true
                }
            });
            removed += out.len();
        }
        removed
    }

    /// Empties the LRU (pinned entries stay). The old contents are dropped outside the locks.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let fresh = new_lru(shard.limit);
            let old = std::mem::replace(&mut shard.state.lock().lru, fresh);
            drop(old);
        }
    }

    /// Stores a file that is never evicted and not counted against the limit (admin dashboard
    /// assets, loaded at start), under its path and encoding. Replaces an earlier pin of the
    /// same path and encoding.
    pub fn pin(&self, path: &str, file: Arc<CachedFile>) {
        let weight = entry_weight(path, &file);
        let old = {
            let mut pinned = self.pinned.write();
            let old = pinned
                .map
                .entry(path.into())
                .or_default()
                .insert(file.encoding, file);
            if let Some(old) = &old {
                pinned.bytes = pinned.bytes.saturating_sub(entry_weight(path, old));
            }
            pinned.bytes += weight;
            old
        };
        drop(old);
    }

    /// A pinned file's identity bytes.
    pub fn get_pinned(&self, path: &str) -> Option<Arc<CachedFile>> {
        self.get_pinned_encoded(path, Encoding::Identity)
    }

    /// A pinned file's `encoding` representation.
    pub fn get_pinned_encoded(&self, path: &str, encoding: Encoding) -> Option<Arc<CachedFile>> {
        self.pinned.read().map.get(path)?.get(&encoding).cloned()
    }

    /// Counters and gauges. Each shard is read under its own lock, so the sum is not one
    /// instant's snapshot across shards, but every shard is within its limit at every instant and
    /// so is the sum.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats {
            bytes_limit: self.limit,
            rejected_too_large: self.rejected_too_large.load(Ordering::Relaxed),
            streamed_bytes: crate::platform::metrics::METRICS.streamed_bytes.get(),
            ..CacheStats::default()
        };
        for shard in self.shards.iter() {
            let state = shard.state.lock();
            stats.hits += state.hits;
            stats.misses += state.misses;
            stats.evictions += state.evictions;
            stats.inserts += state.inserts;
            stats.entries += state.lru.len() as u64;
            stats.bytes_used += used(&state.lru);
        }
        let pinned = self.pinned.read();
        stats.pinned_entries = pinned.map.values().map(|m| m.len() as u64).sum();
        stats.pinned_bytes = pinned.bytes;
        stats
    }
}

#[cfg(test)]
impl SiteCache {
    /// Each shard's LRU contents, most recently used first: (deployment, path, entry weight).
    fn shard_snapshots(&self) -> Vec<Vec<(i64, String, u64)>> {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .state
                    .lock()
                    .lru
                    .iter()
                    .map(|(k, v)| (k.deployment, k.path.to_string(), entry_weight(&k.path, v)))
                    .collect()
            })
            .collect()
    }

    /// All entries, shard by shard.
    fn snapshot(&self) -> Vec<(i64, String, u64)> {
        self.shard_snapshots().into_iter().flatten().collect()
    }

    fn shard_index(&self, deployment: i64, path: &str) -> usize {
        let shard: *const Shard = self.shard(deployment, path);
        self.shards
            .iter()
            .position(|s| std::ptr::eq(s, shard))
            .unwrap_or(usize::MAX)
    }

    /// Checks the weight invariants by recomputing from the entries; returns bytes used.
    fn check_invariants(&self) -> u64 {
        assert_eq!(self.shards.iter().map(|s| s.limit).sum::<u64>(), self.limit);
        let mut sum = 0;
        let mut entries = 0;
        for (shard, snap) in self.shards.iter().zip(self.shard_snapshots()) {
            let w: u64 = snap.iter().map(|e| e.2).sum();
            assert!(
                w <= shard.limit,
                "shard over its limit: {w} > {}",
                shard.limit
            );
            assert_eq!(w, used(&shard.state.lock().lru));
            sum += w;
            entries += snap.len() as u64;
        }
        let stats = self.stats();
        assert!(stats.bytes_used <= stats.bytes_limit, "{stats:?}");
        assert_eq!(stats.bytes_used, sum, "bytes_used vs recomputed weights");
        assert_eq!(stats.entries, entries);
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn file(len: usize, fill: u8) -> Arc<CachedFile> {
        let body: Arc<[u8]> = vec![fill; len].into();
        Arc::new(CachedFile::new(body, [fill; 32], "text/html"))
    }

    fn key(deployment: i64, path: &str) -> CacheKey {
        CacheKey::new(deployment, path)
    }

    /// xorshift64*, seeded with a constant: reproducible without the rand crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn etag_is_quoted_hex_of_the_hash() {
        let f = CachedFile::from_bytes(Arc::from(&b"hello"[..]), "text/plain");
        assert_eq!(
            &*f.etag,
            "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\""
        );
        assert_eq!(*f.etag, crate::hosting::files::etag_of(b"hello"));
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn overhead_estimate_covers_the_structs() {
        use std::mem::size_of;
        // LRU node: prev + next + key + value, with 2x growth slack.
        assert!(2 * (16 + size_of::<CacheKey>() + size_of::<Arc<CachedFile>>()) <= 112);
        // The Arc<CachedFile> allocation (two counts + the struct).
        assert!(16 + size_of::<CachedFile>() <= 112);
    }

    #[test]
    fn hit_miss_insert_and_lru_order() {
        let w = entry_weight("/a", &file(1000, 1));
        let cache = SiteCache::with_shards(3 * w, 4096, 1);
        assert!(cache.get(&key(1, "/a")).is_none());
        for p in ["/a", "/b", "/c"] {
            assert!(cache.insert(key(1, p), file(1000, 1)));
        }
        assert_eq!(cache.stats().bytes_used, 3 * w);
        // Touch /a, so /b is now the least recently used.
        assert!(cache.get(&key(1, "/a")).is_some());
        assert!(cache.insert(key(1, "/d"), file(1000, 1)));
        assert!(cache.get(&key(1, "/b")).is_none());
        for p in ["/a", "/c", "/d"] {
            assert!(cache.get_path(1, p).is_some(), "{p}");
        }
        let names: Vec<String> = cache.snapshot().into_iter().map(|e| e.1).collect();
        assert_eq!(names, ["/d", "/c", "/a"]);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (4, 2));
        assert_eq!((s.inserts, s.evictions, s.entries), (4, 1, 3));
        assert_eq!(s.bytes_used, 3 * w);
        cache.check_invariants();
    }

    #[test]
    fn shard_counts_and_limits() {
        assert_eq!(SiteCache::new(1 << 20, 1 << 16).shard_count(), 1);
        let cache = SiteCache::with_shards(1001, 100, 3);
        assert_eq!(cache.shard_count(), 4);
        let limits: Vec<u64> = cache.shards.iter().map(|s| s.limit).collect();
        assert_eq!(limits, [251, 250, 250, 250]);
        assert_eq!(cache.stats().bytes_limit, 1001);
        assert_eq!(SiteCache::with_shards(1, 1, 0).shard_count(), 1);

        // An entry that fits the whole limit but not its shard is refused.
        let w = entry_weight("/x", &file(400, 1));
        let cache = SiteCache::with_shards(2 * w - 2, 1 << 20, 2);
        assert!(w <= cache.limit_bytes());
        assert!(!cache.insert(key(1, "/x"), file(400, 1)));
        assert_eq!(cache.stats().rejected_too_large, 1);
        // Keys spread over the shards.
        let cache = SiteCache::with_shards(1 << 20, 1 << 16, 4);
        let mut seen = [false; 4];
        for i in 0..64 {
            seen[cache.shard_index(7, &format!("/f{i}"))] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn same_key_in_another_deployment_is_distinct() {
        let cache = SiteCache::new(1 << 20, 1 << 16);
        assert!(cache.insert(key(1, "/i"), file(10, 1)));
        assert!(cache.insert(key(2, "/i"), file(10, 2)));
        assert_eq!(cache.get(&key(1, "/i")).map(|f| f.body[0]), Some(1));
        assert_eq!(cache.get_path(2, "/i").map(|f| f.body[0]), Some(2));
        assert!(cache.get_path(3, "/i").is_none());
    }

    #[test]
    fn replacing_a_key_does_not_evict_others() {
        let w = entry_weight("/a", &file(100, 1));
        let cache = SiteCache::with_shards(2 * w, 4096, 1);
        assert!(cache.insert(key(1, "/a"), file(100, 1)));
        assert!(cache.insert(key(1, "/b"), file(100, 1)));
        assert!(cache.insert(key(1, "/a"), file(100, 7)));
        assert_eq!(cache.get_path(1, "/a").map(|f| f.body[0]), Some(7));
        assert!(cache.get_path(1, "/b").is_some());
        assert_eq!(cache.stats().evictions, 0);
        assert_eq!(cache.check_invariants(), 2 * w);
    }

    #[test]
    fn too_large_bodies_are_refused() {
        let cache = SiteCache::new(1 << 20, 1000);
        assert!(cache.admits(1000));
        assert!(!cache.admits(1001));
        assert!(cache.insert(key(1, "/ok"), file(1000, 1)));
        assert!(!cache.insert(key(1, "/big"), file(1001, 1)));
        let s = cache.stats();
        assert_eq!((s.inserts, s.rejected_too_large, s.entries), (1, 1, 1));
        assert!(cache.get_path(1, "/big").is_none());

        // An entry heavier than the whole limit is refused even if max_file allows it, and
        // nothing is evicted for it.
        let cache = SiteCache::with_shards(2000, 1 << 20, 1);
        assert!(cache.insert(key(1, "/small"), file(10, 1)));
        assert!(!cache.admits(1990));
        assert!(!cache.insert(key(1, "/big"), file(1990, 1)));
        assert!(cache.get_path(1, "/small").is_some());
        assert_eq!(cache.stats().rejected_too_large, 1);
        cache.check_invariants();

        // A zero limit caches nothing and does not panic.
        let cache = SiteCache::new(0, 0);
        assert!(!cache.insert(key(1, "/e"), file(0, 1)));
        assert_eq!(cache.stats().bytes_used, 0);
    }

    #[test]
    fn an_entry_of_exactly_the_limit_fits() {
        let w = entry_weight("/x", &file(500, 1));
        let cache = SiteCache::with_shards(w, 1 << 20, 1);
        assert!(cache.insert(key(1, "/x"), file(500, 1)));
        assert_eq!(cache.stats().bytes_used, w);
        assert!(cache.insert(key(1, "/y"), file(500, 1)));
        assert!(cache.get_path(1, "/x").is_none());
        assert_eq!(cache.check_invariants(), w);
    }

    #[test]
    fn invalidate_deployment_removes_exactly_its_entries() {
        let cache = SiteCache::with_shards(1 << 20, 1 << 16, 4);
        let mut kept = 0;
        for i in 0..10 {
            let p = format!("/f{i}");
            assert!(cache.insert(key(1, &p), file(100 + i, 1)));
            assert!(cache.insert(key(2, &p), file(200 + i, 2)));
            kept += entry_weight(&p, &file(200 + i, 2));
        }
        assert!(cache.insert(key(3, "/other"), file(50, 3)));
        kept += entry_weight("/other", &file(50, 3));
        assert_eq!(cache.invalidate_deployment(1), 10);
        assert_eq!(cache.invalidate_deployment(1), 0);
        assert_eq!(cache.invalidate_deployment(99), 0);
        assert_eq!(cache.check_invariants(), kept);
        assert!(cache.snapshot().iter().all(|e| e.0 != 1));
        for i in 0..10 {
            assert!(cache.get_path(1, &format!("/f{i}")).is_none());
            assert!(cache.get_path(2, &format!("/f{i}")).is_some());
        }
        assert!(cache.get_path(3, "/other").is_some());
        assert_eq!(cache.stats().evictions, 0);

        cache.clear();
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes_used), (0, 0));
        assert!(cache.insert(key(2, "/again"), file(10, 1)));
        cache.check_invariants();
    }

    #[test]
    fn pinned_entries_are_separate() {
        let cache = SiteCache::new(2000, 1 << 20);
        let big = file(10_000, 9);
        cache.pin("/admin/app.js", Arc::clone(&big));
        let s = cache.stats();
        assert_eq!(
            (s.pinned_entries, s.pinned_bytes),
            (1, entry_weight("/admin/app.js", &big))
        );
        assert_eq!((s.entries, s.bytes_used), (0, 0));
        // Re-pinning the same path replaces it and keeps the byte count exact.
        cache.pin("/admin/app.js", file(10, 1));
        assert_eq!(
            cache.stats().pinned_bytes,
            entry_weight("/admin/app.js", &file(10, 1))
        );
        cache.clear();
        assert!(cache.get_pinned("/admin/app.js").is_some());
        assert!(cache.get_pinned("/nope").is_none());
        // Pinned lookups do not touch the LRU counters.
        assert_eq!(cache.stats().hits + cache.stats().misses, 0);
    }

    #[test]
    fn stats_render() {
        let cache = SiteCache::new(1 << 20, 1 << 16);
        assert!(cache.insert(key(1, "/a"), file(10, 1)));
        let _ = cache.get_path(1, "/a");
        let _ = cache.get_path(1, "/b");
        let s = cache.stats();
        let registry = crate::platform::metrics::Registry::new().with(&cache);
        let j = &registry.to_json()["cache"];
        assert_eq!(j["hits"], 1);
        assert_eq!(j["misses"], 1);
        // A process-wide counter that other tests may move: present and a number.
        assert!(j["streamed_bytes"].is_u64());
        assert_eq!(j["bytes_limit"], 1 << 20);
        assert_eq!(j["inserts"], 1);
        let out = registry.render_prometheus();
        for (name, kind) in [
            ("fazt_cache_hits_total", "counter"),
            ("fazt_cache_misses_total", "counter"),
            ("fazt_cache_evictions_total", "counter"),
            ("fazt_cache_inserts_total", "counter"),
            ("fazt_cache_rejected_too_large_total", "counter"),
            ("fazt_cache_bytes", "gauge"),
            ("fazt_cache_limit_bytes", "gauge"),
            ("fazt_cache_entries", "gauge"),
            ("fazt_cache_pinned_bytes", "gauge"),
            ("fazt_cache_pinned_entries", "gauge"),
            ("fazt_cache_streamed_bytes_total", "counter"),
        ] {
            assert!(out.contains(&format!("# HELP {name} ")), "{name}");
            assert!(out.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        }
        assert!(out.contains("\nfazt_cache_hits_total 1\n"));
        assert!(out.contains("\nfazt_cache_streamed_bytes_total "));
        assert!(out.contains(&format!("\nfazt_cache_bytes {}\n", s.bytes_used)));
    }

    /// A shadow LRU per shard with the specified semantics, checked against the cache after
    /// every one of 20,000 random operations: same contents in the same order, same bytes,
    /// bytes ≤ limit (each shard ≤ its limit).
    fn randomized_workload(shards: usize) {
        const LIMIT: u64 = 64 * 1024;
        const MAX_FILE: u64 = 8 * 1024;
        const DEPLOYMENTS: u64 = 5;
        const PATHS: u64 = 40;
        let cache = SiteCache::with_shards(LIMIT, MAX_FILE, shards);
        assert_eq!(cache.shard_count(), shards);

        let mut pinned_originals = Vec::new();
        for i in 0..6u8 {
            let bytes: Vec<u8> = (0..3000 + usize::from(i) * 777)
                .map(|j| (j as u8) ^ i)
                .collect();
            let path = format!("/admin/asset{i}.js");
            let f = CachedFile::from_bytes(bytes.clone().into(), "text/javascript");
            cache.pin(&path, Arc::new(f));
            pinned_originals.push((path, bytes));
        }
        let pinned_before = cache.stats();

        // Model: per shard, most recently used first.
        type Entry = (CacheKey, Arc<CachedFile>, u64);
        let mut model: Vec<Vec<Entry>> = vec![Vec::new(); shards];
        let limits: Vec<u64> = cache.shards.iter().map(|s| s.limit).collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut inserted, mut rejected, mut evicted, mut hits, mut misses) = (0, 0, 0, 0, 0);
        for op in 0..20_000u32 {
            let d = rng.below(DEPLOYMENTS) as i64;
            let p = rng.below(PATHS);
            let path = format!("/dir{}/{}{}", p % 3, "f".repeat((p % 7) as usize), p);
            let si = cache.shard_index(d, &path);
            let m = &mut model[si];
            let roll = rng.below(1000);
            if roll < 450 {
                let got = if roll.is_multiple_of(2) {
                    cache.get(&key(d, &path))
                } else {
                    cache.get_path(d, &path)
                };
                let pos = m
                    .iter()
                    .position(|e| e.0.deployment == d && *e.0.path == *path);
                match (got, pos) {
                    (Some(f), Some(i)) => {
                        let e = m.remove(i);
                        assert!(Arc::ptr_eq(&f, &e.1), "op {op}: wrong file");
                        m.insert(0, e);
                        hits += 1;
                    }
                    (None, None) => misses += 1,
                    (got, pos) => panic!("op {op}: cache {:?} vs model {pos:?}", got.is_some()),
                }
            } else if roll < 980 {
                let len = rng.below(MAX_FILE + MAX_FILE / 4 + 1) as usize;
                let f = file(len, (op % 251) as u8);
                let k = key(d, &path);
                let w = entry_weight(&path, &f);
                let expect = len as u64 <= MAX_FILE && w <= limits[si];
                assert_eq!(cache.insert(k.clone(), Arc::clone(&f)), expect, "op {op}");
                if expect {
                    m.retain(|e| e.0 != k);
                    while m.iter().map(|e| e.2).sum::<u64>() + w > limits[si] {
                        m.pop();
                        evicted += 1;
                    }
                    m.insert(0, (k, f, w));
                    inserted += 1;
                } else {
                    rejected += 1;
                }
            } else if roll < 998 {
                let before: usize = model.iter().map(Vec::len).sum();
                for m in &mut model {
                    m.retain(|e| e.0.deployment != d);
                }
                let after: usize = model.iter().map(Vec::len).sum();
                assert_eq!(cache.invalidate_deployment(d), before - after, "op {op}");
            } else {
                cache.clear();
                model.iter_mut().for_each(Vec::clear);
            }

            let used = cache.check_invariants();
            assert!(used <= LIMIT);
            let expected: u64 = model.iter().flatten().map(|e| e.2).sum();
            assert_eq!(used, expected, "op {op}");
            for (snap, m) in cache.shard_snapshots().iter().zip(&model) {
                assert_eq!(snap.len(), m.len(), "op {op}");
                for (s, e) in snap.iter().zip(m) {
                    assert_eq!(
                        (s.0, s.1.as_str()),
                        (e.0.deployment, &*e.0.path),
                        "op {op}: order"
                    );
                }
            }
        }

        let s = cache.stats();
        assert_eq!(
            (
                s.inserts,
                s.rejected_too_large,
                s.evictions,
                s.hits,
                s.misses
            ),
            (inserted, rejected, evicted, hits, misses)
        );
        // The workload did exercise every path.
        assert!(
            inserted > 5000 && rejected > 500 && evicted > 1000 && hits > 500,
            "{s:?}"
        );
        assert_eq!(s.pinned_bytes, pinned_before.pinned_bytes);
        assert_eq!(s.pinned_entries, 6);
        for (path, bytes) in &pinned_originals {
            let f = cache.get_pinned(path).expect("pinned entry survives");
            assert_eq!(&f.body[..], &bytes[..], "{path}");
            assert_eq!(*f.etag, crate::hosting::files::etag_of(bytes));
        }
    }

    #[test]
    fn randomized_workload_matches_model_one_shard() {
        randomized_workload(1);
    }

    #[test]
    fn randomized_workload_matches_model_four_shards() {
        randomized_workload(4);
    }

    #[test]
    fn concurrent_get_insert_keeps_the_limit() {
        for shards in [1, 4] {
            concurrent_workload(shards);
        }
    }

    fn concurrent_workload(shards: usize) {
        const LIMIT: u64 = 256 * 1024;
        const MAX_FILE: u64 = 32 * 1024;
        let cache = Arc::new(SiteCache::with_shards(LIMIT, MAX_FILE, shards));
        cache.pin("/admin/index.html", file(5000, 42));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let cache = Arc::clone(&cache);
                thread::spawn(move || {
                    let mut rng = Rng(0xDEAD_BEEF ^ (t + 1).wrapping_mul(0x9E37_79B9));
                    let mut gets = 0u64;
                    for i in 0..5_000u64 {
                        let d = rng.below(3) as i64;
                        let path = format!("/p{}", rng.below(64));
                        match rng.below(10) {
                            0..=5 => {
                                gets += 1;
                                if let Some(f) = cache.get_path(d, &path) {
                                    assert!(
                                        f.body.iter().all(|&b| b == f.body[0]) || f.body.is_empty()
                                    );
                                }
                            }
                            6..=8 => {
                                let len = rng.below(MAX_FILE + 1024) as usize;
                                cache.insert(key(d, &path), file(len, (i % 200) as u8));
                            }
                            _ => {
                                if i.is_multiple_of(500) {
                                    cache.invalidate_deployment(d);
                                }
                                let s = cache.stats();
                                assert!(s.bytes_used <= s.bytes_limit);
                            }
                        }
                    }
                    gets
                })
            })
            .collect();
        let mut gets = 0;
        for t in threads {
            match t.join() {
                Ok(n) => gets += n,
                Err(_) => panic!("a worker panicked"),
            }
        }
        let used = cache.check_invariants();
        assert!(used <= LIMIT);
        let s = cache.stats();
        assert_eq!(s.hits + s.misses, gets);
        assert!(s.inserts > 0 && s.evictions > 0, "{s:?}");
        assert_eq!(
            cache.get_pinned("/admin/index.html").map(|f| f.body.len()),
            Some(5000)
        );
    }
}
