//! The model catalogue: imports (SBML, OMEX, PEtab), immutable versions
//! keyed by SHA-256 of the uploaded bytes, stable model ids, search.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Row;

use crate::db::{now_ms, rfc3339, sha256_hex};
use crate::error::{ApiError, ImportError, StoreError};
use crate::meta::{self, Metadata};
use crate::{files, App};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sbml,
    Omex,
    Petab,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sbml => "sbml",
            Kind::Omex => "omex",
            Kind::Petab => "petab",
        }
    }
}

pub struct ImportRequest<'a> {
    pub bytes: &'a [u8],
    pub kind: Kind,
    /// For messages: the upload's name.
    pub file: &'a str,
    /// Add a version to this model instead of creating one.
    pub model: Option<&'a str>,
    pub visibility: &'a str,
    pub owner: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Imported {
    pub id: String,
    pub version: String,
    /// False when identical content was already in the catalogue.
    pub created: bool,
}

/// What a parsed upload gives: the SBML text, its metadata, and for PEtab
/// the folder it was unpacked to.
struct Parsed {
    sbml: String,
    metadata: Metadata,
    petab_yaml: Option<String>,
}

/// The folder where a PEtab version's files live.
pub fn petab_dir(app: &App, hash: &str) -> PathBuf {
    app.config.data_dir.join("petab").join(hash)
}

pub async fn import(app: &App, req: ImportRequest<'_>) -> Result<Imported, ApiError> {
    let hash = sha256_hex(req.bytes);
    if let Some((id, _)) = version_owner(app, &hash).await? {
        return Ok(Imported { id, version: hash, created: false });
    }
    if let Some(m) = req.model {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner FROM models WHERE id = $1").bind(m).fetch_optional(&app.db.pool).await?;
        match owner {
            None => return Err(ApiError::not_found(format_args!("model '{m}'"))),
            Some(o) if o != req.owner && !is_admin(app, req.owner).await? => {
                return Err(ApiError::forbidden(format!("model '{m}' belongs to another user")))
            }
            Some(_) => {}
        }
    }
    let parsed = {
        let bytes = req.bytes.to_vec();
        let file = req.file.to_string();
        let kind = req.kind;
        let dir = petab_dir(app, &hash);
        tokio::task::spawn_blocking(move || parse(&bytes, kind, &file, &dir)).await.map_err(ApiError::internal)??
    };
    files::write_atomic(&app.config.data_dir.join("blobs").join(&hash), req.bytes).map_err(ApiError::internal)?;
    let m = &parsed.metadata;
    let now = now_ms();
    let tags = m.tags();
    let authors: Vec<&str> = m.authors.iter().map(|a| a.name.as_str()).collect();
    let name = m.name.clone().or_else(|| m.sbml_id.clone()).unwrap_or_else(|| req.file.to_string());
    let search = format!(
        "{} {} {} {} {} {}",
        name,
        m.sbml_id.as_deref().unwrap_or(""),
        m.description,
        authors.join(" "),
        tags.join(" "),
        m.annotations.iter().map(|a| a.uri.as_str()).collect::<Vec<_>>().join(" ")
    )
    .to_lowercase();
    let metadata_json = json!({
        "kind": req.kind.as_str(),
        "file": req.file,
        "metadata": m,
        "petab_yaml": parsed.petab_yaml,
        "size": req.bytes.len(),
    });
    let mut tx = app.db.pool.begin().await?;
    let id = match req.model {
        Some(id) => id.to_string(),
        None => {
            let base = slug(m.sbml_id.as_deref().or(m.name.as_deref()).unwrap_or(req.file));
            let mut candidate = base.clone();
            let mut n = 1;
            loop {
                let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM models WHERE id = $1")
                    .bind(&candidate)
                    .fetch_one(&mut *tx)
                    .await?;
                if taken == 0 {
                    break candidate;
                }
                n += 1;
                candidate = format!("{base}-{n}");
            }
        }
    };
    let seq: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_versions WHERE model_id = $1")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO model_versions (model_id, hash, seq, kind, sbml, metadata, created, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(&id)
    .bind(&hash)
    .bind(seq + 1)
    .bind(req.kind.as_str())
    .bind(&parsed.sbml)
    .bind(metadata_json.to_string())
    .bind(now)
    .bind(req.owner)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // The same bytes were imported concurrently: that import won.
        tx.rollback().await?;
        let (id, _) = version_owner(app, &hash).await?.ok_or_else(|| ApiError::internal("version vanished"))?;
        return Ok(Imported { id, version: hash, created: false });
    }
    let authors_json = serde_json::to_string(&m.authors).map_err(ApiError::internal)?;
    let tags_json = serde_json::to_string(&tags).map_err(ApiError::internal)?;
    let ann_json = serde_json::to_string(&m.annotations).map_err(ApiError::internal)?;
    if seq == 0 {
        sqlx::query(
            "INSERT INTO models (id, name, description, authors, tags, annotations, license, visibility, owner, \
             latest_version, search, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&id)
        .bind(&name)
        .bind(&m.description)
        .bind(&authors_json)
        .bind(&tags_json)
        .bind(&ann_json)
        .bind(&m.license)
        .bind(req.visibility)
        .bind(req.owner)
        .bind(&hash)
        .bind(&search)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE models SET name = $2, description = $3, authors = $4, tags = $5, annotations = $6, license = $7, \
             latest_version = $8, search = $9, updated = $10 WHERE id = $1",
        )
        .bind(&id)
        .bind(&name)
        .bind(&m.description)
        .bind(&authors_json)
        .bind(&tags_json)
        .bind(&ann_json)
        .bind(&m.license)
        .bind(&hash)
        .bind(&search)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Imported { id, version: hash, created: true })
}

async fn is_admin(app: &App, user: &str) -> Result<bool, StoreError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM users WHERE id = $1").bind(user).fetch_optional(&app.db.pool).await?;
    Ok(role.as_deref() == Some("admin"))
}

/// The model holding a version with this hash: (model id, visibility).
pub async fn version_owner(app: &App, hash: &str) -> Result<Option<(String, String)>, StoreError> {
    let r = sqlx::query(
        "SELECT v.model_id, m.visibility FROM model_versions v JOIN models m ON m.id = v.model_id WHERE v.hash = $1",
    )
    .bind(hash)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(match r {
        Some(r) => Some((r.try_get("model_id")?, r.try_get("visibility")?)),
        None => None,
    })
}

/// A catalogue id from a name: lowercase letters, digits and dashes.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out: String = out.chars().take(60).collect();
    if out.is_empty() {
        "model".into()
    } else {
        out
    }
}

/// Checks that the SBML loads and compiles (the catalogue holds only models
/// that run) and reads its metadata.
fn check_sbml(sbml: &str, file: &str) -> Result<Metadata, ImportError> {
    let metadata = meta::read_sbml(sbml).map_err(|message| ImportError::NotSbml { file: file.into(), message })?;
    let (model, _) = vht_lower::load_str(sbml, None)
        .map_err(|e| ImportError::DoesNotLoad { file: file.into(), message: e.to_string() })?;
    vht_sim::Simulator::new(model, &vht_codegen::Options::default())
        .map_err(|e| ImportError::DoesNotLoad { file: file.into(), message: e.to_string() })?;
    Ok(metadata)
}

fn parse(bytes: &[u8], kind: Kind, file: &str, petab_dir: &Path) -> Result<Parsed, ImportError> {
    match kind {
        Kind::Sbml => {
            let sbml = std::str::from_utf8(bytes)
                .map_err(|e| ImportError::NotSbml { file: file.into(), message: format!("not UTF-8 text: {e}") })?;
            let metadata = check_sbml(sbml, file)?;
            Ok(Parsed { sbml: sbml.to_string(), metadata, petab_yaml: None })
        }
        Kind::Omex => {
            let c = crate::omex::read(bytes, file)?;
            check_sbml(&c.sbml, &format!("{file}:{}", c.sbml_path))?;
            Ok(Parsed { sbml: c.sbml, metadata: c.metadata, petab_yaml: None })
        }
        Kind::Petab => parse_petab(bytes, file, petab_dir),
    }
}

/// Unpacks a zipped PEtab problem into its version folder (through a
/// temporary folder renamed into place, so a half-written folder is never
/// seen) and reads it with `vht-fit`.
fn parse_petab(bytes: &[u8], file: &str, dir: &Path) -> Result<Parsed, ImportError> {
    let bad = |message: String| ImportError::BadPetab { file: file.into(), message };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ImportError::BadZip { file: file.into(), message: e.to_string() })?;
    let tmp = dir.with_extension(format!("tmp-{}", crate::db::new_id()));
    let mut yamls = Vec::new();
    let result = (|| {
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
            // enclosed_name refuses absolute paths and `..`: nothing is written outside the folder.
            let Some(rel) = entry.enclosed_name() else {
                return Err(bad(format!("entry '{}' has an unsafe path", entry.name())));
            };
            if entry.is_dir() {
                continue;
            }
            let target = tmp.join(&rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| bad(format!("{}: {e}", parent.display())))?;
            }
            let mut buf = Vec::new();
            (&mut entry).take(256 << 20).read_to_end(&mut buf).map_err(|e| bad(format!("{}: {e}", rel.display())))?;
            std::fs::write(&target, &buf).map_err(|e| bad(format!("{}: {e}", target.display())))?;
            if matches!(rel.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                yamls.push(rel);
            }
        }
        yamls.sort_by_key(|p| (p.components().count(), p.clone()));
        let Some(yaml) = yamls.first().cloned() else {
            return Err(bad("the archive has no .yaml problem file".into()));
        };
        let problem = vht_fit::read(&tmp.join(&yaml)).map_err(|e| bad(e.to_string()))?;
        let sbml =
            std::fs::read_to_string(&problem.model).map_err(|e| bad(format!("{}: {e}", problem.model.display())))?;
        let metadata = check_sbml(&sbml, &format!("{file}:{}", problem.model.display()))?;
        Ok((sbml, metadata, yaml))
    })();
    match result {
        Ok((sbml, metadata, yaml)) => {
            if dir.exists() {
                // Unpacked by an earlier attempt whose database insert did not happen.
                let _ = std::fs::remove_dir_all(&tmp);
            } else {
                if let Some(parent) = dir.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| bad(format!("{}: {e}", parent.display())))?;
                }
                std::fs::rename(&tmp, dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
            }
            Ok(Parsed { sbml, metadata, petab_yaml: Some(yaml.to_string_lossy().into_owned()) })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// A model row as the API shows it.
pub fn summary_json(r: &sqlx::any::AnyRow) -> Result<Value, StoreError> {
    let parse = |col: &'static str| -> Result<Value, StoreError> {
        let s: String = r.try_get(col)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt {
            table: "models",
            column: col,
            id: r.try_get("id").unwrap_or_default(),
            message: e.to_string(),
        })
    };
    Ok(json!({
        "id": r.try_get::<String, _>("id")?,
        "name": r.try_get::<String, _>("name")?,
        "description": r.try_get::<String, _>("description")?,
        "latest_version": r.try_get::<String, _>("latest_version")?,
        "authors": parse("authors")?,
        "tags": parse("tags")?,
        "annotations": parse("annotations")?,
        "license": r.try_get::<Option<String>, _>("license")?,
        "visibility": r.try_get::<String, _>("visibility")?,
        "owner": r.try_get::<String, _>("owner")?,
        "created": rfc3339(r.try_get("created")?),
        "updated": rfc3339(r.try_get("updated")?),
    }))
}

pub const MODEL_COLUMNS: &str =
    "id, name, description, authors, tags, annotations, license, visibility, owner, latest_version, created, updated";

/// Search: every word of `q` must occur (case-insensitively) in the model's
/// name, id, description, authors, tags or annotation URIs. Portable LIKE
/// matching: the same answers on SQLite and PostgreSQL.
pub async fn search(
    app: &App,
    q: &str,
    viewer: Option<&str>,
    admin: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Value>, i64), StoreError> {
    let mut filter = String::from("(visibility = 'public' OR owner = $1 OR $2 = 1)");
    let words: Vec<String> = q.split_whitespace().map(|w| w.to_lowercase()).collect();
    for i in 0..words.len() {
        filter.push_str(&format!(" AND search LIKE ${} ESCAPE '\\'", i + 3));
    }
    let pattern = |w: &str| format!("%{}%", w.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let count_sql = format!("SELECT COUNT(*) FROM models WHERE {filter}");
    let mut count = sqlx::query_scalar(&count_sql).bind(viewer.unwrap_or("")).bind(i64::from(admin));
    for w in &words {
        count = count.bind(pattern(w));
    }
    let total: i64 = count.fetch_one(&app.db.pool).await?;
    let n = words.len() + 3;
    let list_sql =
        format!("SELECT {MODEL_COLUMNS} FROM models WHERE {filter} ORDER BY name, id LIMIT ${n} OFFSET ${}", n + 1);
    let mut query = sqlx::query(&list_sql).bind(viewer.unwrap_or("")).bind(i64::from(admin));
    for w in &words {
        query = query.bind(pattern(w));
    }
    let rows = query.bind(limit).bind(offset).fetch_all(&app.db.pool).await?;
    let items = rows.iter().map(summary_json).collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// A model the caller may read, or 404 (a private model is not shown to exist).
pub async fn readable_model(
    app: &App,
    id: &str,
    viewer: Option<&str>,
    admin: bool,
) -> Result<sqlx::any::AnyRow, ApiError> {
    let row = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1"))
        .bind(id)
        .fetch_optional(&app.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("model '{id}'")))?;
    let visibility: String = row.try_get("visibility")?;
    let owner: String = row.try_get("owner")?;
    if visibility != "public" && !admin && viewer != Some(owner.as_str()) {
        return Err(match viewer {
            None => ApiError::unauthorized(),
            Some(_) => ApiError::not_found(format_args!("model '{id}'")),
        });
    }
    Ok(row)
}

pub struct Version {
    pub model_id: String,
    pub hash: String,
    pub seq: i64,
    pub kind: String,
    pub sbml: String,
    pub metadata: Value,
    pub created: i64,
    pub created_by: String,
}

/// A version of a model (`latest` or a content hash, or a unique prefix of one).
pub async fn version(app: &App, model: &str, version: &str) -> Result<Version, ApiError> {
    let row = if version == "latest" {
        sqlx::query(
            "SELECT v.* FROM model_versions v JOIN models m ON m.latest_version = v.hash WHERE m.id = $1 AND v.model_id = $1",
        )
        .bind(model)
        .fetch_optional(&app.db.pool)
        .await?
    } else {
        // A prefix of at least 6 hex digits; anything else names no version
        // (and must not turn into a pattern that matches every version).
        if version.len() < 6 || !version.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::not_found(format_args!("version '{version}' of model '{model}'")));
        }
        let pattern = format!("{}%", version.to_ascii_lowercase());
        let mut rows = sqlx::query("SELECT * FROM model_versions WHERE model_id = $1 AND hash LIKE $2 LIMIT 2")
            .bind(model)
            .bind(pattern)
            .fetch_all(&app.db.pool)
            .await?;
        if rows.len() > 1 {
            return Err(ApiError::bad_request(format!("version '{version}' is ambiguous: give more of the hash")));
        }
        rows.pop()
    };
    let r = row.ok_or_else(|| ApiError::not_found(format_args!("version '{version}' of model '{model}'")))?;
    let metadata: String = r.try_get("metadata")?;
    Ok(Version {
        model_id: r.try_get("model_id")?,
        hash: r.try_get("hash")?,
        seq: r.try_get("seq")?,
        kind: r.try_get("kind")?,
        sbml: r.try_get("sbml")?,
        metadata: serde_json::from_str(&metadata).map_err(ApiError::internal)?,
        created: r.try_get("created")?,
        created_by: r.try_get("created_by")?,
    })
}

pub fn version_json(v: &Version) -> Value {
    json!({
        "model": v.model_id,
        "version": v.hash,
        "number": v.seq,
        "kind": v.kind,
        "created": rfc3339(v.created),
        "created_by": v.created_by,
        "file": v.metadata.get("file"),
        "size": v.metadata.get("size"),
        "metadata": v.metadata.get("metadata"),
        "petab_yaml": v.metadata.get("petab_yaml"),
    })
}

pub async fn versions(app: &App, model: &str) -> Result<Vec<Value>, StoreError> {
    let rows = sqlx::query(
        "SELECT hash, seq, kind, created, created_by FROM model_versions WHERE model_id = $1 ORDER BY seq DESC",
    )
    .bind(model)
    .fetch_all(&app.db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(json!({
                "version": r.try_get::<String, _>("hash")?,
                "number": r.try_get::<i64, _>("seq")?,
                "kind": r.try_get::<String, _>("kind")?,
                "created": rfc3339(r.try_get("created")?),
                "created_by": r.try_get::<String, _>("created_by")?,
            }))
        })
        .collect()
}

/// Credibility evidence: the import check every version passed, then the
/// finished runs on the model (with their data sets), newest first.
pub async fn evidence(app: &App, model: &str) -> Result<Vec<Value>, StoreError> {
    let mut out = vec![json!({
        "kind": "import-check",
        "passed": true,
        "detail": "every version was read, lowered and compiled by the engine at import",
    })];
    let rows = sqlx::query(
        "SELECT id, kind, status, version, dataset, finished FROM runs WHERE model_id = $1 AND status IN ('succeeded', 'failed') \
         ORDER BY finished DESC LIMIT 50",
    )
    .bind(model)
    .fetch_all(&app.db.pool)
    .await?;
    for r in rows {
        let status: String = r.try_get("status")?;
        out.push(json!({
            "kind": format!("{}-run", r.try_get::<String, _>("kind")?),
            "passed": status == "succeeded",
            "run": r.try_get::<String, _>("id")?,
            "version": r.try_get::<Option<String>, _>("version")?,
            "dataset": r.try_get::<Option<String>, _>("dataset")?,
            "finished": r.try_get::<Option<i64>, _>("finished")?.map(rfc3339),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("BIOMD0000000012"), "biomd0000000012");
        assert_eq!(slug("Elowitz2000 - Repressilator"), "elowitz2000-repressilator");
        assert_eq!(slug("../.."), "model");
    }
}
