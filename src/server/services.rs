//! What each kind of thread does with a complete request: core threads route by host and
//! serve sites inline, handing admin requests over; the admin thread runs the admin API.

use super::event_loop::{AdminJob, LoopService, Mail, Mailbox};
use super::router::{route, Target};
use super::{liveness, App};
use crate::admin::{AdminApi, ADMIN_BODY_LIMIT};
use crate::http::conn::Service;
use crate::http::{Request, Response};
use crate::metrics::METRICS;
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
            Target::Admin => ADMIN_BODY_LIMIT,
            Target::Ingest(endpoint) => endpoint.body_limit(),
            _ => PUBLIC_BODY_LIMIT,
        }
    }

    fn call(&mut self, request: Request, token: u64) -> Option<Response> {
        let response = match route(&request.host, request.path(), &self.app.config.domain) {
            Target::Health => liveness(),
            Target::Ingest(endpoint) => self.app.ingest.handle(endpoint, &request),
            Target::Site(site) => {
                let response = self.app.sites.serve(site, &request);
                if is_page_view(&request, &response) {
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
                Response::error(503, "the admin thread is not running").header("Retry-After", "1")
            }
        };
        Some(response)
    }
}

/// Pageviews of hosted sites are recorded automatically: a successful GET of an HTML
/// page (assets, errors and `HEAD` are not views).
fn is_page_view(request: &Request, response: &Response) -> bool {
    request.method == crate::http::Method::Get
        && response.status == 200
        && response
            .get_header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
}

impl LoopService for CoreService {
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)> {
        match mail {
            Mail::Reply { token, response } => Some((token, response)),
            Mail::AdminJob(_) => None,
        }
    }
}

/// The reserved admin thread: answers its own listener's requests inline and admin
/// requests handed over by core threads; also notices database changes made elsewhere.
pub struct AdminService {
    pub api: AdminApi,
}

impl Service for AdminService {
    fn body_limit(&self, _request: &Request) -> u64 {
        ADMIN_BODY_LIMIT
    }

    fn call(&mut self, request: Request, _token: u64) -> Option<Response> {
        let started = Instant::now();
        let response = self.api.handle(&request);
        METRICS.admin_latency.observe(started.elapsed());
        Some(response)
    }
}

impl LoopService for AdminService {
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)> {
        if let Mail::AdminJob(job) = mail {
            let response = self.api.handle(&job.request);
            METRICS.admin_latency.observe(job.received.elapsed());
            job.reply_to.send(Mail::Reply {
                token: job.token,
                response,
            });
        }
        None
    }

    fn on_tick(&mut self) {
        self.api.refresh_sites_if_changed();
        self.api.rotate_salt_if_new_day();
        self.api.run_retention();
    }
}
