//! What each kind of thread does with a complete request: core threads route by host and
//! serve sites inline, handing admin requests over; the admin thread runs the admin API.

use super::event_loop::{AdminJob, LoopService, Mail, Mailbox};
use super::router::{route, Target};
use super::App;
use crate::admin::{AdminApi, Reply, ADMIN_BODY_LIMIT};
use crate::deploy::service as deploy;
use crate::http::conn::Service;
use crate::http::spool::SpoolPolicy;
use crate::http::{liveness, Request, Response};
use crate::platform::metrics::{observe, RouteClass};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// Body limit of public routes: nothing public takes a body yet, so this only lets a
/// small stray body be read and discarded instead of breaking the connection.
const PUBLIC_BODY_LIMIT: u64 = 64 * 1024;

/// Handles requests read by a core thread.
pub struct CoreService {
    pub app: Arc<App>,
    pub admin: Mailbox,
    pub me: Mailbox,
}

impl Service for CoreService {
    fn body_limit(&self, request: &Request) -> u64 {
        match route(&request.host, request.path(), &self.app.config.domain) {
            Target::Admin => admin_body_limit(&self.app, request),
            Target::Ingest(endpoint) => endpoint.body_limit(),
            _ => PUBLIC_BODY_LIMIT,
        }
    }

    fn spool_policy(&self, request: &Request) -> Option<SpoolPolicy> {
        let admin = route(&request.host, request.path(), &self.app.config.domain) == Target::Admin;
        (admin && deploy::is_deploy(request)).then(|| deploy::spool_policy(&self.app.deploy))
    }

    fn refuse_early(&mut self, request: &Request) -> Option<Response> {
        let admin = route(&request.host, request.path(), &self.app.config.domain) == Target::Admin;
        if admin && deploy::is_deploy(request) {
            deploy::refuse_early(&self.app.deploy, request)
        } else {
            None
        }
    }

    fn call(&mut self, request: Request, token: u64) -> Option<Response> {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.dispatch(request, token)));
        outcome.unwrap_or_else(|_| Some(handler_panicked()))
    }
}

impl CoreService {
    fn dispatch(&mut self, request: Request, token: u64) -> Option<Response> {
        let started = Instant::now();
        let response = match route(&request.host, request.path(), &self.app.config.domain) {
            Target::Health => liveness(),
            Target::Ingest(endpoint) => {
                let response = self.app.ingest.handle(endpoint, &request);
                observe(RouteClass::Ingest, started.elapsed());
                return Some(response);
            }
            Target::Site(site) => {
                let (response, page_view) = self.app.sites.serve(site, &request);
                if page_view && self.app.config.auto_pageviews {
                    self.app.ingest.record_pageview(&request, &request.host);
                }
                response
            }
            Target::UnknownHost => self.app.sites.serve_unknown_host(&request),
            Target::Admin => {
                let reply_to = self.me.clone();
                let job = AdminJob {
                    request,
                    token,
                    reply_to,
                    received: Instant::now(),
                };
                if self.admin.send(Mail::AdminJob(job)) {
                    return None;
                }
                let refused = Response::error(503, "the admin thread is not running");
                return Some(refused.header("Retry-After", "1"));
            }
        };
        observe(RouteClass::Static, started.elapsed());
        Some(response)
    }
}

impl LoopService for CoreService {
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)> {
        match mail {
            Mail::Reply { token, response } => Some((token, response)),
            Mail::AdminJob(_) => None,
        }
    }
}

/// Admin routes take small JSON bodies, but deploys take archives.
fn admin_body_limit(app: &App, request: &Request) -> u64 {
    if deploy::is_deploy(request) {
        app.config.deploy.max_upload
    } else {
        ADMIN_BODY_LIMIT
    }
}

/// The reserved admin thread: answers its own listener's requests inline and admin
/// requests handed over by core threads; also notices database changes made elsewhere.
/// Deploys go on to the deploy thread and admin writes to the writer; both answer through
/// the mailbox of the thread that owns the connection, so this thread never waits.
pub struct AdminService {
    pub api: AdminApi,
    pub app: Arc<App>,
    pub me: Mailbox,
}

impl Service for AdminService {
    fn body_limit(&self, request: &Request) -> u64 {
        admin_body_limit(&self.app, request)
    }

    fn spool_policy(&self, request: &Request) -> Option<SpoolPolicy> {
        deploy::is_deploy(request).then(|| deploy::spool_policy(&self.app.deploy))
    }

    fn refuse_early(&mut self, request: &Request) -> Option<Response> {
        if deploy::is_deploy(request) {
            deploy::refuse_early(&self.app.deploy, request)
        } else {
            None
        }
    }

    fn call(&mut self, request: Request, token: u64) -> Option<Response> {
        let me = self.me.clone();
        let reply = Box::new(move |response| {
            me.send(Mail::Reply { token, response });
        });
        if deploy::is_deploy(&request) {
            return deploy::submit(
                &self.app.deploy,
                request,
                timed_deploy(Instant::now(), reply),
            );
        }
        self.handle(&request, Instant::now(), reply)
    }
}

impl AdminService {
    /// Runs the admin API on `request`, received at `received`; answers now (`Some`) or
    /// later through `reply` once a writer job is done. Either way the latency is counted
    /// when the answer exists.
    fn handle(&mut self, request: &Request, received: Instant, reply: Reply) -> Option<Response> {
        let reply: Reply = Box::new(move |response| {
            observe(RouteClass::Admin, received.elapsed());
            reply(response);
        });
        let api = &mut self.api;
        let response = catch_unwind(AssertUnwindSafe(|| api.handle(request, reply)))
            .unwrap_or_else(|_| Some(handler_panicked()))?;
        observe(RouteClass::Admin, received.elapsed());
        Some(response)
    }
}

/// Counts a deploy's duration, from its hand-over, when its answer is sent.
fn timed_deploy(received: Instant, reply: Reply) -> Reply {
    Box::new(move |response| {
        observe(RouteClass::Deploy, received.elapsed());
        reply(response);
    })
}

/// A handler bug must cost one request, never the thread (and with it the server): the
/// panic is logged by the panic hook and the client gets a 500.
fn handler_panicked() -> Response {
    log::error!("a request handler panicked; answered 500 (see the panic message above)");
    Response::error(500, "internal error; see the server log").closing()
}

impl LoopService for AdminService {
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)> {
        let job = match mail {
            // A deploy or an admin write for this thread's own listener has finished.
            Mail::Reply { token, response } => return Some((token, response)),
            Mail::AdminJob(job) => job,
        };
        let AdminJob {
            request,
            token,
            reply_to,
            received,
        } = job;
        let send = move |response| {
            reply_to.send(Mail::Reply { token, response });
        };
        let send_now = send.clone();
        let answer = if deploy::is_deploy(&request) {
            deploy::submit(
                &self.app.deploy,
                request,
                timed_deploy(received, Box::new(send)),
            )
        } else {
            self.handle(&request, received, Box::new(send))
        };
        if let Some(response) = answer {
            send_now(response);
        }
        None
    }

    fn on_tick(&mut self) {
        self.api.refresh_sites_if_changed();
        self.api.rotate_salt_if_new_day();
        self.api.run_retention();
    }
}
