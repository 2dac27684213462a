//! Passwords: Argon2id with OWASP's parameters, computed one at a time on the hasher
//! thread. A hash takes 19 MiB and tens of milliseconds of CPU: a flood of logins waits in
//! a short queue and is then refused (503), so it can neither take a small host's memory
//! nor stall the admin thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use crossbeam_channel::Sender;
use std::sync::OnceLock;

/// OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
/// NIST SP 800-63B: at least 8 characters; long passphrases welcome.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Refuses a password too short or too long to be one, with the reason.
pub fn check_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is too long: at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// The PHC string of `password` with a new random salt.
pub fn hash(password: &str) -> Result<String, String> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "no random numbers for the salt".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` matches the PHC string `stored` (with the parameters stored in it).
pub fn verify(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Verifies against a hash of nothing anyone knows, so that a login for an unknown
/// username costs what one for a known username does (no timing tells which exist).
pub fn verify_nobody(password: &str) {
    static NOBODY: OnceLock<String> = OnceLock::new();
    let stored = NOBODY.get_or_init(|| hash("\u{0}no such user\u{0}").unwrap_or_default());
    let _ = verify(stored, password);
}

/// The hasher thread: runs one job at a time, with at most `queue` waiting.
#[derive(Clone)]
pub struct Hasher {
    jobs: Sender<Box<dyn FnOnce() + Send>>,
}

impl Hasher {
    pub fn spawn(queue: usize) -> std::io::Result<Hasher> {
        let (jobs, inbox) = crossbeam_channel::bounded::<Box<dyn FnOnce() + Send>>(queue);
        std::thread::Builder::new()
            .name("fazt-hasher".into())
            .spawn(move || {
                for job in inbox {
                    job();
                }
            })?;
        Ok(Hasher { jobs })
    }

    /// Queues `job` (a hash or a verification and what follows it); false when the queue is
    /// full: the caller answers 503.
    pub fn try_run(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.try_send(Box::new(job)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_names_argon2id() {
        let stored = hash("correct horse battery").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify(&stored, "correct horse battery"));
        assert!(!verify(&stored, "correct horse battery "));
        assert!(!verify("not a phc string", "x"));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn new_passwords_have_a_floor_and_a_ceiling() {
        assert!(check_new("short").unwrap_err().contains("at least 8"));
        assert!(check_new("long enough").is_ok());
        assert!(check_new(&"x".repeat(2000))
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn the_hasher_runs_one_job_at_a_time_and_refuses_past_its_queue() {
        let hasher = Hasher::spawn(1).unwrap();
        let (started_tx, started) = crossbeam_channel::bounded(1);
        let (release_tx, release) = crossbeam_channel::bounded::<()>(1);
        assert!(hasher.try_run(move || {
            started_tx.send(()).unwrap();
            let _ = release.recv();
        }));
        started.recv().unwrap();
        assert!(hasher.try_run(|| {}), "one may wait");
        assert!(!hasher.try_run(|| {}), "the second waiting one is refused");
        release_tx.send(()).unwrap();
    }
}
