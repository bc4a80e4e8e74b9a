//! First start: the first administrator, and (unless disabled) the bundled
//! examples, so a newcomer sees a working platform at once: the example
//! models (embedded in the binary, so it works from any folder), a
//! simulation of each and the example meal trial as queued runs.

use serde_json::{json, Value};

use crate::catalogue::{self, Kind};
use crate::error::ApiError;
use crate::{auth, runs, App};

pub const MODELS: &[(&str, &[u8])] = &[
    ("repressilator.xml", include_bytes!("../../../examples/models/repressilator.xml")),
    ("dallaman2007_meal.xml", include_bytes!("../../../examples/models/dallaman2007_meal.xml")),
];
pub const MEAL_TRIAL: &str = include_str!("../../../examples/trials/meal/trial.toml");
/// The synthetic patient of examples/twins (made by the project, no real person) and its mapping.
pub const TWIN_PATIENT: &str = include_str!("../../../examples/twins/patient-001.json");
pub const TWIN_MAP: &str = include_str!("../../../examples/twins/map.toml");

/// The owner of bundled content.
pub const SYSTEM: &str = "system";

/// The key that pseudonymises patient ids in twins: 32 random bytes in
/// `DATA_DIR/pseudonym-key` (mode 0600), made on first use. Workers share
/// the data dir, so every twin of one platform uses the same key.
pub fn pseudonym_key(data_dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let path = data_dir.join("pseudonym-key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; 32];
    getrandom::getrandom(&mut key).map_err(std::io::Error::other)?;
    // Two processes racing here: create_new lets exactly one write the key.
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(mut f) => {
            use std::io::Write;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::read(&path)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("creating the first administrator: {0}")]
    Admin(#[from] auth::CreateUserError),
    #[error("writing {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("loading example {file}: {message}")]
    Example { file: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

pub async fn first_start(app: &App) -> Result<(), BootstrapError> {
    if app.db.set_once("bootstrap", &crate::db::now_ms().to_string()).await? {
        let (_, token) = auth::create_user(app, "admin", auth::Role::Admin, app.config.admin_token.as_deref()).await?;
        let path = app.config.data_dir.join("admin-token");
        crate::files::write_atomic(&path, format!("{token}\n").as_bytes())
            .map_err(|source| BootstrapError::Io { path: path.clone(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        tracing::info!(token_file = %path.display(), "created the administrator 'admin'; its API token is in the token file");
    }
    if app.config.examples && app.db.set_once("examples", &crate::db::now_ms().to_string()).await? {
        load_examples(app).await?;
    }
    Ok(())
}

async fn load_examples(app: &App) -> Result<(), BootstrapError> {
    let err = |file: &str, e: ApiError| BootstrapError::Example { file: file.into(), message: e.message };
    let mut meal = None;
    for (file, bytes) in MODELS {
        let r = catalogue::import(
            app,
            catalogue::ImportRequest {
                bytes,
                kind: Kind::Sbml,
                file,
                model: None,
                visibility: "public",
                owner: SYSTEM,
            },
        )
        .await
        .map_err(|e| err(file, e))?;
        let end = if file.starts_with("dallaman") { 420.0 } else { 1000.0 };
        queue(app, "simulate", &r, json!({"start": 0.0, "end": end, "points": 201})).await?;
        tracing::info!(model = %r.id, "loaded example model {file}");
        if file.starts_with("dallaman") {
            meal = Some(r);
        }
    }
    if let Some(m) = meal {
        queue(app, "trial", &m, json!({"spec": MEAL_TRIAL, "patients": 100})).await?;
        // The example twin: made by a queued run (import, fit, posterior),
        // stored when the run succeeds.
        let params = json!({"name": "example patient 001 (synthetic)", "patient": TWIN_PATIENT, "map": TWIN_MAP, "starts": 4, "seed": 1});
        queue(app, "twin", &m, params).await?;
    }
    Ok(())
}

/// Queues a run of `kind` on an example model, owned by the system.
async fn queue(app: &App, kind: &str, model: &catalogue::Imported, params: Value) -> Result<(), BootstrapError> {
    let run = runs::NewRun {
        kind,
        model: &model.id,
        version: &model.version,
        params: &params,
        dataset: None,
        project: None,
        permit: None,
        owner: SYSTEM,
    };
    runs::insert(app, run).await?;
    Ok(())
}
