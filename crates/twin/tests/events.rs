//! A patient whose first dose comes after the time origin: the fitted
//! problem has an event, the forward sensitivities jump across it, and the
//! twin is fitted with gradients (trust region on the Gauss-Newton Hessian),
//! as without events. The fit must reach at least the likelihood of the true
//! parameters.

use std::path::{Path, PathBuf};

use vht_fhir::synth::{self, SynthConfig};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn dose_after_the_origin_fits_with_gradients() {
    let dir = std::env::temp_dir().join(format!("vht-twin-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = root().join("examples/models/dallaman2007_meal.xml");
    let mut cfg = SynthConfig::patient_001(model.clone());
    // The drink 10 minutes after the fasting sample, which is t = 0.
    cfg.meals[0].0 = 10.0;
    let s = synth::generate(&cfg).unwrap();
    let (bundle, held) = (dir.join("p.json"), dir.join("h.ndjson"));
    synth::write(&s, &bundle, &held, &dir.join("truth.tsv")).unwrap();
    let map_text = std::fs::read_to_string(root().join("examples/twins/map.toml")).unwrap();
    let map_text =
        map_text.replace(r#"time_origin = { kind = "first_dose" }"#, r#"time_origin = { kind = "first_observation" }"#);
    assert!(map_text.contains("first_observation"));
    let map = dir.join("map.toml");
    std::fs::write(&map, map_text).unwrap();

    let opts = vht_twin::CreateOptions { starts: 3, seed: 2, posterior: None, ..Default::default() };
    let twin_dir = dir.join("twin");
    let twin = vht_twin::create(&bundle, &map, Some(&model), b"k", &twin_dir, &opts).unwrap();
    println!("{:?}", twin.fit);
    assert!(twin.fit.optimizer.starts_with("trust-region"), "{}", twin.fit.optimizer);
    assert_eq!(twin.doses[0].time, 10.0);
    let xml = std::fs::read_to_string(twin_dir.join("problem/model.xml")).unwrap();
    assert!(xml.contains("<event id=\"vht_dose_1\""));

    // The likelihood at the truth, for comparison.
    let problem = vht_fit::read(&twin_dir.join("problem/problem.yaml")).unwrap();
    let objective = vht_fit::Objective::new(problem, vht_fit::Settings::default()).unwrap();
    let truth: Vec<f64> = objective
        .estimated()
        .iter()
        .map(|&i| {
            let p = &objective.problem.parameters[i];
            p.scale.apply(cfg.parameters[&p.id])
        })
        .collect();
    let f_true = objective.evaluate_scaled(&truth).unwrap();
    println!("objective {} at the fit, {f_true} at the truth", twin.fit.objective);
    assert!(twin.fit.objective <= f_true + 1e-6, "{} > {f_true}", twin.fit.objective);
    // The Gauss-Newton Hessian is a curvature: positive on the diagonal.
    for (k, row) in twin.hessian.iter().enumerate() {
        assert!(row[k] > 0.0, "{:?}", twin.hessian);
    }
    let vmx = twin.parameters.iter().find(|p| p.id == "V_mX").unwrap();
    assert!(vmx.ci95[0] <= 0.028 && 0.028 <= vmx.ci95[1], "{vmx:?}");
}
