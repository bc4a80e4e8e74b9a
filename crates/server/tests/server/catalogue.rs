//! Catalogue imports beyond plain SBML (OMEX, PEtab, bad files) and the
//! queue under several workers on one database.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::{Postgres, TestServer, ADMIN};
use serde_json::json;

fn zip_folder(dir: &Path, prefix: &str) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let name = format!("{prefix}{}", p.file_name().unwrap().to_string_lossy());
            z.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(&std::fs::read(&p).unwrap()).unwrap();
        }
        z.finish().unwrap();
    }
    out.into_inner()
}

#[test]
fn a_petab_problem_imports_and_its_fit_run_evaluates_the_objective() {
    let s = TestServer::start(None, |_| {});
    let story = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fit/tests/data/story");
    let bytes = zip_folder(&story, "story/");
    let r = s.raw("POST", "/api/models?kind=petab&name=story.zip", Some(ADMIN), "application/zip", &bytes);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = s.call("GET", &format!("/api/models/{id}/versions/latest"), None, None).json();
    assert_eq!((v["kind"].clone(), v["petab_yaml"].clone()), (json!("petab"), json!("story/story.yaml")));

    let r = s.call("POST", "/api/runs", Some(ADMIN), Some(&json!({"kind": "fit", "model": id})));
    assert_eq!(r.status, 201, "{}", r.text());
    let run = s.wait_run(r.json()["id"].as_str().unwrap(), ADMIN, Duration::from_secs(60));
    assert_eq!(run["status"], "succeeded", "{run}");
    let result = s
        .call("GET", &format!("/api/runs/{}/artifacts/result.json", run["id"].as_str().unwrap()), Some(ADMIN), None)
        .json();
    // The same number as vht-fit gives directly.
    let problem = vht_fit::read(&story.join("story.yaml")).unwrap();
    let nominal = problem.nominal();
    let direct =
        vht_fit::Objective::new(problem, vht_fit::Settings::default()).unwrap().evaluate(&nominal).unwrap().total();
    let served = result["objective"].as_f64().unwrap();
    assert!((served - direct).abs() <= 1e-9 * direct.abs().max(1.0), "{served} vs {direct}");

    // A fit on a plain SBML model is refused with the reason.
    let r = s.raw("POST", "/api/models", Some(ADMIN), "application/xml", crate::common::repressilator());
    let plain = r.json()["id"].as_str().unwrap().to_string();
    let r = s.call("POST", "/api/runs", Some(ADMIN), Some(&json!({"kind": "fit", "model": plain})));
    assert_eq!(r.status, 422);
    assert!(r.text().contains("not a PEtab problem"), "{}", r.text());
}

#[test]
fn an_omex_archive_imports_with_its_metadata_and_bad_files_are_named() {
    let s = TestServer::start(None, |_| {});
    let sbml = std::str::from_utf8(crate::common::repressilator()).unwrap();
    let authors = [vht_server::meta::Author {
        given: Some("Ada".into()),
        family: Some("Lovelace".into()),
        name: "Ada Lovelace".into(),
        email: None,
        organisation: None,
    }];
    // An archive whose SBML has no notes: the description comes from metadata.rdf.
    let bare = sbml.replacen("<notes>", "<!--", 1).replacen("</notes>", "-->", 1);
    let omex = vht_server::omex::write(
        &bare,
        &vht_server::omex::ExportInfo {
            model_id: "x",
            version: "y",
            name: "n",
            description: "An archived repressilator",
            authors: &authors,
            annotations: &[],
            license: None,
            created: "2026-01-01T00:00:00.000Z",
        },
    )
    .unwrap();
    let r = s.raw("POST", "/api/models", Some(ADMIN), "application/omex", &omex);
    assert_eq!(r.status, 201, "{}", r.text());
    let m = s.call("GET", &format!("/api/models/{}", r.json()["id"].as_str().unwrap()), None, None).json();
    assert_eq!(m["description"], "An archived repressilator");
    assert!(m["authors"].as_array().unwrap().iter().any(|a| a["name"] == "Nicolas Le Novère"), "SBML creators kept");

    let r = s.raw("POST", "/api/models?name=broken.xml", Some(ADMIN), "application/xml", b"<sbml><model id=\"m\"");
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().starts_with("broken.xml: not an SBML document"),
        "{}",
        r.text()
    );
    let r = s.raw("POST", "/api/models?name=a.omex", Some(ADMIN), "application/zip", b"PK\x03\x04 not really");
    assert_eq!(r.status, 422);
    assert!(r.text().contains("a.omex"), "{}", r.text());
    assert_eq!(s.call("GET", "/api/models", None, None).json()["total"], 1, "nothing stored from the bad uploads");
}

/// Many queued jobs, several worker processes' worth of workers on one
/// database: every job is claimed once and completes once.
fn queue_drains_once(database: Option<String>) {
    let s = TestServer::start(database, |c| c.workers = 0);
    let r = s.raw("POST", "/api/models", Some(ADMIN), "application/xml", crate::common::repressilator());
    let model = r.json()["id"].as_str().unwrap().to_string();
    let ids: Vec<String> = (0..16)
        .map(|i| {
            let body = json!({"kind": "simulate", "model": model, "params": {"end": 10 + i, "points": 5}});
            s.call("POST", "/api/runs", Some(ADMIN), Some(&body)).json()["id"].as_str().unwrap().to_string()
        })
        .collect();
    // Two more "processes" (each its own pool and cache) with three workers each.
    let config = vht_server::Config {
        data_dir: s.data.0.clone(),
        database: Some(s.url.clone()),
        lease_secs: 30,
        ..Default::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let handles: Vec<_> = s.rt.block_on(async {
        let mut hs = Vec::new();
        for p in 0..2 {
            let app = vht_server::open(config.clone()).await.unwrap();
            for w in 0..3 {
                hs.push(tokio::spawn(vht_server::runs::worker(app.clone(), format!("p{p}w{w}"), rx.clone())));
            }
        }
        hs
    });
    for id in &ids {
        let v = s.wait_run(id, ADMIN, Duration::from_secs(120));
        assert_eq!(
            (v["status"].clone(), v["attempts"].clone(), v["completions"].clone()),
            (json!("succeeded"), json!(1), json!(1)),
            "{v}"
        );
    }
    let _ = stop.send(true);
    s.rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
}

#[test]
fn the_queue_drains_once_with_many_workers_on_sqlite() {
    queue_drains_once(None);
}

#[test]
fn the_queue_drains_once_with_many_workers_on_postgres() {
    let pg = Postgres::get();
    queue_drains_once(Some(pg.fresh_database()));
}
