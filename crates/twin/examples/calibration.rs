//! Are the twin's bands calibrated? Synthetic patients that differ in their
//! measurement noise (seeds 1..=N), each made into a twin (STARTS starts)
//! and asked about its held-back lunch; prints each patient's coverage of the
//! held-back measurements by the 95% bands of a new measurement, and the
//! pooled coverage (95% if the bands are right).
//!
//! cargo run --release -p vht-twin --example calibration -- [N] [STARTS] [mcmc|laplace]

use std::path::{Path, PathBuf};

use vht_fhir::synth::{self, SynthConfig};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let arg = |i: usize, d: u64| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (seeds, starts) = (arg(1, 8), arg(2, 4) as usize);
    let laplace = std::env::args().nth(3).as_deref() == Some("laplace");
    println!("bands from {}", if laplace { "the Laplace approximation" } else { "MCMC draws" });
    let (mut inside, mut total) = (0, 0);
    for seed in 1..=seeds {
        let dir = std::env::temp_dir().join(format!("vht-twin-calibration-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cfg = SynthConfig::patient_001(root().join("examples/models/dallaman2007_meal.xml"));
        cfg.seed = seed;
        let s = synth::generate(&cfg).unwrap();
        let (bundle, held) = (dir.join("p.json"), dir.join("h.ndjson"));
        synth::write(&s, &bundle, &held, &dir.join("truth.tsv")).unwrap();
        let posterior = if laplace { None } else { Some(vht_twin::McmcOptions::default()) };
        let opts = vht_twin::CreateOptions { starts, seed: 7, posterior, ..Default::default() };
        let key = b"calibration";
        let twin =
            vht_twin::create(&bundle, &root().join("examples/twins/map.toml"), None, key, &dir.join("twin"), &opts)
                .unwrap();
        let lunch = vht_twin::parse_intervention("oral-glucose=60 g@300").unwrap();
        let po = vht_twin::PredictOptions { end: 480.0, step: 5.0, samples: 200, seed: 3, level: 0.95 };
        let pred = vht_twin::predict(&dir.join("twin"), &[lunch], &po).unwrap();
        let c = vht_twin::check(&dir.join("twin"), &bundle, &held, key, &pred).unwrap();
        let acc = twin.posterior.map_or(String::new(), |p| format!(" (MCMC acceptance {:.2})", p.acceptance));
        println!("seed {seed}: {} of {}{acc}", c.inside, c.total);
        inside += c.inside;
        total += c.total;
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("pooled coverage {inside} of {total} ({:.1}%)", 100.0 * inside as f64 / total as f64);
}
