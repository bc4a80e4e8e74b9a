//! Test support: a server on 127.0.0.1:0 in its own runtime, temporary
//! folders, and a PostgreSQL server (VHT_TEST_POSTGRES_URL, or a throwaway
//! cluster started here from the installed binaries).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vht_server::client::{self, Response};

pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!(
            "vht-test-{tag}-{}-{n}-{}",
            std::process::id(),
            vht_server::db::new_id()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub rt: tokio::runtime::Runtime,
    server: Option<vht_server::Server>,
    pub data: TempDir,
}

impl TestServer {
    pub fn start(database: Option<String>, tweak: impl FnOnce(&mut vht_server::Config)) -> TestServer {
        let data = TempDir::new("data");
        let mut config = vht_server::Config {
            data_dir: data.0.clone(),
            port: 0,
            database: database.clone(),
            workers: 1,
            lease_secs: 5,
            admin_token: Some(ADMIN.into()),
            examples: false,
            ..Default::default()
        };
        tweak(&mut config);
        let url = config.database_url();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let server = rt.block_on(vht_server::start(config)).expect("server starts");
        TestServer { addr: server.addr, url, rt, server: Some(server), data }
    }

    /// Graceful shutdown now (the folder stays until drop).
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }

    pub fn app(&self) -> &vht_server::App {
        &self.server.as_ref().expect("running").app
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Response {
        match body {
            Some(b) => client::json(self.addr, method, path, token, b),
            None => client::request(self.addr, method, path, token, None),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn raw(&self, method: &str, path: &str, token: Option<&str>, ctype: &str, bytes: &[u8]) -> Response {
        client::request(self.addr, method, path, token, Some((ctype, bytes)))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Creates a user with a role; returns (id, token).
    pub fn user(&self, name: &str, role: &str) -> (String, String) {
        let r = self.call("POST", "/api/users", Some(ADMIN), Some(&json!({"name": name, "role": role})));
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string())
    }

    /// Polls a run until it leaves queued/running.
    pub fn wait_run(&self, id: &str, token: &str, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let r = self.call("GET", &format!("/api/runs/{id}"), Some(token), None);
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                return v;
            }
            assert!(t0.elapsed() < limit, "run {id} still {} after {limit:?}", v["status"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

pub fn repressilator() -> &'static [u8] {
    include_bytes!("../../../../examples/models/repressilator.xml")
}

/// A throwaway PostgreSQL cluster, stopped and removed on drop.
pub struct Postgres {
    pub url: String,
    cluster: Option<(PathBuf, PathBuf, bool)>,
    _dir: Option<TempDir>,
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn run_as_postgres(root: bool, program: &Path, args: &[&str]) -> std::process::Output {
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

impl Postgres {
    /// The server to test against: VHT_TEST_POSTGRES_URL, or a cluster
    /// started here. Fails (never skips) when neither is possible.
    pub fn get() -> Postgres {
        if let Ok(url) = std::env::var("VHT_TEST_POSTGRES_URL") {
            return Postgres { url, cluster: None, _dir: None };
        }
        let bin = pg_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is needed for this test and VHT_TEST_POSTGRES_URL is not set: install it \
                 (Debian: apt-get install -y postgresql) or run .ci/postgres and source its output"
            )
        });
        let root = is_root();
        let dir = TempDir::new("pg");
        let data = dir.0.join("data");
        if root {
            let st = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir.0).status().expect("chown");
            assert!(st.success(), "chown of {} to postgres failed", dir.0.display());
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let d = data.to_string_lossy().into_owned();
        let out =
            run_as_postgres(root, &bin.join("initdb"), &["-D", &d, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.0.display());
        let log = dir.0.join("pg.log").to_string_lossy().into_owned();
        let out = run_as_postgres(root, &bin.join("pg_ctl"), &["-D", &d, "-o", &opts, "-l", &log, "-w", "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Postgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            cluster: Some((bin, data, root)),
            _dir: Some(dir),
        }
    }

    /// A fresh database on the server (so tests do not see each other's rows).
    pub fn fresh_database(&self) -> String {
        let name = format!("vht_test_{}", vht_server::db::new_id());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut c = sqlx::AnyConnection::connect(&self.url).await.expect("connect to PostgreSQL");
            sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut c).await.expect("create database");
        });
        match self.url.rfind('/') {
            Some(i) => format!("{}/{name}", &self.url[..i]),
            None => panic!("database URL without a database: {}", self.url),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((bin, data, root)) = &self.cluster {
            let d = data.to_string_lossy().into_owned();
            let _ = run_as_postgres(*root, &bin.join("pg_ctl"), &["-D", &d, "-m", "immediate", "stop"]);
        }
    }
}
