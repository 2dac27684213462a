//! Dashboard accounts (issue #13): users with Argon2id passwords ([`password`], computed
//! one at a time on the hasher thread), browser sessions ([`sessions`]), the first-run
//! setup link ([`setup`]), the login rate limit ([`guard`]) and the audit log ([`audit`]).
//! Everything here is SQL on a connection the caller picks (a reader, or a writer job) and
//! pure rules; the admin API wires it to requests.

pub mod audit;
pub mod caller;
pub mod guard;
pub mod password;
pub mod sessions;
pub mod setup;
pub mod users;
