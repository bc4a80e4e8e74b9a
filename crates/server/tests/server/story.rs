//! The storage story (import, version, run, governance, audit) over real
//! HTTP, against SQLite and against a real PostgreSQL.

use std::time::Duration;

use crate::common::{Postgres, TestServer, ADMIN};
use serde_json::{json, Value};

fn story(s: &TestServer) {
    let (_, modeller) = s.user("mona", "modeller");
    let (researcher_id, researcher) = s.user("rita", "researcher");
    let (_, steward) = s.user("stew", "data_steward");

    // Import: new content 201, identical content again 200 with the same version.
    let r = s.raw("POST", "/api/models", Some(&modeller), "application/sbml+xml", crate::common::repressilator());
    assert_eq!(r.status, 201, "{}", r.text());
    let (id, v1) = (r.json()["id"].as_str().unwrap().to_string(), r.json()["version"].as_str().unwrap().to_string());
    assert_eq!(id, "biomd0000000012");
    let again = s.raw("POST", "/api/models", Some(&modeller), "application/xml", crate::common::repressilator());
    assert_eq!((again.status, again.json()["version"].as_str()), (200, Some(v1.as_str())));

    // A changed model under the same id is a new version; the first stays.
    let changed = String::from_utf8_lossy(crate::common::repressilator())
        .replace("Elowitz2000 - Repressilator", "Repressilator v2");
    let r =
        s.raw("POST", &format!("/api/models?model={id}"), Some(&modeller), "application/sbml+xml", changed.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let v2 = r.json()["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    let m = s.call("GET", &format!("/api/models/{id}"), None, None).json();
    assert_eq!(m["latest_version"], json!(v2));
    assert_eq!(m["name"], "Repressilator v2");
    assert_eq!(m["versions"].as_array().map(Vec::len), Some(2));
    let old = s.call("GET", &format!("/api/models/{id}/versions/{v1}/sbml"), None, None);
    assert_eq!(old.body, crate::common::repressilator(), "a version is immutable");
    let by_prefix = s.call("GET", &format!("/api/models/{id}/versions/{}", &v1[..8]), None, None).json();
    assert_eq!(by_prefix["version"], json!(v1));
    for bad in ["zzzzzzzz", "", "%25", "abc"] {
        let r = s.call("GET", &format!("/api/models/{id}/versions/{bad}/sbml"), None, None);
        assert_eq!(r.status, 404, "version '{bad}'");
    }

    // Search by words of the name, an author, an annotation; a missing word finds nothing.
    for (q, n) in [("repressilator", 1), ("le novère", 1), ("go:0040029", 1), ("repressilator zebra", 0), ("100%_", 0)]
    {
        let r = s.call("GET", &format!("/api/models?q={}", q.replace(' ', "+").replace('%', "%25")), None, None).json();
        assert_eq!(r["total"], json!(n), "q={q}: {r}");
    }

    // Variables and an interactive simulation.
    let vars = s.call("GET", &format!("/api/models/{id}/versions/latest/variables"), None, None).json();
    let species: Vec<&str> = vars["species"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert!(species.contains(&"PX"), "{species:?}");
    let sim = s.call(
        "POST",
        "/api/simulate",
        None,
        Some(&json!({"model": id, "version": "latest", "start": 0, "end": 100, "points": 11, "select": ["PX"], "set": {"tau_mRNA": 3.0}})),
    );
    assert_eq!(sim.status, 200, "{}", sim.text());
    assert_eq!(sim.json()["columns"], json!(["time", "PX"]));
    assert_eq!(sim.json()["rows"].as_array().map(Vec::len), Some(11));
    let bad = s.call("POST", "/api/simulate", None, Some(&json!({"model": id, "end": 10, "set": {"nope": 1}})));
    assert_eq!(bad.status, 422);
    assert!(bad.text().contains("'nope' is not in the model"), "{}", bad.text());

    // OMEX export reads back with the same SBML and metadata.
    let omex = s.call("GET", &format!("/api/models/{id}/versions/{v1}/omex"), None, None);
    assert_eq!(omex.status, 200);
    let back = vht_server::omex::read(&omex.body, "export.omex").unwrap();
    assert_eq!(back.sbml.as_bytes(), crate::common::repressilator());
    assert!(back.metadata.authors.iter().any(|a| a.family.as_deref() == Some("Le Novère")));

    // A run: queued, run by the in-process worker, artifacts intact.
    let r = s.call(
        "POST",
        "/api/runs",
        Some(&modeller),
        Some(&json!({"kind": "simulate", "model": id, "version": v1, "params": {"end": 200, "points": 51}})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let run_id = r.json()["id"].as_str().unwrap().to_string();
    let run = s.wait_run(&run_id, &modeller, Duration::from_secs(60));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["completions"], 1);
    let names: Vec<&str> = run["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["timecourse.csv", "timecourse.parquet", "plot.svg"]);
    for a in run["artifacts"].as_array().unwrap() {
        let f = s.call(
            "GET",
            &format!("/api/runs/{run_id}/artifacts/{}", a["name"].as_str().unwrap()),
            Some(&researcher),
            None,
        );
        assert_eq!(f.status, 200);
        assert_eq!(f.body.len() as u64, a["size"].as_u64().unwrap());
        assert_eq!(vht_server::db::sha256_hex(&f.body), a["sha256"].as_str().unwrap());
    }
    let csv = s.call("GET", &format!("/api/runs/{run_id}/artifacts/timecourse.csv"), Some(&modeller), None).text();
    assert_eq!(csv.lines().count(), 52, "header + 51 rows");
    assert!(s.call("GET", &format!("/api/runs/{run_id}/logs"), Some(&modeller), None).text().contains("succeeded"));
    let evidence = s.call("GET", &format!("/api/models/{id}"), None, None).json()["evidence"].clone();
    assert!(
        evidence.as_array().unwrap().iter().any(|e| e["run"] == json!(run_id) && e["passed"] == json!(true)),
        "{evidence}"
    );

    // Governance: a restricted data set, a permit, aggregates and a job on it.
    let p = s.call("POST", "/api/projects", Some(&researcher), Some(&json!({"name": "oscillations"})));
    let project = p.json()["id"].as_str().unwrap().to_string();
    let rows: Vec<Value> = (0..12)
        .map(|i| json!({"patient": format!("p{i}"), "sex": if i < 8 { "f" } else { "m" }, "tau_mRNA": 1.5 + 0.1 * i as f64}))
        .collect();
    let d = s.call(
        "POST",
        "/api/datasets",
        Some(&researcher),
        Some(&json!({"name": "cohort", "project": project, "classification": "restricted", "rows": rows})),
    );
    assert_eq!(d.status, 201, "{}", d.text());
    let ds = d.json()["id"].as_str().unwrap().to_string();
    let agg = format!("/api/datasets/{ds}/aggregate?measure=tau_mRNA&group_by=sex");
    assert_eq!(s.call("GET", &agg, Some(&researcher), None).status, 403, "no permit yet");
    let permit = s.call(
        "POST",
        "/api/permits",
        Some(&steward),
        Some(&json!({"project": project, "dataset": ds, "purpose": "story", "valid_from": "2020-01-01", "valid_until": "2100-01-01"})),
    );
    assert_eq!(permit.status, 201, "{}", permit.text());
    let permit_id = permit.json()["id"].as_str().unwrap().to_string();
    let a = s.call("GET", &agg, Some(&researcher), None);
    assert_eq!(a.status, 200, "{}", a.text());
    let groups = a.json()["groups"].clone();
    assert_eq!(groups[0]["n"], 8);
    assert_eq!(groups[1], json!({"group": "m", "suppressed": true}), "4 < 5 is suppressed");
    assert_eq!(s.call("GET", &format!("/api/datasets/{ds}/rows"), Some(&researcher), None).status, 403);

    let r = s.call(
        "POST",
        "/api/runs",
        Some(&researcher),
        Some(&json!({"kind": "simulate", "model": id, "params": {"end": 50, "points": 6, "select": ["PX"]}, "dataset": ds, "project": project})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let cohort = r.json()["id"].as_str().unwrap().to_string();
    let run = s.wait_run(&cohort, &researcher, Duration::from_secs(120));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["permit"], json!(permit_id));
    let names: Vec<&str> = run["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["aggregate.json", "aggregate.csv", "plot.svg"], "aggregates only");
    let summary =
        s.call("GET", &format!("/api/runs/{cohort}/artifacts/aggregate.json"), Some(&researcher), None).json();
    assert_eq!((summary["simulated"].clone(), summary["suppressed"].clone()), (json!(12), json!(false)));

    // The audit log holds the reads under the permit, and its chain verifies.
    let log = s.call("GET", "/api/audit?limit=1000", Some(&steward), None).json();
    let entries = log["items"].as_array().unwrap();
    let has = |action: &str, permit: Option<&str>| {
        entries.iter().any(|e| e["action"] == action && e["permit"].as_str() == permit)
    };
    assert!(has("dataset.aggregate.denied", None));
    assert!(has("dataset.aggregate", Some(&permit_id)));
    assert!(has("dataset.rows.denied", None));
    assert!(has("permit.grant", Some(&permit_id)));
    assert!(has("job.submit", Some(&permit_id)));
    assert!(has("job.read_dataset", Some(&permit_id)));
    assert!(entries.iter().any(|e| e["actor"] == json!(researcher_id)));
    let v = s.call("GET", "/api/audit/verify", Some(&steward), None).json();
    assert_eq!((v["ok"].clone(), v["first_bad_seq"].clone()), (json!(true), Value::Null), "{v}");

    // Revoking the permit closes the aggregate again.
    assert_eq!(s.call("DELETE", &format!("/api/permits/{permit_id}"), Some(&steward), None).status, 200);
    assert_eq!(s.call("GET", &agg, Some(&researcher), None).status, 403);

    tamper(s, &steward);
    let _ = ADMIN;
}

/// The database refuses to change audit rows; someone who removes that
/// protection and edits a row is caught by the hash chain.
fn tamper(s: &TestServer, steward: &str) {
    let app = s.app();
    let pool = &app.db.pool;
    let target: i64 = 3;
    let sqlite = app.db.backend == vht_server::db::Backend::Sqlite;
    s.rt.block_on(async {
        let refused = sqlx::query("UPDATE audit SET actor = 'nobody' WHERE seq = $1").bind(target).execute(pool).await;
        assert!(refused.is_err(), "the append-only trigger refuses updates");
        let refused = sqlx::query("DELETE FROM audit WHERE seq = $1").bind(target).execute(pool).await;
        assert!(refused.is_err(), "the append-only trigger refuses deletes");
        let disable =
            if sqlite { "DROP TRIGGER audit_no_update" } else { "ALTER TABLE audit DISABLE TRIGGER audit_no_update" };
        sqlx::raw_sql(disable).execute(pool).await.unwrap();
        sqlx::query("UPDATE audit SET actor = 'nobody' WHERE seq = $1").bind(target).execute(pool).await.unwrap();
    });
    let v = s.call("GET", "/api/audit/verify", Some(steward), None).json();
    assert_eq!((v["ok"].clone(), v["first_bad_seq"].clone()), (json!(false), json!(target)), "{v}");
}

#[test]
fn story_on_sqlite() {
    let s = TestServer::start(None, |_| {});
    story(&s);
}

#[test]
fn story_on_postgres() {
    let pg = Postgres::get();
    let s = TestServer::start(Some(pg.fresh_database()), |_| {});
    story(&s);
    drop(s);
}
