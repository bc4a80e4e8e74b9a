//! The FHIR twin example (examples/twins/run) for a patient whose first
//! glucose drink comes 10 minutes after the fasting sample, so the fitted
//! problem has a dose event after t = 0: synthesise, create the twin (20
//! starts, MCMC posterior), predict the held-back lunch, and print the fit,
//! the time and the coverage of the held-back measurements by the 95% bands.
//!
//! Usage: cargo run --release -p vht-twin --example late_dose [OUT_DIR]

use std::path::{Path, PathBuf};
use std::time::Instant;

use vht_fhir::synth::{self, SynthConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| root.join("out/late-dose"));
    std::fs::create_dir_all(&out)?;
    let model = root.join("examples/models/dallaman2007_meal.xml");
    let mut cfg = SynthConfig::patient_001(model.clone());
    cfg.meals[0].0 = 10.0;
    let s = synth::generate(&cfg)?;
    let (bundle, held) = (out.join("patient.json"), out.join("heldback.ndjson"));
    synth::write(&s, &bundle, &held, &out.join("truth.tsv"))?;
    // t = 0 at the fasting sample, not at the first dose.
    let map_text = std::fs::read_to_string(root.join("examples/twins/map.toml"))?
        .replace(r#"time_origin = { kind = "first_dose" }"#, r#"time_origin = { kind = "first_observation" }"#);
    let map = out.join("map.toml");
    std::fs::write(&map, map_text)?;

    let key = b"late-dose example key";
    let opts = vht_twin::CreateOptions {
        starts: 20,
        seed: 1,
        posterior: Some(vht_twin::McmcOptions { seed: 1, ..Default::default() }),
        ..Default::default()
    };
    let t0 = Instant::now();
    let twin_dir = out.join("twin");
    let twin = vht_twin::create(&bundle, &map, Some(&model), key, &twin_dir, &opts)?;
    let create_s = t0.elapsed().as_secs_f64();
    let f = &twin.fit;
    println!("optimizer: {}", f.optimizer);
    println!(
        "fit: {} starts, {} converged, {} failed, {} at the best, objective {:.6}, {:.3} s; twin create {:.1} s",
        f.starts, f.converged, f.failed, f.at_best, f.objective, f.seconds, create_s
    );
    let lunch = vht_twin::parse_intervention("oral-glucose=60 g@300")?;
    let popts = vht_twin::PredictOptions { end: 480.0, step: 5.0, samples: 200, seed: 1, level: 0.95 };
    let prediction = vht_twin::predict(&twin_dir, &[lunch], &popts)?;
    let c = vht_twin::check(&twin_dir, &bundle, &held, key, &prediction)?;
    println!("coverage: {} of {} held-back measurements inside the 95% bands", c.inside, c.total);
    Ok(())
}
