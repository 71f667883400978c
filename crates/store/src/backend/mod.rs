//! The two backends. Everything above this module speaks one API; what differs between
//! SQLite and PostgreSQL (how to connect, per-connection settings, migrations, how writes
//! are committed) lives in `sqlite` and `postgres`.

pub(crate) mod postgres;
pub(crate) mod sqlite;

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One file, one process: the embedded default.
    Sqlite,
    /// A server several carepost nodes share.
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` URLs name PostgreSQL; anything else is a SQLite file
    /// (a path, or a `sqlite:` URL).
    pub fn of_url(url: &str) -> Backend {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Several processes may share this store, so no process may assume that a row it did
    /// not write is a leftover of its own past (in-flight queue rows at start, for one).
    pub fn is_shared(self) -> bool {
        self == Backend::Postgres
    }
}
