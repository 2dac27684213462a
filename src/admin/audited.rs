//! The audit log of the admin API's changes: every request that changes something (keys,
//! redirects, webhooks, site deletes and rollbacks, vacuums, certificate renewals) is
//! recorded once it is answered, whether it succeeded or why not, with who sent it and
//! from where. One choke point, so a new route is audited without a line of its own.
//! Sign-ins, sign-outs, sessions and passwords record themselves (`accounts`); deploys
//! record themselves on the deploy thread.

use super::Reply;
use crate::auth::audit::{self, Entry};
use crate::auth::caller::Caller;
use crate::db::writer::WriterHandle;
use crate::http::{Method, Request, Response};
use std::sync::Arc;

/// What will be recorded once the answer is known.
pub(crate) struct Pending {
    writer: WriterHandle,
    actor: String,
    ip: String,
    action: String,
    target: Option<String>,
}

impl Pending {
    /// `Some` for a request that changes state.
    pub(crate) fn of(
        request: &Request,
        caller: &Caller,
        ip: String,
        writer: &WriterHandle,
    ) -> Option<Arc<Pending>> {
        let (action, target) = action_of(request)?;
        Some(Arc::new(Pending {
            writer: writer.clone(),
            actor: caller.actor(),
            ip,
            action,
            target,
        }))
    }

    pub(crate) fn record(&self, response: &Response) {
        let outcome = match response.status {
            200..=299 => "ok".to_string(),
            status => error_message(response).unwrap_or_else(|| format!("refused ({status})")),
        };
        let entry = Entry::now(
            &self.actor,
            &self.ip,
            &self.action,
            self.target.as_deref(),
            &outcome,
        );
        audit::later(&self.writer, entry);
    }

    /// `reply`, recording the answer on its way.
    pub(crate) fn wrap(self: &Arc<Self>, reply: Reply) -> Reply {
        let pending = Arc::clone(self);
        Box::new(move |response| {
            pending.record(&response);
            reply(response);
        })
    }
}

/// `key.create`, `redirect.delete`, `site.rollback`, ... and what it acted on: the path's
/// name segment, else the body's `name`, `slug` or `endpoint`.
fn action_of(request: &Request) -> Option<(String, Option<String>)> {
    let verb = match request.method {
        Method::Get | Method::Head | Method::Options => return None,
        Method::Post => "create",
        Method::Put | Method::Patch => "update",
        Method::Delete => "delete",
        _ => "change",
    };
    let rest = request.path().strip_prefix("/api/")?;
    let mut parts = rest.split('/');
    let collection = parts.next()?;
    let name = parts.next().filter(|n| !n.is_empty()).map(str::to_string);
    let sub = parts.next();
    // A member of the sub-resource: `/api/sites/blog/env/TOKEN`.
    let member = parts.next().filter(|m| !m.is_empty());
    let thing = collection.strip_suffix('s').unwrap_or(collection);
    let action = match (collection, sub, member) {
        ("system", _, _) => name.clone().unwrap_or_default(),
        (_, Some(step), Some(_)) => format!("{thing}.{step}.{verb}"),
        (_, Some(step), None) => format!("{thing}.{step}"),
        (_, None, _) => format!("{thing}.{verb}"),
    };
    let target = match (collection, member) {
        ("system", _) => None,
        (_, Some(member)) => name.map(|name| format!("{name}/{member}")),
        (_, None) => name.or_else(|| body_name(&request.body)),
    };
    Some((action, target))
}

fn body_name(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["name", "slug", "endpoint"]
        .iter()
        .find_map(|k| value.get(*k).and_then(|v| v.as_str()).map(str::to_string))
}

fn error_message(response: &Response) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(response.body.as_bytes()).ok()?;
    value["error"]["message"].as_str().map(str::to_string)
}
