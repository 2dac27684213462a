//! The compiled modules of sites' scripts, shared by every worker: keyed by the content hash
//! of the file and its style, bounded in bytes (least recently used goes). A syntax error is
//! kept too, so a broken deployment is not compiled again on every request.

use super::Style;
use crate::platform::sys::JsBytecode;
use clru::{CLruCache, CLruCacheConfig, WeightScale};
use parking_lot::Mutex;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The default bound of the shared cache.
pub(crate) const BYTECODE_CACHE_BYTES: usize = 8 << 20;

/// Bytes an entry costs beyond its bytecode (key, map slot, list node).
const ENTRY_OVERHEAD: usize = 128;

/// One file compiled, or why it does not compile.
#[derive(Clone)]
pub(crate) enum Compiled {
    Ok(JsBytecode),
    /// The error as the script's caller sees it: `"SyntaxError: … at line N"`.
    Failed(Arc<str>),
}

type Key = ([u8; 32], Style);

/// clru counts each entry as 1 + its scale weight, so the scale reports the cost minus one
/// and the capacity is the byte bound.
struct Weight;

impl WeightScale<Key, Compiled> for Weight {
    fn weight(&self, _key: &Key, value: &Compiled) -> usize {
        let bytes = match value {
            Compiled::Ok(bytecode) => bytecode.len(),
            Compiled::Failed(message) => message.len(),
        };
        ENTRY_OVERHEAD + bytes - 1
    }
}

pub(crate) struct BytecodeCache {
    lru: Mutex<CLruCache<Key, Compiled, std::collections::hash_map::RandomState, Weight>>,
    compiles: AtomicU64,
}

impl BytecodeCache {
    pub(crate) fn new(bytes: usize) -> BytecodeCache {
        let capacity = NonZeroUsize::new(bytes).unwrap_or(NonZeroUsize::MIN);
        BytecodeCache {
            lru: Mutex::new(CLruCache::with_config(
                CLruCacheConfig::new(capacity).with_scale(Weight),
            )),
            compiles: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, sha256: &[u8; 32], style: Style) -> Option<Compiled> {
        self.lru.lock().get(&(*sha256, style)).cloned()
    }

    /// Keeps a file just compiled (one larger than the whole bound is not kept).
    pub(crate) fn insert(&self, sha256: [u8; 32], style: Style, compiled: Compiled) {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let _ = self.lru.lock().put_with_weight((sha256, style), compiled);
    }

    /// Files compiled since the start (each miss that reached the compiler).
    #[cfg(test)]
    pub(crate) fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }
}
