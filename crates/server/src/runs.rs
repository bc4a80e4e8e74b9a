//! The job queue in the database and the workers that drain it.
//!
//! A worker claims a job with one guarded UPDATE (queued, or running with an
//! expired lease), keeps the lease alive with heartbeats, writes artifacts
//! into a folder of its own attempt, and records the end with one UPDATE
//! guarded by its claim token: if its claim was lost (the lease expired and
//! another worker took the job, or the job was cancelled), nothing is
//! recorded, so a job completes at most once, and a job whose worker died is
//! picked up again when its lease expires.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::watch;
use tracing::Instrument;

use crate::db::{new_id, now_ms, rfc3339};
use crate::error::StoreError;
use crate::jobs::{self, Artifact, JobInput, Outcome};
use crate::App;

pub const RUN_COLUMNS: &str =
    "id, kind, status, progress, model_id, version, params, dataset, project, permit, owner, \
     backend, created, started, finished, error, attempts, completions, cancel_requested, artifacts";

pub fn run_json(r: &sqlx::any::AnyRow) -> Result<Value, StoreError> {
    let id: String = r.try_get("id")?;
    let corrupt = |column: &'static str, e: serde_json::Error| StoreError::Corrupt {
        table: "runs",
        column,
        id: id.clone(),
        message: e.to_string(),
    };
    let params: String = r.try_get("params")?;
    let artifacts: String = r.try_get("artifacts")?;
    let artifacts: Value = serde_json::from_str(&artifacts).map_err(|e| corrupt("artifacts", e))?;
    let listed: Vec<Value> = artifacts["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| json!({"name": f["name"], "media_type": f["media_type"], "size": f["size"], "sha256": f["sha256"]}))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "id": id,
        "kind": r.try_get::<String, _>("kind")?,
        "status": r.try_get::<String, _>("status")?,
        "progress": r.try_get::<f64, _>("progress")?,
        "model": r.try_get::<Option<String>, _>("model_id")?,
        "version": r.try_get::<Option<String>, _>("version")?,
        "params": serde_json::from_str::<Value>(&params).map_err(|e| corrupt("params", e))?,
        "dataset": r.try_get::<Option<String>, _>("dataset")?,
        "project": r.try_get::<Option<String>, _>("project")?,
        "permit": r.try_get::<Option<String>, _>("permit")?,
        "owner": r.try_get::<String, _>("owner")?,
        "backend": r.try_get::<String, _>("backend")?,
        "created": rfc3339(r.try_get("created")?),
        "started": r.try_get::<Option<i64>, _>("started")?.map(rfc3339),
        "finished": r.try_get::<Option<i64>, _>("finished")?.map(rfc3339),
        "error": r.try_get::<Option<String>, _>("error")?,
        "attempts": r.try_get::<i64, _>("attempts")?,
        "completions": r.try_get::<i64, _>("completions")?,
        "cancel_requested": r.try_get::<i64, _>("cancel_requested")? != 0,
        "artifacts": listed,
    }))
}

pub struct NewRun<'a> {
    pub kind: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    pub params: &'a Value,
    pub dataset: Option<&'a str>,
    pub project: Option<&'a str>,
    pub permit: Option<&'a str>,
    pub owner: &'a str,
}

/// Creation times strictly increase within a process, so runs queued
/// together (the examples) are claimed in the order they were queued.
fn next_created() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    if prev >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    }
}

pub async fn insert(app: &App, r: NewRun<'_>) -> Result<String, StoreError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO runs (id, kind, status, progress, model_id, version, params, dataset, project, permit, owner, backend, \
         created, attempts, completions, cancel_requested, artifacts) \
         VALUES ($1, $2, 'queued', 0, $3, $4, $5, $6, $7, $8, $9, 'local', $10, 0, 0, 0, '{}')",
    )
    .bind(&id)
    .bind(r.kind)
    .bind(r.model)
    .bind(r.version)
    .bind(r.params.to_string())
    .bind(r.dataset)
    .bind(r.project)
    .bind(r.permit)
    .bind(r.owner)
    .bind(next_created())
    .execute(&app.db.pool)
    .await?;
    app.queue_changed.notify_waiters();
    Ok(id)
}

pub async fn log(app: &App, run: &str, attempt: i64, n: i64, line: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO run_logs (run_id, time, attempt, n, line) VALUES ($1, $2, $3, $4, $5)")
        .bind(run)
        .bind(now_ms())
        .bind(attempt)
        .bind(n)
        .bind(line)
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

pub async fn logs(app: &App, run: &str) -> Result<String, StoreError> {
    let rows = sqlx::query("SELECT time, attempt, line FROM run_logs WHERE run_id = $1 ORDER BY attempt, n")
        .bind(run)
        .fetch_all(&app.db.pool)
        .await?;
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{} [attempt {}] {}\n",
            rfc3339(r.try_get("time")?),
            r.try_get::<i64, _>("attempt")?,
            r.try_get::<String, _>("line")?
        ));
    }
    Ok(out)
}

/// Cancels a run: a queued one at once; a running one is asked to stop (its
/// worker records the cancellation). Returns the status afterwards.
pub async fn cancel(app: &App, id: &str) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    sqlx::query(
        "UPDATE runs SET status = 'cancelled', finished = $2, cancel_requested = 1 WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(now)
    .execute(&app.db.pool)
    .await?;
    sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'")
        .bind(id)
        .execute(&app.db.pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT status FROM runs WHERE id = $1").bind(id).fetch_optional(&app.db.pool).await?)
}

/// A claimed job.
struct Claimed {
    id: String,
    claim: String,
    attempt: i64,
    kind: String,
    model: Option<String>,
    version: Option<String>,
    params: Value,
    dataset: Option<String>,
    permit: Option<String>,
    owner: String,
    project: Option<String>,
    cancel_requested: bool,
}

async fn claim(app: &App, worker: &str) -> Result<Option<Claimed>, StoreError> {
    let now = now_ms();
    let claim = new_id();
    // One statement: the inner SELECT picks a candidate, the outer WHERE
    // re-checks it, so of two workers racing for a row only one changes it
    // (PostgreSQL re-evaluates the WHERE on the row it waited for; SQLite
    // has one writer at a time).
    let id: Option<String> = sqlx::query_scalar(
        "UPDATE runs SET status = 'running', claim = $1, worker = $2, lease_until = $3, \
         started = COALESCE(started, $4), attempts = attempts + 1 \
         WHERE id = (SELECT id FROM runs WHERE backend = 'local' AND (status = 'queued' OR (status = 'running' AND lease_until < $4)) \
                     ORDER BY created LIMIT 1) \
           AND (status = 'queued' OR (status = 'running' AND lease_until < $4)) \
         RETURNING id",
    )
    .bind(&claim)
    .bind(worker)
    .bind(now + app.lease_ms())
    .bind(now)
    .fetch_optional(&app.db.pool)
    .await?;
    let Some(id) = id else { return Ok(None) };
    let r = sqlx::query(
        "SELECT kind, model_id, version, params, dataset, permit, owner, project, attempts, cancel_requested FROM runs \
         WHERE id = $1 AND claim = $2",
    )
    .bind(&id)
    .bind(&claim)
    .fetch_optional(&app.db.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let params: String = r.try_get("params")?;
    Ok(Some(Claimed {
        claim,
        kind: r.try_get("kind")?,
        model: r.try_get("model_id")?,
        version: r.try_get("version")?,
        params: serde_json::from_str(&params).unwrap_or(Value::Null),
        dataset: r.try_get("dataset")?,
        permit: r.try_get("permit")?,
        owner: r.try_get("owner")?,
        project: r.try_get("project")?,
        attempt: r.try_get("attempts")?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        id,
    }))
}

/// Records the end of an attempt, once: false if the claim was lost. A
/// twin made by the job is stored in the same transaction, so it exists
/// exactly when its run succeeded.
async fn finish(
    app: &App,
    job: &Claimed,
    status: &str,
    error: Option<&str>,
    artifacts: &Value,
    twin: Option<(&jobs::TwinRecord, &str)>,
) -> Result<bool, StoreError> {
    let mut tx = app.db.pool.begin().await?;
    let r = sqlx::query(
        "UPDATE runs SET status = $1, error = $2, artifacts = $3, finished = $4, progress = CASE WHEN $1 = 'succeeded' THEN 1 ELSE progress END, \
         completions = completions + 1, lease_until = NULL WHERE id = $5 AND claim = $6 AND status = 'running'",
    )
    .bind(status)
    .bind(error)
    .bind(artifacts.to_string())
    .bind(now_ms())
    .bind(&job.id)
    .bind(&job.claim)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some((t, attempt_dir)) = twin {
        let dir = format!("runs/{}/{attempt_dir}/{}", job.id, t.dir);
        sqlx::query(
            "INSERT INTO twins (id, name, model_id, version, parameters, uncertainty, provenance, owner, project, created, source, twin_dir, run_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'vht-twin', $11, $1)",
        )
        .bind(&job.id)
        .bind(&t.name)
        .bind(job.model.as_deref().unwrap_or(""))
        .bind(job.version.as_deref().unwrap_or(""))
        .bind(json!(t.parameters).to_string())
        .bind(json!(t.uncertainty).to_string())
        .bind(t.provenance.to_string())
        .bind(&job.owner)
        .bind(&job.project)
        .bind(now_ms())
        .bind(dir)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Gives a job back to the queue (shutdown before it finished).
async fn release(app: &App, job: &Claimed) -> Result<(), StoreError> {
    sqlx::query("UPDATE runs SET status = 'queued', claim = NULL, lease_until = NULL WHERE id = $1 AND claim = $2 AND status = 'running'")
        .bind(&job.id)
        .bind(&job.claim)
        .execute(&app.db.pool)
        .await?;
    Ok(())
}

/// Extends the lease and stores progress; Some(cancel requested) while the
/// claim holds, None once it is lost.
async fn heartbeat(app: &App, job: &Claimed, progress: f64) -> Result<Option<bool>, StoreError> {
    let r: Option<i64> = sqlx::query_scalar(
        "UPDATE runs SET lease_until = $1, progress = $2 WHERE id = $3 AND claim = $4 AND status = 'running' RETURNING cancel_requested",
    )
    .bind(now_ms() + app.lease_ms())
    .bind(progress)
    .bind(&job.id)
    .bind(&job.claim)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(r.map(|c| c != 0))
}

/// This machine's name, the first part of every worker name (`node:pid:n`).
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .unwrap_or_else(|| "local".into())
}

/// Whether a process of this machine is alive (Linux: /proc; elsewhere
/// assumed alive, so only the lease decides).
fn process_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// At start: running jobs claimed by workers of this machine whose process
/// is gone (a killed server) go back to the queue at once instead of
/// waiting for their lease. Jobs of other machines wait for their lease.
pub async fn requeue_orphans(app: &App) -> Result<u64, StoreError> {
    let node = node_name();
    let rows =
        sqlx::query("SELECT id, claim, worker FROM runs WHERE status = 'running'").fetch_all(&app.db.pool).await?;
    let mut n = 0;
    for r in rows {
        let worker: Option<String> = r.try_get("worker")?;
        let Some(worker) = worker else { continue };
        let mut parts = worker.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok())) else {
            continue;
        };
        if host != node || pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let id: String = r.try_get("id")?;
        let claim: Option<String> = r.try_get("claim")?;
        let done = sqlx::query(
            "UPDATE runs SET status = 'queued', claim = NULL, lease_until = NULL WHERE id = $1 AND claim = $2 AND status = 'running'",
        )
        .bind(&id)
        .bind(claim)
        .execute(&app.db.pool)
        .await?;
        if done.rows_affected() == 1 {
            let _ = log(app, &id, 0, 0, &format!("requeued at start: worker {worker} is gone")).await;
            n += 1;
        }
    }
    Ok(n)
}

pub fn run_dir(app: &App, id: &str) -> PathBuf {
    app.config.data_dir.join("runs").join(id)
}

/// A worker: claims and runs jobs until `shutdown` turns true.
pub async fn worker(app: Arc<App>, name: String, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(worker = %name, "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        match claim(&app, &name).await {
            Ok(Some(job)) => {
                app.metrics.job_started();
                let span = tracing::info_span!("job", run = %job.id, kind = %job.kind, attempt = job.attempt);
                execute(&app, &name, job, &mut shutdown).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = app.queue_changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, "claiming a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!(worker = %name, "worker stopped");
}

async fn input_for(app: &App, job: &Claimed) -> Result<JobInput, String> {
    let (Some(model), Some(version)) = (&job.model, &job.version) else {
        return Err("the run names no model version".into());
    };
    let v = crate::catalogue::version(app, model, version).await.map_err(|e| e.message)?;
    let petab_yaml = v.metadata["petab_yaml"].as_str().map(|y| crate::catalogue::petab_dir(app, &v.hash).join(y));
    let dataset = match &job.dataset {
        None => None,
        Some(d) => {
            let ds = crate::governance::dataset_for_job(app, d, job.permit.as_deref(), &job.id).await?;
            Some(ds)
        }
    };
    Ok(JobInput {
        kind: job.kind.clone(),
        version: v.hash,
        sbml: v.sbml,
        params: job.params.clone(),
        dataset,
        petab_yaml,
        trial_max_patients: app.config.trial_max_patients,
        pseudonym_key: if job.kind == "twin" {
            crate::examples::pseudonym_key(&app.config.data_dir).map_err(|e| e.to_string())?
        } else {
            Vec::new()
        },
    })
}

async fn execute(app: &Arc<App>, worker: &str, job: Claimed, shutdown: &mut watch::Receiver<bool>) {
    let lines: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut n = 0i64;
    let push = |n: &mut i64, line: String| {
        let app = app.clone();
        let id = job.id.clone();
        let attempt = job.attempt;
        *n += 1;
        let k = *n;
        async move {
            if let Err(e) = log(&app, &id, attempt, k, &line).await {
                tracing::warn!(error = %e, "writing a log line failed");
            }
        }
    };
    push(&mut n, format!("claimed by {worker}")).await;
    if job.cancel_requested {
        // Cancelled while its previous worker ran it, and that worker is gone.
        let _ = finish(app, &job, "cancelled", None, &json!({}), None).await;
        app.metrics.job_finished("cancelled");
        return;
    }
    let input = match input_for(app, &job).await {
        Ok(i) => i,
        Err(e) => {
            push(&mut n, format!("failed: {e}")).await;
            let _ = finish(app, &job, "failed", Some(&e), &json!({}), None).await;
            app.metrics.job_finished("failed");
            return;
        }
    };
    let attempt_dir = format!("attempt-{}-{}", job.attempt, job.claim);
    let dir = run_dir(app, &job.id).join(&attempt_dir);
    let cancel = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
    let handle = {
        let (cancel, progress, lines, app, dir) =
            (cancel.clone(), progress.clone(), lines.clone(), app.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let log = |l: String| {
                if let Ok(mut v) = lines.lock() {
                    v.push(l);
                }
            };
            let ctx = jobs::Ctx { dir: &dir, cancel: &cancel, progress: &progress, log: &log, cache: &app.sims };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                return Err(jobs::JobError::Io(format!("{}: {e}", dir.display())));
            }
            jobs::run(&input, &ctx)
        })
    };
    tokio::pin!(handle);
    // Progress and log lines reach the database with each beat: at least
    // every second, so the UI's run page moves; at most a third of the lease.
    let beat = Duration::from_millis((app.lease_ms() / 3).clamp(100, 1000) as u64);
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            r = &mut handle => break Some(r),
            _ = tokio::time::sleep(beat) => {
                let drained: Vec<String> = lines.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
                for l in drained { push(&mut n, l).await; }
                match heartbeat(app, &job, f64::from_bits(progress.load(Ordering::Relaxed))).await {
                    Ok(Some(true)) => cancel.store(true, Ordering::Relaxed),
                    Ok(Some(false)) => {}
                    Ok(None) => { cancel.store(true, Ordering::Relaxed); tracing::warn!("lost the claim"); }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
                if let Some(d) = grace_deadline {
                    if tokio::time::Instant::now() >= d { break None; }
                }
            }
            _ = shutdown.changed(), if grace_deadline.is_none() => {
                grace_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(app.config.grace_secs));
            }
        }
    };
    let drained: Vec<String> = lines.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    for l in drained {
        push(&mut n, l).await;
    }
    let recorded = match result {
        None => {
            // Shutdown grace period over: the job goes back to the queue and
            // another worker (or this server after its restart) runs it again.
            cancel.store(true, Ordering::Relaxed);
            push(&mut n, "shutdown: put back in the queue".into()).await;
            let _ = release(app, &job).await;
            tracing::info!("put back in the queue at shutdown");
            return;
        }
        Some(Err(join)) => {
            let msg = format!("the job panicked: {join}");
            push(&mut n, msg.clone()).await;
            ("failed", finish(app, &job, "failed", Some(&msg), &json!({}), None).await)
        }
        Some(Ok(Ok(Outcome::Done(files)))) => {
            let artifacts = json!({"dir": attempt_dir, "files": files});
            push(&mut n, format!("succeeded with {} artifact(s)", files.len())).await;
            ("succeeded", finish(app, &job, "succeeded", None, &artifacts, None).await)
        }
        Some(Ok(Ok(Outcome::Twin(files, twin)))) => {
            let artifacts = json!({"dir": attempt_dir, "files": files});
            push(&mut n, format!("succeeded: twin '{}' stored with {} artifact(s)", twin.name, files.len())).await;
            ("succeeded", finish(app, &job, "succeeded", None, &artifacts, Some((&twin, &attempt_dir))).await)
        }
        Some(Ok(Ok(Outcome::Cancelled))) => {
            push(&mut n, "cancelled".into()).await;
            ("cancelled", finish(app, &job, "cancelled", None, &json!({}), None).await)
        }
        Some(Ok(Err(e))) => {
            let msg = e.to_string();
            push(&mut n, format!("failed: {msg}")).await;
            ("failed", finish(app, &job, "failed", Some(&msg), &json!({}), None).await)
        }
    };
    match recorded {
        (status, Ok(true)) => {
            app.metrics.job_finished(status);
            if status != "succeeded" {
                let _ = std::fs::remove_dir_all(&dir);
            }
            if job.dataset.is_some() {
                let _ = crate::audit::append(
                    app,
                    &format!("worker:{worker}"),
                    &format!("job.{status}"),
                    &format!("run:{}", job.id),
                    job.permit.as_deref(),
                )
                .await;
            }
        }
        (_, Ok(false)) => {
            // Cancelled or taken over meanwhile: this attempt's results are not the run's.
            let _ = std::fs::remove_dir_all(&dir);
            tracing::info!("the claim was lost; results discarded");
        }
        (_, Err(e)) => {
            tracing::error!(error = %e, "recording the end of a job failed; the lease will expire and it runs again")
        }
    }
}

/// An artifact's file, if the run succeeded and lists it.
pub fn artifact_path(app: &App, id: &str, artifacts: &Value, name: &str) -> Option<(PathBuf, Artifact)> {
    let dir = artifacts["dir"].as_str()?;
    let files: Vec<Artifact> = serde_json::from_value(artifacts["files"].clone()).ok()?;
    let a = files.into_iter().find(|a| a.name == name)?;
    Some((run_dir(app, id).join(dir).join(&a.name), a))
}

#[cfg(test)]
mod tests {
    #[test]
    fn creation_times_strictly_increase() {
        let mut last = 0;
        for _ in 0..10_000 {
            let t = super::next_created();
            assert!(t > last, "{t} after {last}");
            last = t;
        }
    }
}
