//! Owner API keys. Only the sha-256 of a token is stored. A token names its key's id
//! (`fzt_<id>_<secret>`), so lookup is one hash-map probe and the hash comparison is
//! constant-time.
//!
//! Interim storage: a small tab-separated file under the data dir, rewritten atomically
//! under an advisory lock so the server and `fazt key` commands can both change it. It
//! moves into SQLite with the database layer.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const KEYS_FILE: &str = "api_keys.tsv";
const LOCK_FILE: &str = "api_keys.lock";

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_unix: u64,
    hash: [u8; 32],
}

impl ApiKey {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "scope": self.scope, "created_unix": self.created_unix,
        })
    }
}

pub struct KeyStore {
    dir: PathBuf,
    keys: HashMap<String, ApiKey>,
    /// Modification time, length and inode of the file when it was last loaded.
    loaded_stamp: Option<(SystemTime, u64, u64)>,
}

impl KeyStore {
    pub fn open(data_dir: &Path) -> io::Result<KeyStore> {
        let mut store = KeyStore {
            dir: data_dir.to_path_buf(),
            keys: HashMap::new(),
            loaded_stamp: None,
        };
        store.reload_if_changed()?;
        Ok(store)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(KEYS_FILE)
    }

    /// Whether keys were ever set up in this data dir (the file exists, even if empty).
    pub fn initialised(&self) -> bool {
        self.path().exists()
    }

    fn stamp(&self) -> io::Result<Option<(SystemTime, u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(self.path()) {
            // Every change is a rename onto the path, so the inode changes even when
            // mtime and length happen to be equal.
            Ok(m) => Ok(Some((m.modified()?, m.len(), m.ino()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Picks up changes made by `fazt key` commands while the server runs.
    fn reload_if_changed(&mut self) -> io::Result<()> {
        let stamp = self.stamp()?;
        if stamp.is_some() && stamp == self.loaded_stamp {
            return Ok(());
        }
        self.keys = match fs::read_to_string(self.path()) {
            Ok(text) => parse_keys(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        self.loaded_stamp = stamp;
        Ok(())
    }

    pub fn authenticate(&mut self, token: &str) -> Option<ApiKey> {
        if let Err(e) = self.reload_if_changed() {
            log::error!("reading API keys from {}: {e}", self.path().display());
        }
        let id = token.strip_prefix("fzt_")?.split('_').next()?;
        let key = self.keys.get(id)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        constant_time_eq(&hash, &key.hash).then(|| key.clone())
    }

    pub fn list(&mut self) -> io::Result<Vec<ApiKey>> {
        self.reload_if_changed()?;
        let mut keys: Vec<_> = self.keys.values().cloned().collect();
        keys.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(keys)
    }

    /// Creates a key and returns it with its token, which is never stored.
    pub fn create(&mut self, name: &str, scope: &str) -> io::Result<(ApiKey, String)> {
        let mut created = None;
        self.mutate(|keys| {
            let (key, token) = new_key(name, scope)?;
            keys.insert(key.id.clone(), key.clone());
            created = Some((key, token));
            Ok(())
        })?;
        created.ok_or_else(|| io::Error::other("key was not created"))
    }

    /// Removes a key; false when no key has that id.
    pub fn revoke(&mut self, id: &str) -> io::Result<bool> {
        let mut found = false;
        self.mutate(|keys| {
            found = keys.remove(id).is_some();
            Ok(())
        })?;
        Ok(found)
    }

    /// Read-modify-write of the key file under the lock, replaced atomically by rename.
    fn mutate(
        &mut self,
        change: impl FnOnce(&mut HashMap<String, ApiKey>) -> io::Result<()>,
    ) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))?;
        crate::sys::lock_exclusive(&lock)?;
        self.loaded_stamp = None;
        self.reload_if_changed()?;
        let mut keys = self.keys.clone();
        change(&mut keys)?;
        let tmp = self.dir.join(format!("{KEYS_FILE}.tmp"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)?;
        set_owner_only(&file)?;
        file.write_all(render_keys(&keys).as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, self.path())?;
        self.keys = keys;
        self.loaded_stamp = self.stamp()?;
        Ok(())
    }
}

fn set_owner_only(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

fn new_key(name: &str, scope: &str) -> io::Result<(ApiKey, String)> {
    let mut random = [0u8; 36];
    File::open("/dev/urandom")?.read_exact(&mut random)?;
    let id = hex(&random[..4]);
    let token = format!("fzt_{id}_{}", hex(&random[4..]));
    let key = ApiKey {
        id,
        name: name.to_string(),
        scope: scope.to_string(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        hash: Sha256::digest(token.as_bytes()).into(),
    };
    Ok((key, token))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Names can't contain tabs or newlines (checked on input), so the format needs no escaping.
fn render_keys(keys: &HashMap<String, ApiKey>) -> String {
    let mut rows: Vec<_> = keys.values().collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = String::from("# id\tname\tscope\tsha256\tcreated_unix\n");
    for k in rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            k.id,
            k.name,
            k.scope,
            hex(&k.hash),
            k.created_unix
        ));
    }
    out
}

fn parse_keys(text: &str) -> HashMap<String, ApiKey> {
    let mut keys = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let parsed = match fields.as_slice() {
            [id, name, scope, hash, created] => unhex32(hash).map(|hash| ApiKey {
                id: id.to_string(),
                name: name.to_string(),
                scope: scope.to_string(),
                created_unix: created.parse().unwrap_or(0),
                hash,
            }),
            _ => None,
        };
        match parsed {
            Some(key) => {
                keys.insert(key.id.clone(), key);
            }
            None => log::warn!("ignoring a malformed line in the API key file"),
        }
    }
    keys
}

/// Validates a key name given by a person: printable, no tabs or newlines, ≤ 64 chars.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(format!(
            "invalid key name '{name}': use 1 to 64 printable characters"
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box stops the compiler from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fazt-keys-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn create_authenticate_revoke() {
        let dir = temp_dir("cycle");
        let mut store = KeyStore::open(&dir).unwrap();
        assert!(!store.initialised());
        let (key, token) = store.create("laptop", "owner").unwrap();
        assert!(token.starts_with(&format!("fzt_{}_", key.id)));
        assert_eq!(
            store.authenticate(&token).map(|k| k.id),
            Some(key.id.clone())
        );
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push('x');
        assert!(store.authenticate(&tampered).is_none());
        assert!(store.authenticate("nonsense").is_none());

        // A second store (another process) sees the key, and the revocation propagates.
        let mut other = KeyStore::open(&dir).unwrap();
        assert!(other.revoke(&key.id).unwrap());
        assert!(!other.revoke(&key.id).unwrap());
        assert!(store.authenticate(&token).is_none());
        assert!(!fs::read_to_string(dir.join(KEYS_FILE))
            .unwrap()
            .contains(&token));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names() {
        assert!(validate_name("ci deploy").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\tb").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
    }
}
