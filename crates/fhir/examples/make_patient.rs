//! Writes the synthetic patient 001 (the same as `vht fhir synth`):
//! cargo run -p vht-fhir --example make_patient -- OUT_DIR [SEED]

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: make_patient OUT_DIR [SEED]")?);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cfg = vht_fhir::synth::SynthConfig::patient_001(root.join("examples/models/dallaman2007_meal.xml"));
    if let Some(seed) = std::env::args().nth(2) {
        cfg.seed = seed.parse()?;
    }
    let s = vht_fhir::synth::generate(&cfg)?;
    let problems = vht_fhir::validate::bundle(&s.bundle);
    if !problems.is_empty() {
        return Err(format!("not valid FHIR R4: {problems:?}").into());
    }
    std::fs::create_dir_all(&out)?;
    vht_fhir::synth::write(&s, &out.join("patient-001.json"), &out.join("heldback.ndjson"), &out.join("truth.tsv"))?;
    println!("seed {}: {} held back", cfg.seed, s.held_back.len());
    Ok(())
}
