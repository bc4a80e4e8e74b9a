//! Runs: cancellation (queued and running), shutdown puts a running job
//! back, twins and their predictions, metrics and readiness.

use std::time::{Duration, Instant};

use crate::common::{TestServer, ADMIN};
use serde_json::{json, Value};

fn model(s: &TestServer) -> String {
    let r = s.raw("POST", "/api/models", Some(ADMIN), "application/xml", crate::common::repressilator());
    r.json()["id"].as_str().unwrap().to_string()
}

/// A public cohort large enough to run for several seconds in a debug build.
fn long_run(s: &TestServer, model: &str) -> String {
    let project = s.call("POST", "/api/projects", Some(ADMIN), Some(&json!({"name": "p"}))).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rows: Vec<Value> = (0..20000).map(|i| json!({"tau_mRNA": 1.0 + (i % 100) as f64 * 0.01})).collect();
    let d = s.call(
        "POST",
        "/api/datasets",
        Some(ADMIN),
        Some(&json!({"name": "big", "project": project, "classification": "public", "rows": rows})),
    );
    let ds = d.json()["id"].as_str().unwrap().to_string();
    let r = s.call(
        "POST",
        "/api/runs",
        Some(ADMIN),
        Some(&json!({"kind": "simulate", "model": model, "dataset": ds, "project": project, "params": {"end": 1000, "points": 3}})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn wait_status(s: &TestServer, id: &str, want: &str, limit: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let v = s.call("GET", &format!("/api/runs/{id}"), Some(ADMIN), None).json();
        if v["status"] == want {
            return v;
        }
        assert!(t0.elapsed() < limit, "run {id}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn queued_and_running_runs_can_be_cancelled() {
    let s = TestServer::start(None, |c| c.lease_secs = 1);
    let m = model(&s);
    let running = long_run(&s, &m);
    wait_status(&s, &running, "running", Duration::from_secs(30));
    // The only worker is busy: this one stays queued until cancelled.
    let queued = s.call("POST", "/api/runs", Some(ADMIN), Some(&json!({"kind": "simulate", "model": m}))).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call("POST", &format!("/api/runs/{queued}/cancel"), Some(ADMIN), None);
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("cancelled")));
    let r = s.call("POST", &format!("/api/runs/{running}/cancel"), Some(ADMIN), None);
    assert_eq!(r.json()["status"], "running", "a running job stops at its next check");
    let v = wait_status(&s, &running, "cancelled", Duration::from_secs(30));
    assert_eq!(v["completions"], 1);
    assert_eq!(v["artifacts"], json!([]));
    let q = s.call("GET", &format!("/api/runs/{queued}"), Some(ADMIN), None).json();
    assert_eq!((q["status"].clone(), q["attempts"].clone()), (json!("cancelled"), json!(0)), "never ran");
    let r = s.call("POST", &format!("/api/runs/{queued}/cancel"), Some(ADMIN), None);
    assert_eq!(r.json()["status"], "cancelled", "cancelling twice is harmless");
}

#[test]
fn shutdown_puts_a_running_job_back_in_the_queue() {
    let mut s = TestServer::start(None, |c| {
        c.grace_secs = 0;
        c.lease_secs = 1;
    });
    let m = model(&s);
    let id = long_run(&s, &m);
    wait_status(&s, &id, "running", Duration::from_secs(30));
    let url = s.url.clone();
    s.stop();
    let status: String = s.rt.block_on(async {
        let db = vht_server::db::Db::connect(&url, 1).await.unwrap();
        sqlx::query_scalar("SELECT status FROM runs WHERE id = $1").bind(&id).fetch_one(&db.pool).await.unwrap()
    });
    assert_eq!(status, "queued");
}

#[test]
fn a_twin_predicts_with_bands_that_contain_the_fitted_trajectory() {
    let s = TestServer::start(None, |_| {});
    let m = model(&s);
    let (_, clinician) = s.user("cli", "clinician");
    let body = json!({
        "name": "patient 7", "model": m,
        "parameters": {"tau_mRNA": 2.2, "tau_prot": 11.0},
        "uncertainty": {"tau_mRNA": 0.1},
        "provenance": {"data": "synthetic", "sha256": "00"}
    });
    let r = s.call("POST", "/api/twins", Some(&clinician), Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let t = s.call("GET", &format!("/api/twins/{id}"), Some(&clinician), None).json();
    assert_eq!(t["parameters"]["tau_mRNA"], 2.2);
    let req = json!({"end": 200, "points": 21, "select": ["PX"], "samples": 20, "seed": 7});
    let p = s.call("POST", &format!("/api/twins/{id}/predict"), Some(&clinician), Some(&req));
    assert_eq!(p.status, 200, "{}", p.text());
    let p = p.json();
    assert_eq!(p["samples"], 20);
    let px = &p["series"]["PX"];
    let (fit, low, high) =
        (px["fitted"].as_array().unwrap(), px["low"].as_array().unwrap(), px["high"].as_array().unwrap());
    assert_eq!(fit.len(), 21);
    assert!(low.iter().zip(high).all(|(l, h)| l.as_f64() <= h.as_f64()));
    assert!(
        low.iter().zip(high).skip(5).any(|(l, h)| h.as_f64().unwrap() - l.as_f64().unwrap() > 1e-6),
        "a band, not a line"
    );
    // Seeded: the same request gives the same bands.
    let again = s.call("POST", &format!("/api/twins/{id}/predict"), Some(&clinician), Some(&req)).json();
    assert_eq!(again["series"], p["series"]);
    // A parameter the model does not have is refused.
    let bad = json!({"name": "x", "model": m, "parameters": {"nope": 1.0}});
    assert_eq!(s.call("POST", "/api/twins", Some(&clinician), Some(&bad)).status, 422);
}

#[test]
fn metrics_and_readiness() {
    let s = TestServer::start(None, |_| {});
    assert_eq!(s.call("GET", "/api/ready", None, None).json(), json!({"ready": true}));
    s.call("GET", "/api/models", None, None);
    let m = s.call("GET", "/metrics", None, None);
    assert!(m.header("content-type").unwrap_or("").starts_with("text/plain"));
    let text = m.text();
    assert!(text.contains("vht_http_requests_total{method=\"GET\",route=\"/api/models\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("vht_http_request_duration_seconds_bucket{route=\"/api/models\",le=\"+Inf\"} 1"), "{text}");
    assert!(text.contains("# TYPE vht_jobs gauge"));
}

#[test]
fn a_twin_run_makes_a_twin_from_fhir_data_that_predicts_with_its_posterior() {
    let s = TestServer::start(None, |_| {});
    let meal = include_bytes!("../../../../examples/models/dallaman2007_meal.xml");
    let r = s.raw("POST", "/api/models", Some(ADMIN), "application/xml", meal);
    let model = r.json()["id"].as_str().unwrap().to_string();
    let (_, clinician) = s.user("cli", "clinician");
    let params = json!({
        "name": "patient 001",
        "patient": vht_server::examples::TWIN_PATIENT,
        "map": vht_server::examples::TWIN_MAP,
        "starts": 2, "seed": 1, "posterior": "laplace"
    });
    let r =
        s.call("POST", "/api/runs", Some(&clinician), Some(&json!({"kind": "twin", "model": model, "params": params})));
    assert_eq!(r.status, 201, "{}", r.text());
    let run = r.json()["id"].as_str().unwrap().to_string();
    let v = s.wait_run(&run, &clinician, Duration::from_secs(600));
    assert_eq!(v["status"], "succeeded", "{v}");
    let twins = s.call("GET", "/api/twins", Some(&clinician), None).json();
    let t =
        twins["items"].as_array().unwrap().iter().find(|t| t["run"] == json!(run)).cloned().expect("the run's twin");
    assert_eq!(t["source"], "vht-twin");
    assert!(t["parameters"]["V_mX"].as_f64().is_some(), "{t}");
    assert!(t["provenance"]["pseudonym"].as_str().is_some_and(|p| !p.is_empty()));
    let artifact = s.call("GET", &format!("/api/runs/{run}/artifacts/twin.json"), Some(&clinician), None);
    assert_eq!(artifact.status, 200);
    let text = format!("{t}{}", artifact.text());
    for identity in
        ["Synthetica", "Henrietta", "Larkspur", "7946 0321", "1971-06-23", "b10da48c-ea4c-4967-ab8e-0efcd8069414"]
    {
        assert!(!text.contains(identity), "the stored twin names the patient ({identity})");
    }
    let req = json!({"end": 480, "points": 97, "samples": 40, "seed": 3, "interventions": ["oral-glucose=60 g@300"]});
    let p = s.call("POST", &format!("/api/twins/{}/predict", t["id"].as_str().unwrap()), Some(&clinician), Some(&req));
    assert_eq!(p.status, 200, "{}", p.text());
    let p = p.json();
    let g = &p["series"]["glucose"];
    let (low, high, mlow, mhigh) = (
        g["low"].as_array().unwrap(),
        g["high"].as_array().unwrap(),
        g["measured_low"].as_array().unwrap(),
        g["measured_high"].as_array().unwrap(),
    );
    assert_eq!(low.len(), p["time"].as_array().unwrap().len());
    for i in 0..low.len() {
        let (l, h, ml, mh) = (
            low[i].as_f64().unwrap(),
            high[i].as_f64().unwrap(),
            mlow[i].as_f64().unwrap(),
            mhigh[i].as_f64().unwrap(),
        );
        assert!(ml <= l && l <= h && h <= mh, "at {i}: measured band [{ml}, {mh}] around [{l}, {h}]");
    }
    // The second drink at 300 min raises glucose after it.
    let fitted: Vec<f64> = g["fitted"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let at = |t: f64| fitted[(t / 5.0) as usize];
    assert!(at(330.0) > at(295.0) + 10.0, "{} vs {}", at(330.0), at(295.0));
}
