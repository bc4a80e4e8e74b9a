//! Prometheus metrics in the text format: HTTP requests by route and
//! status, latency histograms by route, jobs started and finished here,
//! and (at scrape time) jobs in the database by status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    jobs_started: Mutex<u64>,
    jobs_finished: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(route.to_string()).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    pub fn job_started(&self) {
        if let Ok(mut n) = self.jobs_started.lock() {
            *n += 1;
        }
    }

    pub fn job_finished(&self, status: &str) {
        if let Ok(mut m) = self.jobs_finished.lock() {
            *m.entry(status.to_string()).or_default() += 1;
        }
    }

    /// The exposition text; `jobs_by_status` comes from the database.
    pub fn render(&self, jobs_by_status: &[(String, i64)]) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut s = String::new();
        s.push_str("# HELP vht_http_requests_total HTTP requests by method, route and status.\n# TYPE vht_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "vht_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    esc(route)
                );
            }
        }
        s.push_str("# HELP vht_http_request_duration_seconds Request latency by route.\n# TYPE vht_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                let r = esc(route);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "vht_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ =
                    writeln!(s, "vht_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(s, "vht_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
                let _ = writeln!(s, "vht_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
            }
        }
        s.push_str("# HELP vht_jobs_started_total Jobs claimed by the workers of this process.\n# TYPE vht_jobs_started_total counter\n");
        let _ = writeln!(s, "vht_jobs_started_total {}", self.jobs_started.lock().map(|n| *n).unwrap_or(0));
        s.push_str("# HELP vht_jobs_finished_total Jobs finished by the workers of this process, by status.\n# TYPE vht_jobs_finished_total counter\n");
        if let Ok(m) = self.jobs_finished.lock() {
            for (status, n) in m.iter() {
                let _ = writeln!(s, "vht_jobs_finished_total{{status=\"{status}\"}} {n}");
            }
        }
        s.push_str("# HELP vht_jobs Jobs in the database by status.\n# TYPE vht_jobs gauge\n");
        for (status, n) in jobs_by_status {
            let _ = writeln!(s, "vht_jobs{{status=\"{}\"}} {n}", esc(status));
        }
        s
    }
}
