//! Load benchmark: N concurrent keep-alive clients read the catalogue for a
//! while; prints throughput, latency percentiles and errors.
//!
//! ```sh
//! cargo run --release -p vht-server --example load                  # own server (SQLite, examples), 200 clients, 30 s
//! cargo run --release -p vht-server --example load -- --url http://127.0.0.1:8080 --clients 200 --secs 30
//! ```
//! Exits non-zero if any request failed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    url: Option<String>,
    clients: usize,
    secs: f64,
}

fn args() -> Args {
    let mut a = Args { url: None, clients: 200, secs: 30.0 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--url" => a.url = Some(v),
            "--clients" => a.clients = v.parse().expect("--clients N"),
            "--secs" => a.secs = v.parse().expect("--secs S"),
            other => panic!("unknown argument {other} (use --url, --clients, --secs)"),
        }
    }
    a
}

/// One request on a kept-alive connection: the status, or an error.
async fn get(conn: &mut BufReader<TcpStream>, host: &str, path: &str) -> std::io::Result<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let n = length.ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0u8; n];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("vht-load-{}", std::process::id()));
        let (addr, server): (SocketAddr, Option<vht_server::Server>) = match &a.url {
            Some(u) => {
                let hostport = u.trim_start_matches("http://").trim_end_matches('/');
                (tokio::net::lookup_host(hostport).await.expect("resolve").next().expect("an address"), None)
            }
            None => {
                let config = vht_server::Config { data_dir: dir.clone(), port: 0, workers: 0, ..Default::default() };
                let s = vht_server::start(config).await.expect("server");
                (s.addr, Some(s))
            }
        };
        let host = addr.to_string();
        let paths = [
            "/api/models".to_string(),
            "/api/models?q=repressilator".to_string(),
            "/api/models?q=glucose+insulin&limit=10".to_string(),
            "/api/models/biomd0000000012".to_string(),
        ];
        let deadline = Instant::now() + Duration::from_secs_f64(a.secs);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..a.clients {
            let (host, paths) = (host.clone(), paths.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut conn = None;
                let mut i = c;
                while Instant::now() < deadline {
                    if conn.is_none() {
                        match TcpStream::connect(addr).await {
                            Ok(s) => conn = Some(BufReader::new(s)),
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        }
                    }
                    let path = &paths[i % paths.len()];
                    i += 1;
                    let start = Instant::now();
                    match get(conn.as_mut().expect("connected"), &host, path).await {
                        Ok(200) => lat.push(start.elapsed().as_micros() as u64),
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (lat, errors)
            }));
        }
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("client task");
            lat.extend(l);
            errors += e;
        }
        let wall = t0.elapsed().as_secs_f64();
        lat.sort_unstable();
        let q = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0) as f64 / 1000.0;
        println!("clients {}  duration {:.1} s  requests {}  errors {}", a.clients, wall, lat.len(), errors);
        println!(
            "throughput {:.0} req/s  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            lat.len() as f64 / wall,
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
        if let Some(s) = server {
            s.shutdown().await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        if errors > 0 {
            std::process::exit(1);
        }
    });
}
