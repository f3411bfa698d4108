//! The video URLs callers have handed thumbd, by key.
//!
//! A video URL's thumbnails are served like any other thumbnail, at
//! `/v1/thumbnail/{org}/{video_url_env}/{key}.webp`, under a key derived
//! from the URL and the object's validator (ETag, else Last-Modified). So a
//! replaced video gets a new key (and new thumbnails), and the key alone
//! finds the URL again: this book, kept beside the jobs so it survives
//! restarts. With one node that is SQLite (`jobs.db_path`); with jobs in
//! PostgreSQL (`jobs.database_url`) it is a table there, shared by every
//! node, so a thumbnail URL one node handed out works on any node. Async;
//! SQLite is used from blocking threads.
//!
//! The book is bounded (`jobs.url_book_max_age_days`,
//! `jobs.url_book_max_entries`; 0 turns either off). Each entry has the
//! time it was last used: registered (the URL submitted again) or looked up
//! for a thumbnail, written at most once per [`UrlBook::touch_every`] per
//! node (so a hot key costs no write per request). An entry not used for
//! the maximum age is gone (lookups stop finding it at once; the row is
//! deleted by the next sweep), and past the maximum count the least
//! recently used go. Sweeps run from registrations, at most once a minute
//! per node: the book grows only through them, and each is two indexed
//! deletes. A removed key's thumbnails answer 404 until its URL is
//! submitted again, which registers the same key anew.
//!
//! - [`book`]: the book's policy ([`UrlBook`]): entries in memory, uses
//!   written, sweeps. The same for both tables.
//! - [`sqlite`]: its table in the SQLite job database (one node).
//! - [`postgres`]: its table in PostgreSQL (several nodes).
//!
//! How the database is reached (SQLite opened, PostgreSQL pools and URL)
//! is [`crate::db`]'s; the book creates its own tables.

pub mod book;
pub mod postgres;
pub mod sqlite;

pub use book::{Bounds, UrlBook};

use sha2::{Digest, Sha256};

use super::SourceError;

/// What a key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub url: String,
    pub validator: String,
}

/// The key of `url` (normalised) as it is now (`validator`): 32 hex digits.
pub fn key_for(url: &str, validator: &str) -> String {
    let digest = Sha256::digest(format!("{url}\n{validator}").as_bytes());
    hex::encode(&digest[..16])
}

/// A failure of the book, as a source error (the thumbnail cannot be found).
fn failed(e: impl std::fmt::Display) -> SourceError {
    SourceError::Io(format!("the video URL book: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_url_and_its_version() {
        let a = key_for("https://m.example.com/a.mp4", "\"v1\"");
        assert_eq!(a.len(), 32);
        assert_eq!(a, key_for("https://m.example.com/a.mp4", "\"v1\""));
        assert_ne!(a, key_for("https://m.example.com/a.mp4", "\"v2\""));
        assert_ne!(a, key_for("https://m.example.com/b.mp4", "\"v1\""));
    }
}
