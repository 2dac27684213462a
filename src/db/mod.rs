//! SQLite connections, migrations and the single writer (being written).
