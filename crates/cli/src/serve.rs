//! `vht serve` and `vht worker`: the platform server and its job workers
//! (the work is in `vht-server`; this is arguments and the runtime).

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Data directory: the SQLite database (by default), artifacts, uploads.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Port to listen on (default 8080; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind (default 127.0.0.1; 0.0.0.0 for every interface).
    #[arg(long)]
    bind: Option<String>,
    /// Database URL: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB (default: vht.db in the data dir).
    #[arg(long)]
    database: Option<String>,
    /// Settings file (TOML; keys as in vht_server::Config). VHT_* environment variables override it, flags override both.
    #[arg(long)]
    config: Option<PathBuf>,
    /// In-process job workers (0: only `vht worker` processes run jobs).
    #[arg(long)]
    workers: Option<usize>,
    /// Log one JSON object per line.
    #[arg(long)]
    log_json: bool,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Database URL shared with the server.
    #[arg(long)]
    database: Option<String>,
    /// Data directory shared with the server (artifacts are written here).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Settings file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Jobs run at once by this process.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[arg(long)]
    log_json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

pub fn serve(a: ServeArgs) -> Result<()> {
    let mut c = vht_server::Config::load(a.config.as_deref())?;
    if let Some(d) = a.data_dir {
        c.data_dir = d;
    }
    if let Some(p) = a.port {
        c.port = p;
    }
    if let Some(b) = a.bind {
        c.bind = b;
    }
    if let Some(d) = a.database {
        c.database = Some(d);
    }
    if let Some(w) = a.workers {
        c.workers = w;
    }
    c.log_json |= a.log_json;
    vht_server::init_logging(c.log_json);
    runtime()?.block_on(async {
        let server = vht_server::start(c).await?;
        // Scripts and tests read this line to learn the port.
        eprintln!("listening on http://{}", server.addr);
        server.run_until_signal().await;
        Ok(())
    })
}

pub fn worker(a: WorkerArgs) -> Result<()> {
    let mut c = vht_server::Config::load(a.config.as_deref())?;
    if let Some(d) = a.data_dir {
        c.data_dir = d;
    }
    if let Some(d) = a.database {
        c.database = Some(d);
    }
    c.log_json |= a.log_json;
    vht_server::init_logging(c.log_json);
    runtime()?.block_on(async { Ok(vht_server::run_worker(c, a.jobs).await?) })
}
