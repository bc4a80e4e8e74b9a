//! The database: one `sqlx::AnyPool` over SQLite or PostgreSQL, the same
//! queries for both (placeholders `$1`, which both accept; times as BIGINT
//! milliseconds; JSON as TEXT), and a small migration runner: one SQL text
//! per step for both backends, plus each backend's own text where they differ.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use crate::error::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// One schema step: `both` runs on either backend (the tables: SQLite and
/// PostgreSQL accept the same DDL), then the backend's own text (what they
/// cannot share, such as trigger syntax), in one transaction.
struct Migration {
    version: i64,
    both: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Applied in order.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        both: include_str!("../migrations/0001_init.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_audit_append_only.sql"),
        postgres: include_str!("../migrations/postgres/0001_audit_append_only.sql"),
    },
    Migration { version: 2, both: include_str!("../migrations/0002_twin_source.sql"), sqlite: "", postgres: "" },
];

impl Db {
    /// Connects (creating a SQLite file if needed) and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl { url: url.into() });
        };
        let mut options = AnyPoolOptions::new().max_connections(max_connections);
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; the busy timeout makes
            // a second process (a `vht worker` on the same file) wait, not fail.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in
                        ["PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 10000", "PRAGMA synchronous = NORMAL"]
                    {
                        sqlx::Executor::execute(&mut *conn, pragma).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        let db = Db { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            // Servers and workers starting together take turns.
            // A DO block returns no rows (the lock function returns `void`, which the Any driver cannot decode).
            sqlx::raw_sql("DO $$ BEGIN PERFORM pg_advisory_lock(7352001); END $$").execute(&mut *conn).await?;
        }
        let result = async {
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
            )
            .execute(&mut *conn)
            .await?;
            for &Migration { version, both, sqlite, postgres } in MIGRATIONS {
                let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
                if done.is_some() {
                    continue;
                }
                let own = if self.backend == Backend::Sqlite { sqlite } else { postgres };
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                for sql in [both, own].into_iter().filter(|s| !s.trim().is_empty()) {
                    sqlx::raw_sql(sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(|source| StoreError::Migration { version, source })?;
                }
                sqlx::query("INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)")
                    .bind(version)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::raw_sql("DO $$ BEGIN PERFORM pg_advisory_unlock(7352001); END $$").execute(&mut *conn).await?;
        }
        result
    }

    /// Whether the database answers and every migration is applied.
    pub async fn ready(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations").fetch_one(&self.pool).await?;
        Ok(n as usize == MIGRATIONS.len())
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?)
    }

    /// Sets a setting once; false if it was already set (so only one process
    /// does a one-time job such as loading the examples).
    pub async fn set_once(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the operating system, as hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS generator does not fail on the platforms we run on; if it ever
    // did, an all-zero id would collide at once on the primary key, not
    // silently weaken a token: tokens use `random_token`, which reports it.
    let _ = getrandom::getrandom(&mut buf);
    hex(&buf)
}

/// A fresh API token (32 random bytes), or the OS error.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut buf = [0u8; 32];
    getrandom::getrandom(&mut buf)?;
    Ok(hex(&buf))
}

/// A short random identifier for new rows.
pub fn new_id() -> String {
    random_hex(8)
}

/// RFC 3339 (UTC, milliseconds) of a time in milliseconds since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS[.fff]]Z` (UTC) to milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').or_else(|| t.strip_suffix("+00:00"))?)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let mut hms = t.split(':');
        let h: i64 = hms.next()?.parse().ok()?;
        let mi: i64 = hms.next()?.parse().ok()?;
        let sec: f64 = match hms.next() {
            Some(x) => x.parse().ok()?,
            None => 0.0,
        };
        if hms.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0.0..61.0).contains(&sec) {
            return None;
        }
        ms += h * 3_600_000 + mi * 60_000 + (sec * 1000.0).round() as i64;
    }
    Some(ms)
}

// Howard Hinnant's days <-> civil date algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_bad_dates_are_refused() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_time("2026-11-24T08:20:00Z"), Some(1_795_508_400_000));
        assert_eq!(rfc3339(1_795_508_400_123), "2026-11-24T08:20:00.123Z");
        assert_eq!(parse_time("2024-02-29"), Some(days_from_civil(2024, 2, 29) * 86_400_000));
        assert_eq!(parse_time(&rfc3339(1_700_000_000_456)), Some(1_700_000_000_456));
        for bad in ["2026-13-01", "yesterday", "2026-01-01T25:00Z", "2026-01-01T10:00+02:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
