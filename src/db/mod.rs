//! The database: how thumbd reaches the one database that holds its jobs
//! and its video URL book. Both owners use it; each creates its own tables.
//!
//! - [`sqlite`]: one node. The SQLite file at `jobs.db_path`, opened the
//!   one way (WAL, synchronous commits, a busy timeout). Blocking.
//! - [`postgres`]: several nodes sharing PostgreSQL (`jobs.database_url`):
//!   the URL (read from the config, checked, never shown with its
//!   password), connection pools, the schema lock, and errors that keep the
//!   server's reason. Async.
//!
//! Which one a node uses is [`postgres::database_url`]: PostgreSQL when the
//! config names a URL, else SQLite. Imports only `config` (and crates).

pub mod postgres;
pub mod sqlite;
