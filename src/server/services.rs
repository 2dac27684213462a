//! What each kind of thread does with a complete request: core threads route by host and
//! serve sites inline, handing admin requests over; the admin thread runs the admin API.

use super::event_loop::{AdminJob, LoopService, Mail, Mailbox};
use super::router::{Route, Target};
use super::App;
use crate::admin::{is_api_path, AdminApi, Reply, ADMIN_BODY_LIMIT};
use crate::deploy::service as deploy;
use crate::hosting::sites::Served;
use crate::hosting::store::Script;
use crate::http::conn::Service;
use crate::http::spool::SpoolPolicy;
use crate::http::{liveness, Request, Response};
use crate::platform::metrics::{observe, RouteClass};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Body limit of public routes: nothing public takes a body yet, so this only lets a
/// small stray body be read and discarded instead of breaking the connection.
const PUBLIC_BODY_LIMIT: u64 = 64 * 1024;

/// Handles requests read by a core thread.
pub struct CoreService {
    pub app: Arc<App>,
    pub admin: Mailbox,
    pub me: Mailbox,
    /// This core thread's index (its place in the WebSocket hubs' counts).
    pub thread: usize,
    /// `--redirect-http`, read once (the plan is on every request's path).
    pub redirect_http: bool,
}

/// What a core thread decided from a request's head: its route, and for admin requests
/// whether it is a deploy (whose body is an archive, spooled to disk).
#[derive(Clone, Copy, Debug)]
pub struct CorePlan {
    route: Route,
    /// The site's script, when it answers this path (issue #14): read once from the head,
    /// so the whole request runs one deployment's code even if a deploy lands meanwhile.
    script: Option<Script>,
    deploy: bool,
    /// `--redirect-http`: answered with a redirect to https, nothing else.
    redirect: bool,
}

impl Service for CoreService {
    type Plan = CorePlan;

    #[inline]
    fn plan(&mut self, request: &Request) -> CorePlan {
        let route = Route::of(&request.host, request.path(), &self.app.config.domain);
        let deploy = route == Route::Admin && deploy::is_deploy(request);
        let redirect = self.redirect_http && !request.tls && !stays_on_http(request.path());
        let script = match route.target(&request.host, || request.path()) {
            Target::Site(site) => self.app.sites.table.script_for(site, request.path()),
            _ => None,
        };
        CorePlan {
            route,
            script,
            deploy,
            redirect,
        }
    }

    fn body_limit(&self, plan: &CorePlan, request: &Request) -> u64 {
        match plan.route.target(&request.host, || request.path()) {
            Target::Admin => admin_body_limit(&self.app, plan.deploy),
            Target::Ingest(endpoint) => endpoint.body_limit(),
            Target::Site(_) if plan.script.is_some() => self.app.config.js.body_max,
            _ => PUBLIC_BODY_LIMIT,
        }
    }

    fn spool_policy(&self, plan: &CorePlan) -> Option<SpoolPolicy> {
        plan.deploy.then(|| deploy::spool_policy(&self.app.deploy))
    }

    fn refuse_early(&mut self, plan: &CorePlan, request: &Request) -> Option<Response> {
        // Before any of the body is read: it would have to be sent again over https.
        if plan.redirect {
            return Some(to_https(&self.app, request));
        }
        refuse_deploy_early(&self.app, plan.deploy, request)
    }

    fn call(
        &mut self,
        plan: CorePlan,
        request: Request,
        token: u64,
        received: Instant,
    ) -> Option<Response> {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.dispatch(plan, request, token, received)
        }));
        outcome.unwrap_or_else(|_| Some(handler_panicked()))
    }
}

impl CoreService {
    fn dispatch(
        &mut self,
        plan: CorePlan,
        request: Request,
        token: u64,
        started: Instant,
    ) -> Option<Response> {
        // HTTP-01 validations, on any host (`--redirect-http` leaves their path alone).
        if let Some(answer) = self.app.acme_challenge(&request) {
            return Some(answer);
        }
        if plan.redirect {
            return Some(to_https(&self.app, &request));
        }
        if request.path() == super::sockets::PATH {
            if let Target::Site(site) = plan.route.target(&request.host, || request.path()) {
                if let Some(answer) =
                    super::sockets::upgrade(&self.app, &request, site, self.thread)
                {
                    return Some(answer);
                }
            }
        }
        // A script is planned only for a site's route.
        if let Some(script) = plan.script {
            if let Target::Site(site) = plan.route.target(&request.host, || request.path()) {
                let site = site.to_string();
                let apps = &self.app.apps;
                return apps.invoke(site, script, request, token, self.me.clone(), started);
            }
        }
        let response = match plan.route.target(&request.host, || request.path()) {
            Target::Health => liveness(),
            Target::Ingest(endpoint) => {
                let limits = &self.app.ingest_limits;
                let response = match limits.refuse(&endpoint, &request, started) {
                    Some(refused) => refused,
                    None => self.app.ingest.handle(endpoint, &request),
                };
                observe(RouteClass::Ingest, started.elapsed());
                return Some(response);
            }
            Target::Site(site) => {
                let pageviews = self.app.config.auto_pageviews;
                let (response, served) = self.app.sites.serve(site, &request, pageviews);
                match served {
                    Served::Page(page) => {
                        self.app
                            .ingest
                            .record_pageview(&request, &request.host, &page)
                    }
                    Served::NotFound => self.app.ingest.record_not_found(&request, &request.host),
                    _ => {}
                }
                response
            }
            Target::UnknownHost => self.app.sites.serve_unknown_host(&request),
            Target::Admin => {
                let reply_to = self.me.clone();
                let job = AdminJob {
                    request,
                    deploy: plan.deploy,
                    token,
                    reply_to,
                    received: started,
                };
                if self.admin.send(Mail::AdminJob(job)) {
                    return None;
                }
                let refused = Response::error(503, "the admin thread is not running");
                return Some(guarded(refused.header("Retry-After", "1")).no_store());
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
            // Broadcasts and hub closes are the event loop's own.
            _ => None,
        }
    }

    /// Core threads have no periodic work: their loops sleep until a socket, the mailbox
    /// or a connection deadline needs them.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }
}

/// What `--redirect-http` leaves on http: ACME HTTP-01 challenges (the CA asks over port
/// 80) and the health check (a load balancer's probe).
fn stays_on_http(path: &str) -> bool {
    path.starts_with("/.well-known/acme-challenge/") || path == "/health"
}

/// The same URL over https: 301 for GET and HEAD, 308 (method and body kept) otherwise.
fn to_https(app: &App, request: &Request) -> Response {
    let host = match request.host.as_str() {
        "" => app.config.domain.as_str(),
        host => host,
    };
    // The public URL's port when it is https, else the TLS listener's.
    let base = app.config.url_base();
    let tls_port = app.config.tls.as_ref().map(|t| t.listen.port());
    let port = match base.https {
        true => base.port,
        false => tls_port.filter(|&p| p != 443),
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = match request.target() {
        t if t.starts_with('/') => t.to_string(),
        _ if request.query().is_empty() => request.path().to_string(),
        _ => format!("{}?{}", request.path(), request.query()),
    };
    let status = match request.method {
        crate::http::Method::Get | crate::http::Method::Head => 301,
        _ => 308,
    };
    let location = format!("https://{host}{port}{path}");
    Response::new(status)
        .header("Location", location)
        .body("text/plain", crate::http::Body::Static(b"moved to https\n"))
}

/// Admin routes take small JSON bodies, but deploys take archives.
fn admin_body_limit(app: &App, deploy: bool) -> u64 {
    if deploy {
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

/// What the admin thread decided from a request's head: whether it is a deploy.
#[derive(Clone, Copy, Debug)]
pub struct AdminPlan {
    deploy: bool,
}

impl Service for AdminService {
    type Plan = AdminPlan;

    fn plan(&mut self, request: &Request) -> AdminPlan {
        AdminPlan {
            deploy: deploy::is_deploy(request),
        }
    }

    fn body_limit(&self, plan: &AdminPlan, _request: &Request) -> u64 {
        admin_body_limit(&self.app, plan.deploy)
    }

    fn spool_policy(&self, plan: &AdminPlan) -> Option<SpoolPolicy> {
        plan.deploy.then(|| deploy::spool_policy(&self.app.deploy))
    }

    fn refuse_early(&mut self, plan: &AdminPlan, request: &Request) -> Option<Response> {
        refuse_deploy_early(&self.app, plan.deploy, request)
    }

    fn call(
        &mut self,
        plan: AdminPlan,
        request: Request,
        token: u64,
        received: Instant,
    ) -> Option<Response> {
        let me = self.me.clone();
        let reply = Box::new(move |response| {
            me.send(Mail::Reply { token, response });
        });
        self.answer(request, plan.deploy, received, reply)
    }
}

impl AdminService {
    /// Answers an admin request, read here or handed over: now (`Some`) or later through
    /// `reply`. Every answer carries the admin security headers ([`guarded`]); every answer
    /// of the API, whichever way it goes, is marked `no-store`; the dashboard's pages keep
    /// their caching.
    fn answer(
        &mut self,
        request: Request,
        deploy: bool,
        received: Instant,
        reply: Reply,
    ) -> Option<Response> {
        let api = is_api_path(request.path());
        let mark = move |response: Response| {
            let response = guarded(response);
            if api {
                response.no_store()
            } else {
                response
            }
        };
        let reply: Reply = Box::new(move |response| reply(mark(response)));
        let now = if deploy {
            deploy::submit(&self.app.deploy, request, timed_deploy(received, reply))
        } else {
            self.handle(&request, received, reply)
        };
        now.map(mark)
    }

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

/// A deploy refused from its head (key, scope, rate, busy slot, disk): an API answer,
/// so never cached.
fn refuse_deploy_early(app: &App, deploy: bool, request: &Request) -> Option<Response> {
    if !deploy {
        return None;
    }
    deploy::refuse_early(&app.deploy, request).map(|r| guarded(r).no_store())
}

/// The dashboard loads only its own files (no inline script or style) and fetches only its
/// own API, so `'self'` is all it needs; nothing may frame the admin host (clickjacking),
/// and no `<base>`, plugin or foreign form target can be injected.
const ADMIN_CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                         form-action 'self'; object-src 'none'";

/// The security headers of every admin-host answer (dashboard and API, on the public
/// port and on `--admin-listen`); hosted sites set their own. `no-referrer` rather than
/// `same-origin`: nothing on the admin host reads a Referer, so the stricter policy costs
/// nothing and never leaks an admin URL (site names, stats queries), even same-origin.
fn guarded(response: Response) -> Response {
    response
        .header("Content-Security-Policy", ADMIN_CSP)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
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
            _ => return None,
        };
        let AdminJob {
            request,
            deploy: is_deploy,
            token,
            reply_to,
            received,
        } = job;
        let send = move |response| {
            reply_to.send(Mail::Reply { token, response });
        };
        let send_now = send.clone();
        if let Some(response) = self.answer(request, is_deploy, received, Box::new(send)) {
            send_now(response);
        }
        None
    }

    fn on_tick(&mut self) {
        if let Some(tls) = &self.app.tls {
            tls.on_tick();
        }
        self.api.refresh_sites_if_changed();
        self.app.close_gone_hubs();
        self.api.rotate_salt_if_new_day();
        self.api.run_retention();
        self.api.prune_accounts();
        crate::analytics::store::release_memory_after_burst();
    }
}
