//! Are the twin's bands calibrated? Synthetic patients that differ in their
//! measurement noise (seeds 1..=N), each made into a twin (STARTS starts)
//! and asked about its held-back lunch. Prints, per patient: how many of the
//! 20 held-back measurements fall inside the 95% bands of a new measurement;
//! the oracle (inside the truth ± 1.96 SD of the generator's noise, which
//! needs no fit); how many noise-free true values fall inside the band of
//! the observable; the mean width of the glucose bands; the MCMC acceptance,
//! largest R-hat and smallest effective sample size. Then the pooled
//! coverage (95% if the bands are right) and the mean over patients with its
//! standard error from the between-patient spread (the points of one patient
//! share its parameter error, so they are not independent).
//!
//! With `prior`, each patient's true V_mX, k_abs and k_gri are drawn
//! log-uniform within a factor 3 of patient 001's, and the map's bounds are
//! narrowed to that range, so the truth comes from the twin's own (flat, log
//! scale) prior: Bayesian bands then cover 95% on average over patients, which
//! checks the sampler and the bands independently of any one truth.
//!
//! cargo run --release -p vht-twin --example calibration -- [N] [STARTS] [mcmc|laplace] [fixed|prior]

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use vht_fhir::synth::{self, SynthConfig};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The map with `id`'s bounds replaced (the map lists lower then upper right after the id).
fn with_bounds(map: &str, id: &str, lower: f64, upper: f64) -> String {
    let at = map.find(&format!("id = \"{id}\"")).expect("the parameter is in the map");
    let (head, tail) = map.split_at(at);
    let mut lines: Vec<String> = tail.lines().map(str::to_string).collect();
    for l in lines.iter_mut().take(4) {
        if l.starts_with("lower") {
            *l = format!("lower = {lower}");
        } else if l.starts_with("upper") {
            *l = format!("upper = {upper}");
        }
    }
    format!("{head}{}\n", lines.join("\n"))
}

fn main() {
    let arg = |i: usize, d: u64| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (seeds, starts) = (arg(1, 8), arg(2, 4) as usize);
    let laplace = std::env::args().nth(3).as_deref() == Some("laplace");
    let prior = std::env::args().nth(4).as_deref() == Some("prior");
    println!(
        "bands from {}; truth {}",
        if laplace { "the Laplace approximation" } else { "MCMC draws" },
        if prior { "drawn from the prior" } else { "patient 001's" }
    );
    println!("patient  inside  oracle  truth-in-band  glucose width  acceptance  max R-hat  min ESS");
    let (mut inside, mut total, mut oracle, mut truth_in) = (0, 0, 0, 0);
    let mut per_patient = Vec::new();
    for seed in 1..=seeds {
        let dir = std::env::temp_dir().join(format!("vht-twin-calibration-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let model = root().join("examples/models/dallaman2007_meal.xml");
        let mut cfg = SynthConfig::patient_001(model.clone());
        cfg.seed = seed;
        let mut map = root().join("examples/twins/map.toml");
        if prior {
            let mut text = std::fs::read_to_string(&map).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + seed);
            for (id, v) in [("V_mX", 0.028), ("k_abs", 0.09), ("k_gri", 0.035)] {
                let u: f64 = rng.gen();
                cfg.parameters.insert(id.into(), v * 3f64.powf(2.0 * u - 1.0));
                text = with_bounds(&text, id, v / 3.0, v * 3.0);
            }
            map = dir.join("map.toml");
            std::fs::write(&map, text).unwrap();
        }
        let s = synth::generate(&cfg).unwrap();
        let (bundle, held) = (dir.join("p.json"), dir.join("h.ndjson"));
        synth::write(&s, &bundle, &held, &dir.join("truth.tsv")).unwrap();
        let posterior = if laplace { None } else { Some(vht_twin::McmcOptions::default()) };
        let opts = vht_twin::CreateOptions { starts, seed: 7, posterior, ..Default::default() };
        let key = b"calibration";
        let twin_dir = dir.join("twin");
        let twin = vht_twin::create(&bundle, &map, Some(&model), key, &twin_dir, &opts).unwrap();
        let lunch = vht_twin::parse_intervention("oral-glucose=60 g@300").unwrap();
        let po = vht_twin::PredictOptions { end: 480.0, step: 5.0, samples: 200, seed: 3, level: 0.95 };
        let pred = vht_twin::predict(&twin_dir, &[lunch], &po).unwrap();
        let c = vht_twin::check(&twin_dir, &bundle, &held, key, &pred).unwrap();
        let (mut o, mut t_in, mut width) = (0, 0, Vec::new());
        for r in &c.rows {
            let truth = s.truth.iter().find(|(ob, t, _)| *ob == r.observable && *t == r.time).unwrap().2;
            let (a, b) = if r.observable == "glucose" { cfg.glucose_noise } else { cfg.insulin_noise };
            o += usize::from((r.value - truth).abs() <= 1.96 * (a + b * truth));
            let row = pred.rows.iter().find(|p| p.observable == r.observable && p.time == r.time).unwrap();
            t_in += usize::from(row.lower <= truth && truth <= row.upper);
            if r.observable == "glucose" {
                width.push(r.upper - r.lower);
            }
        }
        let (acc, rhat, ess) = twin.posterior.as_ref().map_or((f64::NAN, f64::NAN, f64::NAN), |p| {
            (
                p.acceptance,
                p.rhat.iter().fold(0.0f64, |a, &b| a.max(b)),
                p.ess.iter().fold(f64::INFINITY, |a, &b| a.min(b)),
            )
        });
        println!(
            "{seed:>7}  {:>6}  {o:>6}  {t_in:>13}  {:>13.1}  {acc:>10.2}  {rhat:>9.3}  {ess:>7.0}",
            c.inside,
            width.iter().sum::<f64>() / width.len() as f64
        );
        inside += c.inside;
        total += c.total;
        oracle += o;
        truth_in += t_in;
        per_patient.push(c.inside as f64 / c.total as f64);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let n = per_patient.len() as f64;
    let mean = per_patient.iter().sum::<f64>() / n;
    let sd = (per_patient.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    println!(
        "pooled coverage {inside} of {total} ({:.1}%); mean over patients {:.1}% (SE {:.1}%); oracle {:.1}%; truth inside the observable band {:.1}%",
        100.0 * inside as f64 / total as f64,
        100.0 * mean,
        100.0 * sd / n.sqrt(),
        100.0 * oracle as f64 / total as f64,
        100.0 * truth_in as f64 / total as f64
    );
}
