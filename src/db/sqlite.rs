//! The one way thumbd opens its SQLite database (jobs, the URL book, when
//! they are not in PostgreSQL): the folder made if needed, WAL with
//! synchronous commits (what is answered as accepted is on disk), and a
//! busy timeout so the connections sharing the file wait for each other
//! instead of failing. Each owner creates its own tables. Blocking.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// Opens (creating if needed) the database at `path`.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}
