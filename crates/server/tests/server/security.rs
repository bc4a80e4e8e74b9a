//! Security rules, checked over HTTP against the OpenAPI document (not a
//! hand-kept list): tokens, roles, permits, audit, per-patient rows.

use std::time::Duration;

use crate::common::{TestServer, ADMIN};
use serde_json::{json, Value};

fn doc() -> Value {
    serde_json::from_str(vht_server::OPENAPI).expect("the OpenAPI document is JSON")
}

/// (method, path, operation) for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "x0" } else { seg }).collect::<Vec<_>>().join("/")
}

#[test]
fn the_document_and_the_router_list_the_same_operations() {
    let doc = doc();
    let s = TestServer::start(None, |_| {});
    for (method, path, _) in operations(&doc) {
        let r = s.call(&method, &concrete(&path), Some(ADMIN), None);
        assert_ne!(r.status, 405, "{method} {path}: the router has the path but not the method");
        let unmatched = format!("{} not found", concrete(&path));
        assert!(!r.text().contains(&unmatched), "{method} {path} is in the document but not in the router");
    }
    // Every `.route("path", get(..).post(..))` of the router is in the document.
    let src = include_str!("../../src/api.rs");
    let mut routes = 0;
    for chunk in src.split(".route(\"").skip(1) {
        let (path, rest) = chunk.split_once('"').unwrap();
        let call = &rest[..rest.find(")\n").unwrap_or(rest.len())];
        for m in ["get", "post", "put", "delete"] {
            if call.contains(&format!("{m}(")) {
                routes += 1;
                assert!(
                    doc["paths"][path][m].is_object(),
                    "{} {path} is served but not in the OpenAPI document",
                    m.to_uppercase()
                );
            }
        }
    }
    assert_eq!(routes, operations(&doc).len(), "one document operation per router method");
}

#[test]
fn every_operation_on_non_public_data_refuses_callers_without_a_token() {
    let doc = doc();
    let s = TestServer::start(None, |_| {});
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        let secured = op["security"].as_array().is_some_and(|a| !a.is_empty());
        let writes = method != "GET" && op["x-vht-readonly"] != json!(true);
        assert!(secured || !writes, "{method} {path} writes but is open to anonymous callers");
        if !secured {
            continue;
        }
        let r = s.call(&method, &concrete(&path), None, Some(&json!({})));
        assert_eq!(r.status, 401, "{method} {path} without a token: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "unauthorized");
        let r = s.call(&method, &concrete(&path), Some("not-a-token"), Some(&json!({})));
        assert_eq!(r.status, 401, "{method} {path} with an unknown token");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} secured operations");
}

#[test]
fn a_role_not_listed_for_an_operation_gets_403() {
    let doc = doc();
    let s = TestServer::start(None, |_| {});
    let roles = ["admin", "modeller", "researcher", "clinician", "data_steward"];
    let tokens: Vec<(&str, String)> = roles.iter().map(|r| (*r, s.user(&format!("user-{r}"), r).1)).collect();
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        let Some(allowed) = op["x-vht-roles"].as_array() else { continue };
        for (role, token) in &tokens {
            if allowed.contains(&json!(role)) {
                continue;
            }
            let r = s.call(&method, &concrete(&path), Some(token), Some(&json!({})));
            assert_eq!(r.status, 403, "{method} {path} as {role}: {}", r.text());
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} role checks");
}

#[test]
fn private_models_are_invisible_to_anonymous_callers() {
    let s = TestServer::start(None, |_| {});
    let (_, modeller) = s.user("m", "modeller");
    let r = s.raw(
        "POST",
        "/api/models?visibility=private",
        Some(&modeller),
        "application/xml",
        crate::common::repressilator(),
    );
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(s.call("GET", "/api/models", None, None).json()["total"], 0);
    assert_eq!(s.call("GET", "/api/models", Some(&modeller), None).json()["total"], 1);
    assert_eq!(s.call("GET", &format!("/api/models/{id}"), None, None).status, 401);
    let (_, other) = s.user("o", "researcher");
    assert_eq!(s.call("GET", &format!("/api/models/{id}/versions/latest/sbml"), Some(&other), None).status, 404);
    let sim = s.call("POST", "/api/simulate", None, Some(&json!({"model": id, "end": 1})));
    assert_eq!(sim.status, 401);
}

struct Setup {
    s: TestServer,
    researcher: String,
    researcher_id: String,
    steward: String,
    project: String,
    model: String,
}

fn setup() -> Setup {
    let s = TestServer::start(None, |_| {});
    let (_, modeller) = s.user("mona", "modeller");
    let (researcher_id, researcher) = s.user("rita", "researcher");
    let (_, steward) = s.user("stew", "data_steward");
    let r = s.raw("POST", "/api/models", Some(&modeller), "application/xml", crate::common::repressilator());
    let model = r.json()["id"].as_str().unwrap().to_string();
    let project = s.call("POST", "/api/projects", Some(&researcher), Some(&json!({"name": "p"}))).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    Setup { s, researcher, researcher_id, steward, project, model }
}

fn dataset(st: &Setup, classification: &str, n: usize) -> String {
    let rows: Vec<Value> = (0..n).map(|i| json!({"id": format!("p{i}"), "tau_mRNA": 1.0 + 0.2 * i as f64})).collect();
    let r = st.s.call(
        "POST",
        "/api/datasets",
        Some(&st.researcher),
        Some(&json!({"name": "d", "project": st.project, "classification": classification, "rows": rows})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn permit(st: &Setup, ds: &str, from: &str, until: &str) -> String {
    let r = st.s.call(
        "POST",
        "/api/permits",
        Some(&st.steward),
        Some(
            &json!({"project": st.project, "dataset": ds, "purpose": "test", "valid_from": from, "valid_until": until}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn audit(st: &Setup) -> Vec<Value> {
    st.s.call("GET", "/api/audit?limit=10000", Some(&st.steward), None).json()["items"].as_array().unwrap().clone()
}

#[test]
fn restricted_data_without_a_valid_permit_is_refused_and_audited() {
    let st = setup();
    let ds = dataset(&st, "restricted", 10);
    let agg = format!("/api/datasets/{ds}/aggregate?measure=tau_mRNA");
    let denied = |st: &Setup| {
        audit(st)
            .iter()
            .filter(|e| e["action"] == "dataset.aggregate.denied" && e["actor"] == json!(st.researcher_id))
            .count()
    };
    // No permit.
    assert_eq!(st.s.call("GET", &agg, Some(&st.researcher), None).status, 403);
    assert_eq!(denied(&st), 1);
    // An expired permit and one not yet valid.
    permit(&st, &ds, "2020-01-01", "2021-01-01");
    permit(&st, &ds, "2099-01-01", "2100-01-01");
    let r = st.s.call("GET", &agg, Some(&st.researcher), None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(denied(&st), 2);
    // A job on it is refused too, and audited.
    let r = st.s.call(
        "POST",
        "/api/runs",
        Some(&st.researcher),
        Some(&json!({"kind": "simulate", "model": st.model, "dataset": ds, "params": {"end": 10}})),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(audit(&st).iter().any(|e| e["action"] == "job.submit.denied"));
    // A valid permit opens aggregates, with the permit recorded.
    let p = permit(&st, &ds, "2020-01-01", "2100-01-01");
    let r = st.s.call("GET", &agg, Some(&st.researcher), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(audit(&st).iter().any(|e| e["action"] == "dataset.aggregate" && e["permit"] == json!(p)));
    // A user outside the project gets nothing even with the project's permit.
    let (_, outsider) = st.s.user("olga", "researcher");
    assert_eq!(st.s.call("GET", &agg, Some(&outsider), None).status, 403);
    let v = st.s.call("GET", "/api/audit/verify", Some(&st.steward), None).json();
    assert_eq!(v["ok"], true);
}

#[test]
fn per_patient_rows_of_restricted_data_can_never_be_downloaded() {
    let st = setup();
    let restricted = dataset(&st, "restricted", 8);
    let public = dataset(&st, "public", 8);
    permit(&st, &restricted, "2020-01-01", "2100-01-01");
    // Not the rows endpoint, for anyone: the researcher under a permit, the admin.
    for token in [&st.researcher, &st.steward, &ADMIN.to_string()] {
        let r = st.s.call("GET", &format!("/api/datasets/{restricted}/rows"), Some(token), None);
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(!r.text().contains("p3"));
    }
    assert_eq!(st.s.call("GET", &format!("/api/datasets/{public}/rows"), Some(&st.researcher), None).status, 200);
    // Not through a job's artifacts: a job on public data writes per-patient
    // results, the same job on restricted data only aggregates.
    let run = |ds: &str| {
        let r = st.s.call(
            "POST",
            "/api/runs",
            Some(&st.researcher),
            Some(&json!({"kind": "simulate", "model": st.model, "dataset": ds, "project": st.project, "params": {"end": 20, "points": 3}})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        let v = st.s.wait_run(&id, &st.researcher, Duration::from_secs(120));
        assert_eq!(v["status"], "succeeded", "{v}");
        let names: Vec<String> =
            v["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
        (id, names)
    };
    let (_, public_names) = run(&public);
    assert!(public_names.contains(&"patients.csv".to_string()), "{public_names:?}");
    let (rid, names) = run(&restricted);
    assert!(names.iter().all(|n| n.starts_with("aggregate") || n == "plot.svg"), "{names:?}");
    let r = st.s.call("GET", &format!("/api/runs/{rid}/artifacts/patients.csv"), Some(&st.researcher), None);
    assert!(matches!(r.status, 403 | 404), "{}", r.status);
    let agg = st.s.call("GET", &format!("/api/runs/{rid}/artifacts/aggregate.csv"), Some(&st.researcher), None).text();
    assert!(agg.starts_with("time,variable,n,mean,sd,p05,p50,p95\n"), "{agg}");
    assert!(!agg.contains("p3"));
    assert!(audit(&st).iter().any(|e| e["action"] == "run.artifact.read"));
}

#[test]
fn small_restricted_cohorts_give_no_aggregate_either() {
    let st = setup();
    let ds = dataset(&st, "restricted", 4);
    permit(&st, &ds, "2020-01-01", "2100-01-01");
    let a =
        st.s.call("GET", &format!("/api/datasets/{ds}/aggregate?measure=tau_mRNA"), Some(&st.researcher), None).json();
    assert_eq!(a["groups"], json!([{"group": "all", "suppressed": true}]));
    let r = st.s.call(
        "POST",
        "/api/runs",
        Some(&st.researcher),
        Some(&json!({"kind": "simulate", "model": st.model, "dataset": ds, "project": st.project, "params": {"end": 20, "points": 3}})),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = st.s.wait_run(&id, &st.researcher, Duration::from_secs(120));
    let names: Vec<&str> = v["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["aggregate.json"]);
    let j = st.s.call("GET", &format!("/api/runs/{id}/artifacts/aggregate.json"), Some(&st.researcher), None).json();
    assert_eq!((j["suppressed"].clone(), j["rows"].clone()), (json!(true), json!([])));
}
