//! The certificate thread: keeps one certificate per name the server answers for, issued
//! over ACME and served from the TLS certificate store without a restart.
//!
//! Which names: only those the server gives it (`Names`: the domain, `admin.`, `root.` and
//! each deployed site), looked at every [`SYNC_EVERY`]. A name that appears is wanted at
//! once; one that goes (its site was deleted) is forgotten, and its certificate no longer
//! served. A Host a client makes up never reaches this thread, so it can never make fazt
//! order certificates (and burn the CA's rate limits) for random names.
//!
//! Orders block for seconds (the CA validates over the network), so they run here only,
//! never on a core or admin thread. Everything is stored through the writer; the thread
//! reads with its own connection.

use super::challenge::ChallengePolicy;
use super::client::AcmeConfig;
use super::store::{self, CertRecord};
use super::{renew_due, AcmeError, Attempt, Challenges};
use crate::db::writer::WriterHandle;
use crate::db::DbError;
use crate::http::tls::{CertInfo, CertStore};
use crate::platform::clock::unix_now;
use crate::platform::metrics::{Collector, Counter, Desc, Kind, Source};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How often the names are compared with the sites: a deployed site gets its order within
/// this (the comparison is a read of the in-memory site table).
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Names attempted before the thread looks at its commands and the sites again: one, so a
/// certificate is served as soon as its order ends, and a site deployed or deleted while
/// orders run waits for one order at most.
const ROUND: u32 = 1;

/// The names the server answers for now (lower-case, any order).
pub(crate) type Names = Box<dyn Fn() -> Vec<String> + Send>;

/// What the server starts the thread with.
pub(crate) struct ManagerSetup {
    pub config: AcmeConfig,
    pub policy: ChallengePolicy,
    pub writer: WriterHandle,
    pub reader: Connection,
    pub challenges: Arc<Challenges>,
    pub certs: Arc<CertStore>,
    pub names: Names,
}

/// What a renewal asked for by name answers with, once its attempt has ended.
pub(crate) type Renewed = Box<dyn FnOnce(Result<CertRecord, AcmeError>) + Send>;

enum Command {
    /// Attempt this name next, whatever its schedule, and report the outcome.
    Renew(String, Renewed),
    Stop,
}

/// The handle the server and the admin API keep.
#[derive(Clone)]
pub(crate) struct CertManager {
    commands: Sender<Command>,
}

impl CertManager {
    /// Attempts `name` as soon as the attempt running now (if any) ends, and calls `done`
    /// with its outcome (on the certificate thread: it must only hand it on).
    pub(crate) fn renew(&self, name: &str, done: Renewed) {
        if let Err(e) = self.commands.send(Command::Renew(name.to_string(), done)) {
            if let Command::Renew(_, done) = e.0 {
                done(Err(AcmeError::Unreachable(
                    "the certificate thread has stopped".into(),
                )));
            }
        }
    }

    /// Ends the thread after the attempt it is making, if any (at shutdown).
    pub(crate) fn stop(&self) {
        let _ = self.commands.try_send(Command::Stop);
    }
}

/// Serves the stored certificates (before returning, so a restarted server has them for
/// its first handshake), then starts the certificate thread.
pub(crate) fn spawn(setup: ManagerSetup) -> std::io::Result<CertManager> {
    // Unbounded: only the owner's `fazt certs renew` and the shutdown send, and a wake
    // that finds nothing new costs one query.
    let (commands, inbox) = crossbeam_channel::unbounded();
    let mut worker = Worker::new(setup);
    if let Err(e) = worker.start() {
        log::error!("certificates: reading the stored ones failed: {e}");
    }
    std::thread::Builder::new()
        .name("fazt-certs".into())
        .spawn(move || worker.run(&inbox))?;
    Ok(CertManager { commands })
}

struct Worker {
    setup: ManagerSetup,
    /// The names in the database, held or wanted.
    known: BTreeSet<String>,
    /// When the soonest attempt is due (`None`: no name yet, or unreadable).
    next_due: Option<i64>,
}

impl Worker {
    fn new(setup: ManagerSetup) -> Worker {
        Worker {
            setup,
            known: BTreeSet::new(),
            next_due: None,
        }
    }

    fn run(mut self, inbox: &Receiver<Command>) {
        loop {
            self.sync_names();
            if self.next_due.is_some_and(|at| at <= unix_now()) {
                self.renew_round();
            }
            let wait = match self.next_due {
                Some(at) => Duration::from_secs((at - unix_now()).max(0) as u64).min(SYNC_EVERY),
                None => SYNC_EVERY,
            };
            match inbox.recv_timeout(wait) {
                Ok(Command::Renew(name, done)) => done(self.attempt(&name)),
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Serves every stored certificate. A CA other than the one the stored account is for
    /// (staging, then production) makes every name due: the old certificates are served
    /// until their replacements are in hand.
    fn start(&mut self) -> Result<(), DbError> {
        let reader = &self.setup.reader;
        let records = store::list_certs(reader)?;
        for record in &records {
            install(&self.setup.certs, record);
        }
        self.known = records.into_iter().map(|r| r.name).collect();
        let directory = &self.setup.config.directory_url;
        if !self.known.is_empty() && store::load_account(reader, directory)?.is_none() {
            log::info!("certificates: new ACME directory {directory}; renewing every name");
            store::all_due_now(&self.setup.writer, unix_now())?;
        }
        self.refresh_next_due();
        Ok(())
    }

    /// Wants the names that appeared and forgets the ones that went.
    fn sync_names(&mut self) {
        let wanted: BTreeSet<String> = (self.setup.names)()
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        if wanted == self.known {
            return;
        }
        let now = unix_now();
        for name in wanted.difference(&self.known) {
            match store::want(&self.setup.writer, name, now) {
                Ok(()) => log::info!("certificates: {name} wanted"),
                Err(e) => log::error!("certificates: adding {name}: {e}"),
            }
        }
        for name in self.known.difference(&wanted) {
            match store::forget(&self.setup.writer, name) {
                Ok(_) => log::info!("certificates: {name} is no longer served; forgotten"),
                Err(e) => log::error!("certificates: forgetting {name}: {e}"),
            }
            self.setup.certs.remove(name);
        }
        match store::names(&self.setup.reader) {
            Ok(names) => self.known = names.into_iter().collect(),
            Err(e) => log::error!("certificates: {e}"),
        }
        self.refresh_next_due();
    }

    fn attempt_at(&self) -> Attempt<'_> {
        Attempt {
            config: &self.setup.config,
            writer: &self.setup.writer,
            reader: &self.setup.reader,
            challenges: &self.setup.challenges,
            now: unix_now(),
        }
    }

    /// Attempts the names that are due (one: see [`ROUND`]), serving each certificate
    /// obtained.
    fn renew_round(&mut self) {
        match renew_due(&self.attempt_at(), self.setup.policy, ROUND) {
            Ok(outcomes) => {
                for (name, outcome) in outcomes {
                    self.settle(&name, &outcome);
                }
            }
            Err(e) => log::error!("certificates: {e}"),
        }
        self.refresh_next_due();
    }

    /// One attempt for a known name now (`fazt certs renew`), with the challenge type its
    /// failures so far call for.
    fn attempt(&mut self, name: &str) -> Result<CertRecord, AcmeError> {
        let at = self.attempt_at();
        let record = store::load_cert(at.reader, name)?;
        let Some(record) = record else {
            return Err(AcmeError::Protocol(format!(
                "no certificate is kept for '{name}'"
            )));
        };
        let outcome = super::obtain(&at, name, self.setup.policy.kind(record.failures));
        self.settle(name, &outcome);
        self.refresh_next_due();
        outcome
    }

    /// Serves a certificate obtained, counts the order either way.
    fn settle(&self, name: &str, outcome: &Result<CertRecord, AcmeError>) {
        match outcome {
            Ok(record) => {
                ACME_STATS.ok.inc();
                install(&self.setup.certs, record);
            }
            Err(e) => {
                ACME_STATS.error.inc();
                log::warn!("certificates: {name}: {e}");
            }
        }
    }

    fn refresh_next_due(&mut self) {
        self.next_due = match store::next_due(&self.setup.reader) {
            Ok(at) => at,
            Err(e) => {
                log::error!("certificates: {e}");
                // Look again after the usual wait rather than spin.
                Some(unix_now() + SYNC_EVERY.as_secs() as i64)
            }
        };
    }
}

/// Serves a stored certificate, if the record holds one that can be read.
fn install(certs: &CertStore, record: &CertRecord) {
    if record.chain_pem.is_none() {
        return;
    }
    let served = record.certified_key().and_then(|key| {
        let info = CertInfo::of(&key.cert[0]).map_err(super::AcmeError::Crypto)?;
        Ok((key, info))
    });
    match served {
        Ok((key, info)) => {
            log::info!(
                "certificates: serving {} (issuer {}, expires {})",
                record.name,
                info.issuer.as_deref().unwrap_or("unknown"),
                crate::http::response::http_date(info.not_after.max(0) as u64)
            );
            certs.insert(&record.name, Arc::new(key), info);
        }
        Err(e) => log::error!("certificates: {e}"),
    }
}

/// Orders by outcome, for `/metrics`.
pub(crate) struct AcmeStats {
    ok: Counter,
    error: Counter,
}

pub(crate) static ACME_STATS: AcmeStats = AcmeStats {
    ok: Counter::new(),
    error: Counter::new(),
};

static ORDERS: Desc = Desc::new(
    Kind::Counter,
    "fazt_acme_orders_total",
    "acme.orders",
    "Certificate orders made over ACME, by result (ok, error)",
)
.labelled("result");

impl Source for AcmeStats {
    fn collect(&self, out: &mut Collector) {
        out.int_with(&ORDERS, "ok", self.ok.get());
        out.int_with(&ORDERS, "error", self.error.get());
    }
}
