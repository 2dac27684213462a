//! Each thread's own read-only connection (DESIGN §1): core threads and the admin thread
//! open one at start and install it here; connections never cross threads.

use rusqlite::Connection;
use std::cell::RefCell;

thread_local! {
    /// This thread's read-only connection (core threads and the admin thread each open one).
    static READER: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Gives the calling thread its read connection; connections never cross threads.
pub fn install_reader(conn: Connection) {
    READER.with(|r| *r.borrow_mut() = Some(conn));
}

/// Closes the calling thread's read connection (before the writer's final checkpoint).
// Threads drop theirs by ending; tests end a reader early.
#[cfg(test)]
pub fn drop_reader() {
    READER.with(|r| r.borrow_mut().take());
}

/// Runs `f` on this thread's read connection.
pub fn with_reader<T>(f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    READER.with(|r| match r.borrow().as_ref() {
        Some(conn) => f(conn),
        None => Err(rusqlite::Error::InvalidPath(
            "no database reader on this thread".into(),
        )),
    })
}

/// Like [`with_reader`], for queries that report the database layer's error.
pub fn read_db<T>(
    f: impl FnOnce(&Connection) -> Result<T, super::DbError>,
) -> Result<T, super::DbError> {
    READER.with(|r| match r.borrow().as_ref() {
        Some(conn) => f(conn),
        None => Err(super::DbError::Internal(
            "no database reader on this thread".into(),
        )),
    })
}
