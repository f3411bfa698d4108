//! The video URLs callers have handed thumbd, by key.
//!
//! A video URL's thumbnails are served like any other thumbnail, at
//! `/v1/thumbnail/{org}/{video_url_env}/{key}.webp`, under a key derived
//! from the URL and the object's validator (ETag, else Last-Modified). So a
//! replaced video gets a new key (and new thumbnails), and the key alone
//! finds the URL again: this book, kept in SQLite beside the jobs so it
//! survives restarts. Blocking; call it from blocking threads.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// What a key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub url: String,
    pub validator: String,
}

pub struct UrlBook {
    conn: Mutex<Connection>,
    /// Recently used entries: a thumbnail request should not need SQLite.
    recent: moka::sync::Cache<(String, String), Entry>,
}

/// The key of `url` (normalised) as it is now (`validator`): 32 hex digits.
pub fn key_for(url: &str, validator: &str) -> String {
    let digest = Sha256::digest(format!("{url}\n{validator}").as_bytes());
    hex::encode(&digest[..16])
}

impl UrlBook {
    /// Opens (creating if needed) the book in the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<UrlBook> {
        let conn = crate::sqlite::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS video_urls (
                org TEXT NOT NULL,
                key TEXT NOT NULL,
                url TEXT NOT NULL,
                validator TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (org, key)
             );",
        )?;
        Ok(UrlBook {
            conn: Mutex::new(conn),
            recent: moka::sync::Cache::new(10_000),
        })
    }

    /// Records that `key` of `org` stands for `entry` (before any job that
    /// names the key is accepted).
    pub fn put(&self, org: &str, key: &str, entry: &Entry) -> rusqlite::Result<()> {
        self.conn.lock().expect("not poisoned").execute(
            "INSERT OR IGNORE INTO video_urls (org, key, url, validator, created_at)
             VALUES (?1, ?2, ?3, ?4, unixepoch())",
            params![org, key, entry.url, entry.validator],
        )?;
        self.recent
            .insert((org.to_owned(), key.to_owned()), entry.clone());
        Ok(())
    }

    /// What `key` of `org` stands for, if thumbd was ever given it.
    pub fn get(&self, org: &str, key: &str) -> rusqlite::Result<Option<Entry>> {
        let id = (org.to_owned(), key.to_owned());
        if let Some(e) = self.recent.get(&id) {
            return Ok(Some(e));
        }
        let found = self
            .conn
            .lock()
            .expect("not poisoned")
            .query_row(
                "SELECT url, validator FROM video_urls WHERE org = ?1 AND key = ?2",
                params![org, key],
                |row| {
                    Ok(Entry {
                        url: row.get(0)?,
                        validator: row.get(1)?,
                    })
                },
            )
            .optional()?;
        if let Some(e) = &found {
            self.recent.insert(id, e.clone());
        }
        Ok(found)
    }
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

    #[test]
    fn entries_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let e = Entry {
            url: "https://m.example.com/a.mp4".into(),
            validator: "\"v1\"".into(),
        };
        UrlBook::open(&path).unwrap().put("o", "k1", &e).unwrap();
        let book = UrlBook::open(&path).unwrap();
        assert_eq!(book.get("o", "k1").unwrap(), Some(e));
        assert_eq!(book.get("other", "k1").unwrap(), None);
    }
}
