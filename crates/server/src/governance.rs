//! Projects, data sets, permits: the health-data rules. Rows of a
//! restricted or sensitive data set never leave the server; aggregates do,
//! for a project holding a valid permit, with small groups suppressed; every
//! read of such data, allowed or refused, goes into the audit log.

use serde_json::{json, Value};
use sqlx::Row;

use crate::audit;
use crate::auth::{is_member, User};
use crate::db::{new_id, now_ms, rfc3339};
use crate::error::{ApiError, StoreError};
use crate::jobs::{DatasetInput, MIN_GROUP};
use crate::App;

pub const CLASSIFICATIONS: [&str; 3] = ["public", "restricted", "sensitive"];

pub struct DatasetRow {
    pub id: String,
    pub name: String,
    pub project: String,
    pub classification: String,
    pub owner: String,
    pub columns: Vec<String>,
    pub row_count: i64,
    pub created: i64,
}

pub async fn dataset(app: &App, id: &str) -> Result<Option<DatasetRow>, StoreError> {
    let r = sqlx::query(
        "SELECT id, name, project, classification, owner, columns, row_count, created FROM datasets WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&app.db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let columns: String = r.try_get("columns")?;
    Ok(Some(DatasetRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        project: r.try_get("project")?,
        classification: r.try_get("classification")?,
        owner: r.try_get("owner")?,
        columns: serde_json::from_str(&columns).map_err(|e| StoreError::Corrupt {
            table: "datasets",
            column: "columns",
            id: id.into(),
            message: e.to_string(),
        })?,
        row_count: r.try_get("row_count")?,
        created: r.try_get("created")?,
    }))
}

pub fn dataset_json(d: &DatasetRow) -> Value {
    json!({
        "id": d.id, "name": d.name, "project": d.project, "classification": d.classification,
        "owner": d.owner, "columns": d.columns, "rows": d.row_count, "created": rfc3339(d.created),
    })
}

pub async fn rows(app: &App, id: &str) -> Result<Vec<Vec<Value>>, StoreError> {
    let text: String =
        sqlx::query_scalar("SELECT rows FROM datasets WHERE id = $1").bind(id).fetch_one(&app.db.pool).await?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        table: "datasets",
        column: "rows",
        id: id.into(),
        message: e.to_string(),
    })
}

/// A permit valid now for (project, dataset): its id.
pub async fn valid_permit(app: &App, project: &str, dataset: &str) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    Ok(sqlx::query_scalar(
        "SELECT id FROM permits WHERE project = $1 AND dataset = $2 AND revoked IS NULL AND valid_from <= $3 AND valid_until > $3 \
         ORDER BY valid_until DESC LIMIT 1",
    )
    .bind(project)
    .bind(dataset)
    .bind(now)
    .fetch_optional(&app.db.pool)
    .await?)
}

/// Who may use a data set, and under which permit: public data any user;
/// restricted and sensitive data a member of a project with a valid
/// permit (the data set's own project included: its members uploaded it,
/// but they too work under a permit). Refusals are audited.
pub async fn authorise(
    app: &App,
    user: &User,
    d: &DatasetRow,
    project: Option<&str>,
    action: &str,
) -> Result<Option<String>, ApiError> {
    if d.classification == "public" {
        return Ok(None);
    }
    let object = format!("dataset:{}", d.id);
    let deny = |why: String| async move {
        audit::append(app, &user.id, &format!("{action}.denied"), &object, None).await?;
        Err::<Option<String>, ApiError>(ApiError::forbidden(why))
    };
    let candidates: Vec<String> = match project {
        Some(p) => {
            if !is_member(app, p, &user.id).await? {
                return deny(format!("you are not a member of project '{p}'")).await;
            }
            vec![p.to_string()]
        }
        None => crate::auth::projects_of(app, &user.id).await?.into_iter().map(|p| p.0).collect(),
    };
    for p in &candidates {
        if let Some(permit) = valid_permit(app, p, &d.id).await? {
            audit::append(app, &user.id, action, &format!("dataset:{}", d.id), Some(&permit)).await?;
            return Ok(Some(permit));
        }
    }
    deny(format!(
        "data set '{}' is {}: it needs a valid data permit for one of your projects (none found)",
        d.id, d.classification
    ))
    .await
}

/// Aggregates of one measure by group: n, mean, sd, min, max; groups with
/// fewer than MIN_GROUP rows are suppressed (their key is shown, no values).
pub fn aggregate(
    columns: &[String],
    rows: &[Vec<Value>],
    group_by: Option<&str>,
    measure: &str,
) -> Result<Value, String> {
    let mi = columns.iter().position(|c| c == measure).ok_or_else(|| format!("no column '{measure}'"))?;
    let gi = match group_by {
        Some(g) if !g.is_empty() => {
            Some(columns.iter().position(|c| c == g).ok_or_else(|| format!("no column '{g}'"))?)
        }
        _ => None,
    };
    let mut groups: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for r in rows {
        let key = match gi {
            Some(i) => match r.get(i) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => "(missing)".into(),
                Some(v) => v.to_string(),
            },
            None => "all".into(),
        };
        let entry = groups.entry(key).or_default();
        if let Some(x) = r.get(mi).and_then(Value::as_f64) {
            entry.push(x);
        }
    }
    let out: Vec<Value> = groups
        .into_iter()
        .map(|(k, v)| {
            let n = v.len();
            if n < MIN_GROUP {
                return json!({"group": k, "suppressed": true});
            }
            let mean = v.iter().sum::<f64>() / n as f64;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            json!({"group": k, "n": n, "mean": mean, "sd": sd, "min": min, "max": max, "suppressed": false})
        })
        .collect();
    Ok(json!({"measure": measure, "group_by": group_by, "min_group": MIN_GROUP, "groups": out}))
}

/// Parses uploaded rows: CSV text (a header line, then values; numbers
/// become numbers) or JSON (an array of objects or `{columns, rows}`).
pub fn parse_rows(body: &[u8], json_body: bool) -> Result<(Vec<String>, Vec<Vec<Value>>), String> {
    if json_body {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        if let (Some(cols), Some(rows)) =
            (v.get("columns").and_then(Value::as_array), v.get("rows").and_then(Value::as_array))
        {
            let columns: Vec<String> = cols
                .iter()
                .map(|c| c.as_str().map(str::to_string).ok_or("columns must be strings"))
                .collect::<Result<_, _>>()?;
            let rows: Vec<Vec<Value>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| match r.as_array() {
                    Some(a) if a.len() == columns.len() => Ok(a.clone()),
                    _ => Err(format!("rows[{i}]: expected an array of {} values", columns.len())),
                })
                .collect::<Result<_, _>>()?;
            return Ok((columns, rows));
        }
        let items = v.as_array().ok_or("expected an array of objects or {columns, rows}")?;
        let mut columns: Vec<String> = Vec::new();
        for it in items {
            for k in it.as_object().ok_or("expected an array of objects")?.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let rows = items
            .iter()
            .map(|it| columns.iter().map(|c| it.get(c).cloned().unwrap_or(Value::Null)).collect())
            .collect();
        return Ok((columns, rows));
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("empty CSV: expected a header line")?;
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let mut rows = Vec::new();
    for (i, l) in lines.enumerate() {
        let cells: Vec<&str> = l.split(',').collect();
        if cells.len() != columns.len() {
            return Err(format!("line {}: {} values, the header has {}", i + 2, cells.len(), columns.len()));
        }
        rows.push(
            cells
                .iter()
                .map(|c| {
                    let c = c.trim();
                    match c.parse::<f64>() {
                        Ok(x) if x.is_finite() => json!(x),
                        _ if c.is_empty() => Value::Null,
                        _ => json!(c),
                    }
                })
                .collect(),
        );
    }
    Ok((columns, rows))
}

pub async fn permit_json(app: &App, id: &str) -> Result<Option<Value>, StoreError> {
    let r = sqlx::query("SELECT * FROM permits WHERE id = $1").bind(id).fetch_optional(&app.db.pool).await?;
    r.as_ref().map(permit_row).transpose()
}

pub fn permit_row(r: &sqlx::any::AnyRow) -> Result<Value, StoreError> {
    let now = now_ms();
    let from: i64 = r.try_get("valid_from")?;
    let until: i64 = r.try_get("valid_until")?;
    let revoked: Option<i64> = r.try_get("revoked")?;
    Ok(json!({
        "id": r.try_get::<String, _>("id")?,
        "project": r.try_get::<String, _>("project")?,
        "dataset": r.try_get::<String, _>("dataset")?,
        "purpose": r.try_get::<String, _>("purpose")?,
        "valid_from": rfc3339(from),
        "valid_until": rfc3339(until),
        "granted_by": r.try_get::<String, _>("granted_by")?,
        "created": rfc3339(r.try_get("created")?),
        "revoked": revoked.map(rfc3339),
        "valid": revoked.is_none() && from <= now && now < until,
    }))
}

pub async fn create_permit(
    app: &App,
    steward: &User,
    project: &str,
    dataset: &str,
    purpose: &str,
    from: i64,
    until: i64,
) -> Result<String, StoreError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO permits (id, project, dataset, purpose, valid_from, valid_until, granted_by, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(project)
    .bind(dataset)
    .bind(purpose)
    .bind(from)
    .bind(until)
    .bind(&steward.id)
    .bind(now_ms())
    .execute(&app.db.pool)
    .await?;
    audit::append(app, &steward.id, "permit.grant", &format!("dataset:{dataset} project:{project}"), Some(&id)).await?;
    Ok(id)
}

/// A job's data set: public rows as they are; restricted or sensitive rows
/// only under the run's permit, if still valid when the job starts (a
/// revoked permit stops queued jobs), and audited as a read by the worker.
pub async fn dataset_for_job(app: &App, id: &str, permit: Option<&str>, run: &str) -> Result<DatasetInput, String> {
    let d = dataset(app, id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("data set '{id}' no longer exists"))?;
    if d.classification != "public" {
        let permit = permit.ok_or("the run has no permit for its restricted data set")?;
        let still =
            valid_permit(app, &d.project_for_permit(app, permit).await?, id).await.map_err(|e| e.to_string())?;
        if still.as_deref() != Some(permit) {
            let _ = audit::append(
                app,
                "worker",
                "job.read_dataset.denied",
                &format!("dataset:{id} run:{run}"),
                Some(permit),
            )
            .await;
            return Err(format!("permit {permit} for data set '{id}' is no longer valid"));
        }
        audit::append(app, "worker", "job.read_dataset", &format!("dataset:{id} run:{run}"), Some(permit))
            .await
            .map_err(|e| e.to_string())?;
    }
    let rows = rows(app, id).await.map_err(|e| e.to_string())?;
    Ok(DatasetInput { id: d.id, classification: d.classification, columns: d.columns, rows })
}

impl DatasetRow {
    /// The project a permit was granted to.
    async fn project_for_permit(&self, app: &App, permit: &str) -> Result<String, String> {
        let p: Option<String> = sqlx::query_scalar("SELECT project FROM permits WHERE id = $1")
            .bind(permit)
            .fetch_optional(&app.db.pool)
            .await
            .map_err(|e| e.to_string())?;
        p.ok_or_else(|| format!("permit {permit} does not exist"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_groups_are_suppressed() {
        let cols = vec!["sex".to_string(), "hba1c".to_string()];
        let mut rows = Vec::new();
        for i in 0..7 {
            rows.push(vec![json!("f"), json!(40.0 + i as f64)]);
        }
        for i in 0..3 {
            rows.push(vec![json!("m"), json!(50.0 + i as f64)]);
        }
        let a = aggregate(&cols, &rows, Some("sex"), "hba1c").unwrap();
        let g = a["groups"].as_array().unwrap();
        assert_eq!(g[0]["n"], 7);
        assert_eq!(g[0]["mean"], 43.0);
        assert_eq!(g[1], json!({"group": "m", "suppressed": true}));
        assert!(aggregate(&cols, &rows, Some("age"), "hba1c").is_err());
    }

    #[test]
    fn csv_and_json_rows() {
        let (c, r) = parse_rows(b"id,k1\np1,0.5\np2,\n", false).unwrap();
        assert_eq!(c, ["id", "k1"]);
        assert_eq!(r[0], vec![json!("p1"), json!(0.5)]);
        assert_eq!(r[1][1], Value::Null);
        assert!(parse_rows(b"a,b\n1\n", false).unwrap_err().starts_with("line 2"));
        let (c, r) = parse_rows(br#"[{"a":1},{"b":2}]"#, true).unwrap();
        assert_eq!((c.len(), r[1][0].clone()), (2, Value::Null));
    }
}
