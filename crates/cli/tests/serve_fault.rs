//! Fault test: `vht serve` is killed with SIGKILL while a job runs; after a
//! restart the job runs again and completes exactly once, its artifacts
//! intact. Then SIGTERM stops the server cleanly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vht_server::client;

const TOKEN: &str = "fault-test-admin-token";

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vht"))
        .args(["serve", "--port", "0", "--workers", "1", "--data-dir"])
        .arg(data)
        .env("VHT_EXAMPLES", "false")
        .env("VHT_ADMIN_TOKEN", TOKEN)
        // A long lease: the restarted server must notice at start that the
        // killed worker is gone, not wait for the lease.
        .env("VHT_LEASE_SECS", "120")
        .env("VHT_GRACE_SECS", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("vht serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("vht serve printed its address before exiting").expect("stderr line");
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().parse().expect("an address");
        }
    };
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, addr }
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let r = client::request(addr, "GET", path, Some(TOKEN), None).expect("GET");
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

fn wait_for(addr: SocketAddr, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let v = get(addr, &format!("/api/runs/{id}"));
        if done(&v) {
            return v;
        }
        assert!(t0.elapsed() < limit, "run {id}: {v} after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_job_interrupted_by_sigkill_completes_once_after_restart() {
    let data = Dir(std::env::temp_dir().join(format!("vht-fault-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&data.0);
    let first = start(&data.0);
    let model = include_bytes!("../../../examples/models/dallaman2007_meal.xml");
    let r =
        client::request(first.addr, "POST", "/api/models", Some(TOKEN), Some(("application/sbml+xml", model))).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let model_id = r.json()["id"].as_str().unwrap().to_string();
    // A trial that takes several seconds even with the engine optimised (the test profile
    // builds vht-sim and vht-solver at opt-level 2: 60 patients took 0.15 s and finished
    // before the kill).
    let spec = include_str!("../../../examples/trials/meal/trial.toml");
    let body = json!({"kind": "trial", "model": model_id, "params": {"spec": spec, "patients": 3000}});
    let r = client::json(first.addr, "POST", "/api/runs", Some(TOKEN), &body).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();

    wait_for(first.addr, &id, Duration::from_secs(60), |v| v["status"] == "running");
    std::thread::sleep(Duration::from_millis(800));
    let before = get(first.addr, &format!("/api/runs/{id}"));
    assert_eq!(before["status"], "running", "the job must still run when the server is killed: {before}");
    let mut first = first;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");

    let second = start(&data.0);
    let v = wait_for(second.addr, &id, Duration::from_secs(100), |v| {
        !matches!(v["status"].as_str(), Some("queued" | "running"))
    });
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["completions"], 1, "recorded exactly once: {v}");
    assert_eq!(v["attempts"], 2, "the killed attempt and the one that finished: {v}");
    let arts = v["artifacts"].as_array().expect("artifacts");
    let names: Vec<&str> = arts.iter().map(|a| a["name"].as_str().unwrap()).collect();
    for want in ["report.md", "summary.json", "patients.parquet"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for a in arts {
        let name = a["name"].as_str().unwrap();
        let f = client::request(second.addr, "GET", &format!("/api/runs/{id}/artifacts/{name}"), Some(TOKEN), None)
            .unwrap();
        assert_eq!(f.status, 200, "{name}");
        assert_eq!(f.body.len() as u64, a["size"].as_u64().unwrap(), "{name} size");
        assert_eq!(vht_server::db::sha256_hex(&f.body), a["sha256"].as_str().unwrap(), "{name} content");
    }
    let summary =
        client::request(second.addr, "GET", &format!("/api/runs/{id}/artifacts/summary.json"), Some(TOKEN), None)
            .unwrap();
    let summary = summary.json();
    assert!(summary.is_object(), "summary.json parses");
    let logs = client::request(second.addr, "GET", &format!("/api/runs/{id}/logs"), Some(TOKEN), None).unwrap().text();
    assert_eq!(logs.matches("claimed by").count(), 2, "{logs}");
    assert_eq!(logs.matches("succeeded with").count(), 1, "{logs}");

    // SIGTERM: a clean stop.
    let mut second = second;
    let st = Command::new("kill").args(["-TERM", &second.child.id().to_string()]).status().expect("kill");
    assert!(st.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = second.child.try_wait().expect("wait") {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "vht serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
