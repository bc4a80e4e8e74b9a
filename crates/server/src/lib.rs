//! The OpenVHT platform server: a catalogue of models (SBML, OMEX, PEtab)
//! with immutable content-addressed versions, simulation, fit and trial
//! jobs run by workers from a queue in the database, twins, and the
//! health-data rules (roles, projects, data sets, permits, a hash-chained
//! audit log), behind one HTTP API with its OpenAPI document and the web UI.
//!
//! Design: one `sqlx::AnyPool` over SQLite (the default, a file in the data
//! dir) or PostgreSQL, with the same SQL for both; thin axum handlers over
//! small storage modules; the engine crates run on blocking threads.
//!
//! ```no_run
//! # async fn f() -> Result<(), vht_server::ServeError> {
//! let config = vht_server::Config { port: 0, ..Default::default() };
//! let server = vht_server::start(config).await?; // binds, migrates, loads the examples, starts workers
//! println!("listening on {}", server.addr);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! **Invariant:** the only crate that knows HTTP, JSON on the wire and the
//! database; the engine crates know nothing of it.

pub mod api;
pub mod audit;
pub mod auth;
pub mod catalogue;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod examples;
pub mod files;
pub mod governance;
pub mod jobs;
pub mod meta;
pub mod metrics;
pub mod omex;
pub mod runs;
pub mod sim;
pub mod twins;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

pub use config::Config;
pub use error::{ApiError, StoreError};

/// The OpenAPI document served at /api/openapi.json.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Shared state of a server or worker process.
pub struct App {
    pub db: db::Db,
    pub config: Config,
    pub metrics: metrics::Metrics,
    pub sims: sim::Cache,
    /// Woken when a run is queued, so idle in-process workers start at once.
    pub queue_changed: Notify,
}

impl App {
    pub fn lease_ms(&self) -> i64 {
        (self.config.lease_secs.max(1) * 1000) as i64
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("first start: {0}")]
    Bootstrap(String),
}

/// Opens the database (migrating it) and the data dir.
pub async fn open(config: Config) -> Result<Arc<App>, ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| ServeError::DataDir { path: config.data_dir.clone(), source })?;
    let db = db::Db::connect(&config.database_url(), 8).await?;
    Ok(Arc::new(App {
        db,
        config,
        metrics: metrics::Metrics::default(),
        sims: sim::Cache::default(),
        queue_changed: Notify::new(),
    }))
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Graceful shutdown: stop accepting, let requests finish, give running
    /// jobs the grace period, then put unfinished ones back in the queue.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.http.await;
        for w in self.workers {
            let _ = w.await;
        }
        self.app.db.pool.close().await;
    }

    /// Waits for SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down: no new requests; running jobs get {} s", self.app.config.grace_secs);
        self.shutdown().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Starts the platform: database, first-start setup, HTTP, workers.
pub async fn start(config: Config) -> Result<Server, ServeError> {
    let addr = format!("{}:{}", config.bind, config.port);
    let listener =
        tokio::net::TcpListener::bind(&addr).await.map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let app = open(config).await?;
    examples::first_start(&app).await.map_err(|e| ServeError::Bootstrap(e.to_string()))?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    let (stop, stop_rx) = watch::channel(false);
    let router = api::router(app.clone());
    let mut rx = stop_rx.clone();
    let http = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    match runs::requeue_orphans(&app).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "jobs of workers on this machine that are gone were put back in the queue"),
        Err(e) => tracing::warn!(error = %e, "looking for jobs of dead local workers failed; their leases will expire"),
    }
    let workers = spawn_workers(&app, app.config.workers, &stop_rx);
    tracing::info!(%addr, database = %redact(&app.config.database_url()), workers = app.config.workers, "OpenVHT server listening");
    Ok(Server { addr, app, stop, http, workers })
}

fn spawn_workers(app: &Arc<App>, n: usize, stop: &watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let host = runs::node_name();
    (0..n)
        .map(|i| tokio::spawn(runs::worker(app.clone(), format!("{host}:{}:{i}", std::process::id()), stop.clone())))
        .collect()
}

/// A worker process: no HTTP, `n` workers on the shared database, until a signal.
pub async fn run_worker(config: Config, n: usize) -> Result<(), ServeError> {
    let app = open(config).await?;
    if let Err(e) = runs::requeue_orphans(&app).await {
        tracing::warn!(error = %e, "looking for jobs of dead local workers failed; their leases will expire");
    }
    let (stop, stop_rx) = watch::channel(false);
    let workers = spawn_workers(&app, n.max(1), &stop_rx);
    tracing::info!(workers = n, database = %redact(&app.config.database_url()), "OpenVHT worker started");
    shutdown_signal().await;
    tracing::info!("worker shutting down: running jobs get {} s", app.config.grace_secs);
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.db.pool.close().await;
    Ok(())
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Logging to standard error: text, or one JSON object per line.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VHT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
