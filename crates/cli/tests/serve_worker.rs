//! `vht worker` as a separate process: the server (configured by a TOML
//! file to run no jobs itself) queues, the worker runs, both share the
//! data dir's SQLite database; SIGTERM stops the worker cleanly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use vht_server::client;

const TOKEN: &str = "worker-test-admin-token";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_separate_worker_process_runs_the_servers_jobs() {
    let dir = std::env::temp_dir().join(format!("vht-worker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("vht.toml");
    std::fs::write(&config, format!("data_dir = {:?}\nport = 0\nworkers = 0\nexamples = false\n", dir.join("data")))
        .unwrap();

    let mut server = Kill(
        Command::new(env!("CARGO_BIN_EXE_vht"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("VHT_ADMIN_TOKEN", TOKEN)
            .stderr(Stdio::piped())
            .spawn()
            .expect("vht serve"),
    );
    let mut lines = BufReader::new(server.0.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("vht serve printed its address").unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});

    let model = include_bytes!("../../../examples/models/repressilator.xml");
    let r = client::request(addr, "POST", "/api/models", Some(TOKEN), Some(("application/xml", model))).unwrap();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = client::json(addr, "POST", "/api/runs", Some(TOKEN), &json!({"kind": "simulate", "model": id})).unwrap();
    let run = r.json()["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(700));
    let v = client::request(addr, "GET", &format!("/api/runs/{run}"), Some(TOKEN), None).unwrap().json();
    assert_eq!(v["status"], "queued", "the server runs no jobs itself: {v}");

    let mut worker = Kill(
        Command::new(env!("CARGO_BIN_EXE_vht"))
            .args(["worker", "--data-dir"])
            .arg(dir.join("data"))
            .stderr(Stdio::null())
            .spawn()
            .expect("vht worker"),
    );
    let t0 = Instant::now();
    let v = loop {
        let v = client::request(addr, "GET", &format!("/api/runs/{run}"), Some(TOKEN), None).unwrap().json();
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            break v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "not run: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["status"], "succeeded", "{v}");
    let logs = client::request(addr, "GET", &format!("/api/runs/{run}/logs"), Some(TOKEN), None).unwrap().text();
    assert!(logs.contains(&format!(":{}:0", worker.0.id())), "claimed by the worker process: {logs}");

    assert!(Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status().unwrap().success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = worker.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "vht worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
