//! The append-only audit log, hash-chained: each entry's hash is
//! SHA-256(previous hash || canonical JSON of the entry), so changing,
//! removing or reordering any entry breaks every later hash. The database
//! also refuses UPDATE and DELETE on the table (triggers in the migrations).

use serde::Serialize;
use sqlx::Row;

use crate::db::{now_ms, rfc3339, sha256_hex};
use crate::error::StoreError;
use crate::App;

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub permit: Option<String>,
}

/// The canonical form hashed: fields in this fixed order, times as integers.
fn canonical(e: &Entry) -> String {
    serde_json::json!([e.seq, e.time, e.actor, e.action, e.object, e.permit]).to_string()
}

pub fn entry_hash(prev_hash: &str, e: &Entry) -> String {
    let mut bytes = prev_hash.as_bytes().to_vec();
    bytes.extend_from_slice(canonical(e).as_bytes());
    sha256_hex(&bytes)
}

/// Appends an entry. Writers racing for the same sequence number are told
/// apart by the primary key: the loser reads the new head and tries again.
pub async fn append(
    app: &App,
    actor: &str,
    action: &str,
    object: &str,
    permit: Option<&str>,
) -> Result<i64, StoreError> {
    loop {
        let head =
            sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetch_optional(&app.db.pool).await?;
        let (seq, prev) = match head {
            Some(r) => (r.try_get::<i64, _>("seq")? + 1, r.try_get::<String, _>("hash")?),
            None => (1, GENESIS.to_string()),
        };
        let e = Entry {
            seq,
            time: now_ms(),
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            permit: permit.map(str::to_string),
        };
        let hash = entry_hash(&prev, &e);
        let r = sqlx::query(
            "INSERT INTO audit (seq, time, actor, action, object, permit, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(e.seq)
        .bind(e.time)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.object)
        .bind(&e.permit)
        .bind(&prev)
        .bind(&hash)
        .execute(&app.db.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(seq);
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Stored {
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub permit: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

fn read_row(r: &sqlx::any::AnyRow) -> Result<(Entry, String, String), sqlx::Error> {
    Ok((
        Entry {
            seq: r.try_get("seq")?,
            time: r.try_get("time")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            object: r.try_get("object")?,
            permit: r.try_get("permit")?,
        },
        r.try_get("prev_hash")?,
        r.try_get("hash")?,
    ))
}

const COLUMNS: &str = "seq, time, actor, action, object, permit, prev_hash, hash";

/// Entries newest first, at most `limit`, optionally only those after `after`.
pub async fn list(app: &App, limit: i64, before: Option<i64>) -> Result<Vec<Stored>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2"))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&app.db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            let (e, prev_hash, hash) = read_row(r)?;
            Ok(Stored {
                seq: e.seq,
                time: rfc3339(e.time),
                actor: e.actor,
                action: e.action,
                object: e.object,
                permit: e.permit,
                prev_hash,
                hash,
            })
        })
        .collect()
}

/// Walks the whole chain: the first entry whose sequence, link or hash is
/// wrong, or None when the log is intact.
pub async fn verify(app: &App) -> Result<Option<i64>, StoreError> {
    use futures_util::TryStreamExt;
    let sql = format!("SELECT {COLUMNS} FROM audit ORDER BY seq");
    let mut rows = sqlx::query(&sql).fetch(&app.db.pool);
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    while let Some(r) = rows.try_next().await? {
        let (e, prev_hash, hash) = read_row(&r)?;
        if e.seq != expected_seq || prev_hash != prev || entry_hash(&prev, &e) != hash {
            return Ok(Some(e.seq.min(expected_seq)));
        }
        prev = hash;
        expected_seq += 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_in_the_hash() {
        let e = Entry { seq: 1, time: 5, actor: "a".into(), action: "x".into(), object: "o".into(), permit: None };
        let h = entry_hash(GENESIS, &e);
        assert_eq!(h.len(), 64);
        let variants = [
            Entry { seq: 2, ..e.clone() },
            Entry { time: 6, ..e.clone() },
            Entry { actor: "b".into(), ..e.clone() },
            Entry { action: "y".into(), ..e.clone() },
            Entry { object: "p".into(), ..e.clone() },
            Entry { permit: Some("p1".into()), ..e.clone() },
        ];
        for v in &variants {
            assert_ne!(entry_hash(GENESIS, v), h, "{v:?}");
        }
        assert_ne!(entry_hash(&h, &e), h, "the previous hash is in the hash");
    }
}
