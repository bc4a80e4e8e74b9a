//! The HTTP API: the router and thin handlers over the storage modules.
//! Every handler checks who is calling before it reads the body, so a call
//! without a token is refused the same way whatever it sends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;

use crate::auth::{Caller, Role, User};
use crate::catalogue::{self, Kind};
use crate::db::{now_ms, parse_time, rfc3339};
use crate::error::ApiError;
use crate::governance::{self, CLASSIFICATIONS};
use crate::sim::SimRequest;
use crate::{audit, auth, runs, App};

type R = Result<Response, ApiError>;
type AppState = State<Arc<App>>;

const WRITERS: [Role; 4] = [Role::Admin, Role::Modeller, Role::Researcher, Role::Clinician];

/// The routes; the OpenAPI document lists the same ones (checked by a test).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/api/me", get(me))
        .route("/api/users", post(create_user))
        .route("/api/models", get(list_models).post(import_model))
        .route("/api/models/{id}", get(get_model))
        .route("/api/models/{id}/versions/{version}", get(get_version))
        .route("/api/models/{id}/versions/{version}/sbml", get(get_sbml))
        .route("/api/models/{id}/versions/{version}/omex", get(get_omex))
        .route("/api/models/{id}/versions/{version}/variables", get(get_variables))
        .route("/api/simulate", post(simulate))
        .route("/api/runs", get(list_runs).post(create_run))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/logs", get(run_logs))
        .route("/api/runs/{id}/artifacts/{name}", get(run_artifact))
        .route("/api/runs/{id}/cancel", post(cancel_run))
        .route("/api/twins", get(list_twins).post(create_twin))
        .route("/api/twins/{id}", get(get_twin))
        .route("/api/twins/{id}/predict", post(predict_twin))
        .route("/api/projects", get(list_projects).post(create_project))
        .route("/api/projects/{id}/members", post(add_member))
        .route("/api/datasets", get(list_datasets).post(create_dataset))
        .route("/api/datasets/{id}", get(get_dataset))
        .route("/api/datasets/{id}/rows", get(dataset_rows).put(upload_rows))
        .route("/api/datasets/{id}/aggregate", get(dataset_aggregate))
        .route("/api/permits", get(list_permits).post(create_permit))
        .route("/api/permits/{id}", axum::routing::delete(revoke_permit))
        .route("/api/audit", get(list_audit))
        .route("/api/audit/verify", get(verify_audit))
        .fallback(crate::ui::serve)
        .layer(DefaultBodyLimit::max(64 << 20))
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Request metrics and one log line per request.
async fn observe(State(app): AppState, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| {
        if req.uri().path().starts_with("/api/") {
            "unmatched".into()
        } else {
            "ui".into()
        }
    });
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    app.metrics.request(method.as_str(), &route, resp.status().as_u16(), secs);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = secs * 1e3, "request");
    resp
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

fn ok(v: Value) -> R {
    Ok(Json(v).into_response())
}

fn created(v: Value) -> R {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn health() -> R {
    ok(json!({"status": "ok"}))
}

async fn ready(State(app): AppState) -> R {
    match app.db.ready().await {
        Ok(true) => ok(json!({"ready": true})),
        Ok(false) => {
            Ok((StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "reason": "migrations pending"})))
                .into_response())
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Ok((StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "reason": "database unreachable"})))
                .into_response())
        }
    }
}

async fn metrics(State(app): AppState) -> R {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status").fetch_all(&app.db.pool).await?;
    let mut jobs = Vec::new();
    for r in rows {
        jobs.push((r.try_get::<String, _>("status")?, r.try_get::<i64, _>("n")?));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render(&jobs)).into_response())
}

async fn openapi() -> R {
    Ok(([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response())
}

async fn me(State(app): AppState, caller: Caller) -> R {
    let u = caller.user()?;
    let projects: Vec<Value> =
        auth::projects_of(&app, &u.id).await?.into_iter().map(|(id, name)| json!({"id": id, "name": name})).collect();
    ok(json!({"user": {"id": u.id, "name": u.name, "role": u.role}, "roles": [u.role], "projects": projects}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: String,
}

async fn create_user(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let admin = caller.require(&[Role::Admin])?;
    let b: NewUser = body(&bytes)?;
    let role = Role::parse(&b.role).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "role '{}' is not one of {}",
            b.role,
            Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    if b.name.trim().is_empty() {
        return Err(ApiError::unprocessable("name must not be empty"));
    }
    let (id, token) = auth::create_user(&app, b.name.trim(), role, None).await.map_err(|e| match e {
        auth::CreateUserError::Exists(_) => ApiError::conflict(e.to_string()),
        other => ApiError::internal(other),
    })?;
    audit::append(&app, &admin.id, "user.create", &format!("user:{id} role:{}", role.as_str()), None).await?;
    created(json!({"id": id, "name": b.name.trim(), "role": role, "token": token}))
}

// ---- catalogue ----

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_models(State(app): AppState, caller: Caller, Query(q): Query<ListQuery>) -> R {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let offset = q.offset.unwrap_or(0).max(0);
    let (items, total) =
        catalogue::search(&app, q.q.as_deref().unwrap_or(""), caller.id(), caller.is_admin(), limit, offset).await?;
    ok(json!({"items": items, "total": total, "limit": limit, "offset": offset}))
}

#[derive(Deserialize)]
struct ImportQuery {
    kind: Option<String>,
    model: Option<String>,
    visibility: Option<String>,
    name: Option<String>,
}

async fn import_model(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<ImportQuery>,
    bytes: Bytes,
) -> R {
    let user = caller.require(&[Role::Admin, Role::Modeller])?;
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let is_zip = bytes.starts_with(b"PK\x03\x04");
    let kind = match q.kind.as_deref() {
        Some("petab") => Kind::Petab,
        Some("omex") => Kind::Omex,
        Some("sbml") => Kind::Sbml,
        Some(other) => return Err(ApiError::bad_request(format!("kind '{other}': use sbml, omex or petab"))),
        None if ctype.contains("zip") || ctype.contains("omex") || is_zip => Kind::Omex,
        None => Kind::Sbml,
    };
    let visibility = q.visibility.as_deref().unwrap_or("public");
    if !matches!(visibility, "public" | "private") {
        return Err(ApiError::bad_request(format!("visibility '{visibility}': use public or private")));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request body is empty: send the SBML, OMEX or zipped PEtab file"));
    }
    let file = q.name.clone().unwrap_or_else(|| {
        format!(
            "upload.{}",
            match kind {
                Kind::Sbml => "xml",
                Kind::Omex => "omex",
                Kind::Petab => "zip",
            }
        )
    });
    let r = catalogue::import(
        &app,
        catalogue::ImportRequest {
            bytes: &bytes,
            kind,
            file: &file,
            model: q.model.as_deref(),
            visibility,
            owner: &user.id,
        },
    )
    .await?;
    if r.created {
        audit::append(&app, &user.id, "model.import", &format!("model:{} version:{}", r.id, r.version), None).await?;
        created(json!({"id": r.id, "version": r.version, "created": true}))
    } else {
        ok(json!({"id": r.id, "version": r.version, "created": false}))
    }
}

async fn get_model(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let row = catalogue::readable_model(&app, &id, caller.id(), caller.is_admin()).await?;
    let mut v = catalogue::summary_json(&row)?;
    v["versions"] = json!(catalogue::versions(&app, &id).await?);
    v["evidence"] = json!(catalogue::evidence(&app, &id).await?);
    ok(v)
}

async fn version_of(app: &App, caller: &Caller, id: &str, version: &str) -> Result<catalogue::Version, ApiError> {
    catalogue::readable_model(app, id, caller.id(), caller.is_admin()).await?;
    catalogue::version(app, id, version).await
}

async fn get_version(State(app): AppState, caller: Caller, Path((id, version)): Path<(String, String)>) -> R {
    let v = version_of(&app, &caller, &id, &version).await?;
    ok(catalogue::version_json(&v))
}

async fn get_sbml(State(app): AppState, caller: Caller, Path((id, version)): Path<(String, String)>) -> R {
    let v = version_of(&app, &caller, &id, &version).await?;
    Ok(([(header::CONTENT_TYPE, "application/sbml+xml")], v.sbml).into_response())
}

async fn get_omex(State(app): AppState, caller: Caller, Path((id, version)): Path<(String, String)>) -> R {
    let row = catalogue::readable_model(&app, &id, caller.id(), caller.is_admin()).await?;
    let v = catalogue::version(&app, &id, &version).await?;
    let m: crate::meta::Metadata = serde_json::from_value(v.metadata["metadata"].clone()).unwrap_or_default();
    let name: String = row.try_get("name")?;
    let created = rfc3339(v.created);
    let info = crate::omex::ExportInfo {
        model_id: &id,
        version: &v.hash,
        name: &name,
        description: &m.description,
        authors: &m.authors,
        annotations: &m.annotations,
        license: m.license.as_deref(),
        created: &created,
    };
    let bytes = crate::omex::write(&v.sbml, &info).map_err(ApiError::internal)?;
    let disposition = format!("attachment; filename=\"{id}-{}.omex\"", &v.hash[..12]);
    Ok(([(header::CONTENT_TYPE, "application/omex".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

async fn compiled(app: &Arc<App>, v: &catalogue::Version) -> Result<Arc<crate::sim::Compiled>, ApiError> {
    let (app2, hash, sbml) = (app.clone(), v.hash.clone(), v.sbml.clone());
    tokio::task::spawn_blocking(move || app2.sims.get(&hash, &sbml))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unprocessable(e.to_string()))
}

async fn get_variables(State(app): AppState, caller: Caller, Path((id, version)): Path<(String, String)>) -> R {
    let v = version_of(&app, &caller, &id, &version).await?;
    let c = compiled(&app, &v).await?;
    let out = tokio::task::spawn_blocking(move || crate::sim::variables(&c)).await.map_err(ApiError::internal)?;
    ok(out.map_err(|e| ApiError::unprocessable(e.to_string()))?)
}

async fn simulate(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let req: SimRequest = body(&bytes)?;
    let v = version_of(&app, &caller, &req.model, &req.version).await?;
    let c = compiled(&app, &v).await?;
    let (max_points, max_secs) = (app.config.simulate_max_points, app.config.simulate_max_secs);
    let out = tokio::task::spawn_blocking(move || crate::sim::simulate(&c, &req, max_points, max_secs))
        .await
        .map_err(ApiError::internal)?;
    ok(out.map_err(|e| ApiError::unprocessable(e.to_string()))?)
}

// ---- runs ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRun {
    kind: String,
    model: String,
    #[serde(default = "latest")]
    version: String,
    #[serde(default)]
    params: Value,
    dataset: Option<String>,
    project: Option<String>,
}
fn latest() -> String {
    "latest".into()
}

async fn create_run(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let user = caller.require(&WRITERS)?;
    let b: NewRun = body(&bytes)?;
    if !matches!(b.kind.as_str(), "simulate" | "fit" | "trial" | "twin") {
        return Err(ApiError::unprocessable(format!("kind '{}': use simulate, fit, trial or twin", b.kind)));
    }
    if !(b.params.is_object() || b.params.is_null()) {
        return Err(ApiError::unprocessable("params must be an object"));
    }
    let v = version_of(&app, &caller, &b.model, &b.version).await?;
    if b.kind == "fit" && v.kind != "petab" {
        return Err(ApiError::unprocessable(format!(
            "model '{}' version {} is not a PEtab problem: a fit needs one (import with ?kind=petab)",
            b.model, v.hash
        )));
    }
    if let Some(p) = &b.project {
        if !auth::is_member(&app, p, &user.id).await? && user.role != Role::Admin {
            return Err(ApiError::forbidden(format!("you are not a member of project '{p}'")));
        }
    }
    let mut permit = None;
    let mut project = b.project.clone();
    if let Some(d) = &b.dataset {
        if b.kind != "simulate" {
            return Err(ApiError::unprocessable("only simulate runs take a data set (one patient per row)"));
        }
        let ds =
            governance::dataset(&app, d).await?.ok_or_else(|| ApiError::not_found(format_args!("data set '{d}'")))?;
        permit = governance::authorise(&app, user, &ds, b.project.as_deref(), "job.submit").await?;
        if let Some(pm) = &permit {
            if project.is_none() {
                project = sqlx::query_scalar("SELECT project FROM permits WHERE id = $1")
                    .bind(pm)
                    .fetch_optional(&app.db.pool)
                    .await?;
            }
        }
    }
    let params = if b.params.is_null() { json!({}) } else { b.params.clone() };
    let id = runs::insert(
        &app,
        runs::NewRun {
            kind: &b.kind,
            model: &b.model,
            version: &v.hash,
            params: &params,
            dataset: b.dataset.as_deref(),
            project: project.as_deref(),
            permit: permit.as_deref(),
            owner: &user.id,
        },
    )
    .await?;
    if permit.is_some() {
        audit::append(
            &app,
            &user.id,
            "job.create",
            &format!("run:{id} dataset:{}", b.dataset.as_deref().unwrap_or("")),
            permit.as_deref(),
        )
        .await?;
    }
    created(json!({"id": id, "status": "queued"}))
}

/// A run the caller may see: their own, any run outside a project, runs of
/// their projects; admins see all.
async fn readable_run(app: &App, user: &User, id: &str) -> Result<sqlx::any::AnyRow, ApiError> {
    let r = sqlx::query(&format!("SELECT {} FROM runs WHERE id = $1", runs::RUN_COLUMNS))
        .bind(id)
        .fetch_optional(&app.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("run '{id}'")))?;
    let owner: String = r.try_get("owner")?;
    let project: Option<String> = r.try_get("project")?;
    let allowed = user.role == Role::Admin
        || owner == user.id
        || match &project {
            None => true,
            Some(p) => auth::is_member(app, p, &user.id).await?,
        };
    if !allowed {
        return Err(ApiError::not_found(format_args!("run '{id}'")));
    }
    Ok(r)
}

#[derive(Deserialize)]
struct RunsQuery {
    status: Option<String>,
    kind: Option<String>,
    model: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(State(app): AppState, caller: Caller, Query(q): Query<RunsQuery>) -> R {
    let user = caller.user()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = sqlx::query(&format!(
        "SELECT {} FROM runs WHERE ($1 = '' OR status = $1) AND ($2 = '' OR kind = $2) AND ($3 = '' OR model_id = $3) \
         AND ($4 = 1 OR owner = $5 OR project IS NULL OR project IN (SELECT project FROM members WHERE user_id = $5)) \
         ORDER BY created DESC LIMIT $6",
        runs::RUN_COLUMNS
    ))
    .bind(q.status.unwrap_or_default())
    .bind(q.kind.unwrap_or_default())
    .bind(q.model.unwrap_or_default())
    .bind(i64::from(user.role == Role::Admin))
    .bind(&user.id)
    .bind(limit)
    .fetch_all(&app.db.pool)
    .await?;
    let items: Vec<Value> = rows.iter().map(runs::run_json).collect::<Result<_, _>>()?;
    ok(json!({"total": items.len(), "items": items}))
}

async fn get_run(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let user = caller.user()?;
    let r = readable_run(&app, user, &id).await?;
    ok(runs::run_json(&r)?)
}

async fn run_logs(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let user = caller.user()?;
    readable_run(&app, user, &id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], runs::logs(&app, &id).await?).into_response())
}

async fn run_artifact(State(app): AppState, caller: Caller, Path((id, name)): Path<(String, String)>) -> R {
    let user = caller.user()?;
    let r = readable_run(&app, user, &id).await?;
    let artifacts: String = r.try_get("artifacts")?;
    let artifacts: Value = serde_json::from_str(&artifacts).map_err(ApiError::internal)?;
    let (path, a) = runs::artifact_path(&app, &id, &artifacts, &name)
        .ok_or_else(|| ApiError::not_found(format_args!("artifact '{name}' of run '{id}'")))?;
    if let Some(d) = r.try_get::<Option<String>, _>("dataset")? {
        let ds = governance::dataset(&app, &d).await?;
        let restricted = ds.as_ref().is_none_or(|x| x.classification != "public");
        if restricted {
            // Jobs on restricted data produce only aggregates; refuse anything
            // else should it ever be listed.
            if !(name.starts_with("aggregate") || name == "plot.svg") {
                audit::append(&app, &user.id, "run.artifact.denied", &format!("run:{id} artifact:{name}"), None)
                    .await?;
                return Err(ApiError::forbidden(
                    "only aggregate results of a run on restricted data can be downloaded",
                ));
            }
            let permit: Option<String> = r.try_get("permit")?;
            audit::append(&app, &user.id, "run.artifact.read", &format!("run:{id} artifact:{name}"), permit.as_deref())
                .await?;
        }
    }
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, a.media_type)], bytes).into_response())
}

async fn cancel_run(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let user = caller.require(&WRITERS)?;
    let r = readable_run(&app, user, &id).await?;
    let owner: String = r.try_get("owner")?;
    if owner != user.id && user.role != Role::Admin {
        return Err(ApiError::forbidden("only the run's owner or an administrator can cancel it"));
    }
    let status = runs::cancel(&app, &id).await?.unwrap_or_default();
    if matches!(status.as_str(), "succeeded" | "failed") {
        return Err(ApiError::conflict(format!("run '{id}' has already {status}")));
    }
    ok(json!({"id": id, "status": status}))
}

// ---- twins ----

fn twin_json(r: &sqlx::any::AnyRow) -> Result<Value, ApiError> {
    let parse = |c: &str| -> Result<Value, ApiError> {
        let s: String = r.try_get(c)?;
        serde_json::from_str(&s).map_err(ApiError::internal)
    };
    Ok(json!({
        "id": r.try_get::<String, _>("id")?,
        "name": r.try_get::<String, _>("name")?,
        "model": r.try_get::<String, _>("model_id")?,
        "version": r.try_get::<String, _>("version")?,
        "parameters": parse("parameters")?,
        "uncertainty": parse("uncertainty")?,
        "provenance": parse("provenance")?,
        "owner": r.try_get::<String, _>("owner")?,
        "project": r.try_get::<Option<String>, _>("project")?,
        "created": rfc3339(r.try_get("created")?),
        "source": r.try_get::<Option<String>, _>("source")?.unwrap_or_else(|| "api".into()),
        "run": r.try_get::<Option<String>, _>("run_id")?,
    }))
}

async fn readable_twin(app: &App, user: &User, id: &str) -> Result<sqlx::any::AnyRow, ApiError> {
    let r = sqlx::query("SELECT * FROM twins WHERE id = $1")
        .bind(id)
        .fetch_optional(&app.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("twin '{id}'")))?;
    let project: Option<String> = r.try_get("project")?;
    let owner: String = r.try_get("owner")?;
    let ok = user.role == Role::Admin
        || owner == user.id
        || match &project {
            None => true,
            Some(p) => auth::is_member(app, p, &user.id).await?,
        };
    if !ok {
        return Err(ApiError::not_found(format_args!("twin '{id}'")));
    }
    Ok(r)
}

async fn list_twins(State(app): AppState, caller: Caller) -> R {
    let user = caller.user()?;
    let rows = sqlx::query(
        "SELECT * FROM twins WHERE $1 = 1 OR owner = $2 OR project IS NULL OR project IN (SELECT project FROM members WHERE user_id = $2) \
         ORDER BY created DESC",
    )
    .bind(i64::from(user.role == Role::Admin))
    .bind(&user.id)
    .fetch_all(&app.db.pool)
    .await?;
    let items: Vec<Value> = rows.iter().map(twin_json).collect::<Result<_, _>>()?;
    ok(json!({"total": items.len(), "items": items}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTwin {
    name: String,
    model: String,
    #[serde(default = "latest")]
    version: String,
    parameters: HashMap<String, f64>,
    #[serde(default)]
    uncertainty: HashMap<String, f64>,
    #[serde(default)]
    provenance: Value,
    project: Option<String>,
}

async fn create_twin(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let user = caller.require(&WRITERS)?;
    let b: NewTwin = body(&bytes)?;
    let v = version_of(&app, &caller, &b.model, &b.version).await?;
    let c = compiled(&app, &v).await?;
    crate::sim::overrides(&c.sim.model, &b.parameters)
        .map_err(|e| ApiError::unprocessable(format!("parameters: {e}")))?;
    for (k, sd) in &b.uncertainty {
        if !(b.parameters.contains_key(k) && sd.is_finite() && *sd >= 0.0) {
            return Err(ApiError::unprocessable(format!(
                "uncertainty.{k}: must be a fitted parameter with a standard deviation >= 0"
            )));
        }
    }
    if let Some(p) = &b.project {
        if !auth::is_member(&app, p, &user.id).await? {
            return Err(ApiError::forbidden(format!("you are not a member of project '{p}'")));
        }
    }
    let id = crate::db::new_id();
    sqlx::query(
        "INSERT INTO twins (id, name, model_id, version, parameters, uncertainty, provenance, owner, project, created) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(&b.name)
    .bind(&b.model)
    .bind(&v.hash)
    .bind(json!(b.parameters).to_string())
    .bind(json!(b.uncertainty).to_string())
    .bind(b.provenance.to_string())
    .bind(&user.id)
    .bind(&b.project)
    .bind(now_ms())
    .execute(&app.db.pool)
    .await?;
    created(json!({"id": id}))
}

async fn get_twin(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let user = caller.user()?;
    let r = readable_twin(&app, user, &id).await?;
    ok(twin_json(&r)?)
}

async fn predict_twin(State(app): AppState, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> R {
    let user = caller.user()?;
    let r = readable_twin(&app, user, &id).await?;
    let req: crate::twins::PredictRequest = body(&bytes)?;
    if let Some(dir) = r.try_get::<Option<String>, _>("twin_dir")? {
        // A twin made by vht-twin predicts with its own dose history, noise
        // model and posterior draws.
        let dir = app.config.data_dir.join(dir);
        let out = tokio::task::spawn_blocking(move || crate::twins::predict_vht_twin(&dir, &req))
            .await
            .map_err(ApiError::internal)?;
        return ok(out.map_err(ApiError::unprocessable)?);
    }
    let t = twin_json(&r)?;
    let model: String = r.try_get("model_id")?;
    let version: String = r.try_get("version")?;
    let v = catalogue::version(&app, &model, &version).await?;
    let c = compiled(&app, &v).await?;
    let params: HashMap<String, f64> = serde_json::from_value(t["parameters"].clone()).map_err(ApiError::internal)?;
    let unc: HashMap<String, f64> = serde_json::from_value(t["uncertainty"].clone()).map_err(ApiError::internal)?;
    let (mp, ms) = (app.config.simulate_max_points, app.config.simulate_max_secs);
    let out = tokio::task::spawn_blocking(move || crate::twins::predict(&c, &params, &unc, &req, mp, ms))
        .await
        .map_err(ApiError::internal)?;
    ok(out.map_err(|e| ApiError::unprocessable(e.to_string()))?)
}

// ---- governance ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProject {
    name: String,
}

async fn create_project(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let user = caller.user()?;
    let b: NewProject = body(&bytes)?;
    if b.name.trim().is_empty() {
        return Err(ApiError::unprocessable("name must not be empty"));
    }
    let id = crate::db::new_id();
    sqlx::query("INSERT INTO projects (id, name, owner, created) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(b.name.trim())
        .bind(&user.id)
        .bind(now_ms())
        .execute(&app.db.pool)
        .await?;
    sqlx::query("INSERT INTO members (project, user_id) VALUES ($1, $2)")
        .bind(&id)
        .bind(&user.id)
        .execute(&app.db.pool)
        .await?;
    audit::append(&app, &user.id, "project.create", &format!("project:{id}"), None).await?;
    created(json!({"id": id, "name": b.name.trim()}))
}

async fn list_projects(State(app): AppState, caller: Caller) -> R {
    let user = caller.user()?;
    let all = matches!(user.role, Role::Admin | Role::DataSteward);
    let rows = sqlx::query(
        "SELECT id, name, owner, created FROM projects WHERE $1 = 1 OR id IN (SELECT project FROM members WHERE user_id = $2) ORDER BY name",
    )
    .bind(i64::from(all))
    .bind(&user.id)
    .fetch_all(&app.db.pool)
    .await?;
    let mut items = Vec::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        let members: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM members WHERE project = $1 ORDER BY user_id")
                .bind(&id)
                .fetch_all(&app.db.pool)
                .await?;
        items
            .push(json!({"id": id, "name": r.try_get::<String, _>("name")?, "owner": r.try_get::<String, _>("owner")?,
            "created": rfc3339(r.try_get("created")?), "members": members}));
    }
    ok(json!({"total": items.len(), "items": items}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user: String,
}

async fn add_member(State(app): AppState, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> R {
    let user = caller.user()?;
    let owner: Option<String> =
        sqlx::query_scalar("SELECT owner FROM projects WHERE id = $1").bind(&id).fetch_optional(&app.db.pool).await?;
    let owner = owner.ok_or_else(|| ApiError::not_found(format_args!("project '{id}'")))?;
    if owner != user.id && user.role != Role::Admin {
        return Err(ApiError::forbidden("only the project's owner or an administrator adds members"));
    }
    let b: NewMember = body(&bytes)?;
    let member: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 OR name = $1")
        .bind(&b.user)
        .fetch_optional(&app.db.pool)
        .await?;
    let member = member.ok_or_else(|| ApiError::unprocessable(format!("no user '{}'", b.user)))?;
    sqlx::query("INSERT INTO members (project, user_id) VALUES ($1, $2) ON CONFLICT (project, user_id) DO NOTHING")
        .bind(&id)
        .bind(&member)
        .execute(&app.db.pool)
        .await?;
    audit::append(&app, &user.id, "project.member.add", &format!("project:{id} user:{member}"), None).await?;
    created(json!({"project": id, "user": member}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDataset {
    name: String,
    project: String,
    classification: String,
    /// Rows inline: an array of objects, or with `columns` an array of arrays.
    rows: Option<Value>,
    columns: Option<Vec<String>>,
}

async fn store_rows(app: &App, id: &str, columns: &[String], rows: &[Vec<Value>]) -> Result<(), ApiError> {
    sqlx::query("UPDATE datasets SET columns = $2, rows = $3, row_count = $4 WHERE id = $1")
        .bind(id)
        .bind(json!(columns).to_string())
        .bind(json!(rows).to_string())
        .bind(rows.len() as i64)
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

async fn create_dataset(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let user = caller.user()?;
    let b: NewDataset = body(&bytes)?;
    if !CLASSIFICATIONS.contains(&b.classification.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "classification '{}': use public, restricted or sensitive",
            b.classification
        )));
    }
    if !auth::is_member(&app, &b.project, &user.id).await? && user.role != Role::Admin {
        return Err(ApiError::forbidden(format!("you are not a member of project '{}'", b.project)));
    }
    let id = crate::db::new_id();
    sqlx::query(
        "INSERT INTO datasets (id, name, project, classification, owner, columns, rows, row_count, created) \
         VALUES ($1, $2, $3, $4, $5, '[]', '[]', 0, $6)",
    )
    .bind(&id)
    .bind(&b.name)
    .bind(&b.project)
    .bind(&b.classification)
    .bind(&user.id)
    .bind(now_ms())
    .execute(&app.db.pool)
    .await?;
    if let Some(rows) = &b.rows {
        let wrapped = match &b.columns {
            Some(c) => json!({"columns": c, "rows": rows}),
            None => rows.clone(),
        };
        let (columns, rows) = governance::parse_rows(wrapped.to_string().as_bytes(), true)
            .map_err(|e| ApiError::unprocessable(format!("rows: {e}")))?;
        store_rows(&app, &id, &columns, &rows).await?;
    }
    audit::append(&app, &user.id, "dataset.create", &format!("dataset:{id} classification:{}", b.classification), None)
        .await?;
    created(json!({"id": id}))
}

async fn upload_rows(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> R {
    let user = caller.user()?;
    let d =
        governance::dataset(&app, &id).await?.ok_or_else(|| ApiError::not_found(format_args!("data set '{id}'")))?;
    if d.owner != user.id && user.role != Role::Admin {
        return Err(ApiError::forbidden("only the data set's owner or an administrator uploads its rows"));
    }
    let json_body = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
    let (columns, rows) =
        governance::parse_rows(&bytes, json_body).map_err(|e| ApiError::unprocessable(format!("rows: {e}")))?;
    store_rows(&app, &id, &columns, &rows).await?;
    audit::append(&app, &user.id, "dataset.rows.upload", &format!("dataset:{id} rows:{}", rows.len()), None).await?;
    ok(json!({"id": id, "rows": rows.len(), "columns": columns}))
}

async fn list_datasets(State(app): AppState, caller: Caller) -> R {
    let user = caller.user()?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM datasets ORDER BY created DESC").fetch_all(&app.db.pool).await?;
    let mut items = Vec::new();
    for id in ids {
        if let Some(d) = governance::dataset(&app, &id).await? {
            items.push(governance::dataset_json(&d));
        }
    }
    let _ = user;
    ok(json!({"total": items.len(), "items": items}))
}

async fn get_dataset(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    caller.user()?;
    let d =
        governance::dataset(&app, &id).await?.ok_or_else(|| ApiError::not_found(format_args!("data set '{id}'")))?;
    ok(governance::dataset_json(&d))
}

async fn dataset_rows(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let user = caller.user()?;
    let d =
        governance::dataset(&app, &id).await?.ok_or_else(|| ApiError::not_found(format_args!("data set '{id}'")))?;
    if d.classification != "public" {
        // No permit opens this: restricted rows leave only as aggregates.
        audit::append(&app, &user.id, "dataset.rows.denied", &format!("dataset:{id}"), None).await?;
        return Err(ApiError::forbidden(format!(
            "data set '{id}' is {}: its rows never leave the server; use /aggregate under a data permit",
            d.classification
        )));
    }
    let rows = governance::rows(&app, &id).await?;
    ok(json!({"columns": d.columns, "rows": rows}))
}

#[derive(Deserialize)]
struct AggregateQuery {
    group_by: Option<String>,
    // Optional here so a call without a token gets 401, not a query error.
    measure: Option<String>,
    project: Option<String>,
}

async fn dataset_aggregate(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<AggregateQuery>,
) -> R {
    let user = caller.user()?;
    let d =
        governance::dataset(&app, &id).await?.ok_or_else(|| ApiError::not_found(format_args!("data set '{id}'")))?;
    let measure = q.measure.ok_or_else(|| ApiError::bad_request("?measure=COLUMN is required"))?;
    if !d.columns.contains(&measure) {
        return Err(ApiError::unprocessable(format!("data set '{id}' has no column '{measure}'")));
    }
    let permit = governance::authorise(&app, user, &d, q.project.as_deref(), "dataset.aggregate").await?;
    let rows = governance::rows(&app, &id).await?;
    let mut out =
        governance::aggregate(&d.columns, &rows, q.group_by.as_deref(), &measure).map_err(ApiError::unprocessable)?;
    out["dataset"] = json!(id);
    out["permit"] = json!(permit);
    ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPermit {
    project: String,
    dataset: String,
    purpose: String,
    valid_from: String,
    valid_until: String,
}

async fn create_permit(State(app): AppState, caller: Caller, bytes: Bytes) -> R {
    let steward = caller.require(&[Role::DataSteward])?;
    let b: NewPermit = body(&bytes)?;
    let from = parse_time(&b.valid_from).ok_or_else(|| {
        ApiError::unprocessable(format!("valid_from '{}': expected YYYY-MM-DD or RFC 3339 (UTC)", b.valid_from))
    })?;
    let until = parse_time(&b.valid_until).ok_or_else(|| {
        ApiError::unprocessable(format!("valid_until '{}': expected YYYY-MM-DD or RFC 3339 (UTC)", b.valid_until))
    })?;
    if until <= from {
        return Err(ApiError::unprocessable("valid_until must be after valid_from"));
    }
    if b.purpose.trim().is_empty() {
        return Err(ApiError::unprocessable("purpose must not be empty"));
    }
    if governance::dataset(&app, &b.dataset).await?.is_none() {
        return Err(ApiError::unprocessable(format!("no data set '{}'", b.dataset)));
    }
    let p: Option<String> = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
        .bind(&b.project)
        .fetch_optional(&app.db.pool)
        .await?;
    if p.is_none() {
        return Err(ApiError::unprocessable(format!("no project '{}'", b.project)));
    }
    let id = governance::create_permit(&app, steward, &b.project, &b.dataset, b.purpose.trim(), from, until).await?;
    created(governance::permit_json(&app, &id).await?.unwrap_or(json!({"id": id})))
}

async fn list_permits(State(app): AppState, caller: Caller) -> R {
    let user = caller.user()?;
    let all = matches!(user.role, Role::Admin | Role::DataSteward);
    let rows = sqlx::query(
        "SELECT * FROM permits WHERE $1 = 1 OR project IN (SELECT project FROM members WHERE user_id = $2) ORDER BY created DESC",
    )
    .bind(i64::from(all))
    .bind(&user.id)
    .fetch_all(&app.db.pool)
    .await?;
    let items: Vec<Value> = rows.iter().map(governance::permit_row).collect::<Result<_, _>>()?;
    ok(json!({"total": items.len(), "items": items}))
}

async fn revoke_permit(State(app): AppState, caller: Caller, Path(id): Path<String>) -> R {
    let steward = caller.require(&[Role::DataSteward])?;
    let r = sqlx::query("UPDATE permits SET revoked = $2 WHERE id = $1 AND revoked IS NULL")
        .bind(&id)
        .bind(now_ms())
        .execute(&app.db.pool)
        .await?;
    if r.rows_affected() == 0 {
        return match governance::permit_json(&app, &id).await? {
            None => Err(ApiError::not_found(format_args!("permit '{id}'"))),
            Some(_) => Err(ApiError::conflict(format!("permit '{id}' is already revoked"))),
        };
    }
    audit::append(&app, &steward.id, "permit.revoke", &format!("permit:{id}"), Some(&id)).await?;
    ok(governance::permit_json(&app, &id).await?.unwrap_or(json!({"id": id})))
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

async fn list_audit(State(app): AppState, caller: Caller, Query(q): Query<AuditQuery>) -> R {
    caller.require(&[Role::DataSteward, Role::Admin])?;
    let items = audit::list(&app, q.limit.unwrap_or(100).clamp(1, 10_000), q.before).await?;
    ok(json!({"items": items}))
}

async fn verify_audit(State(app): AppState, caller: Caller) -> R {
    caller.require(&[Role::DataSteward, Role::Admin])?;
    let bad = audit::verify(&app).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit").fetch_one(&app.db.pool).await?;
    ok(json!({"ok": bad.is_none(), "first_bad_seq": bad, "entries": count}))
}
