//! `vht fhir`: clinical data (FHIR R4) to a PEtab problem, and the synthetic patient.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

#[derive(clap::Args)]
pub struct FhirArgs {
    #[command(subcommand)]
    command: FhirCommand,
}

#[derive(Subcommand)]
enum FhirCommand {
    /// A FHIR R4 Bundle or bulk NDJSON + a mapping file -> a PEtab v1 problem folder.
    Import(ImportArgs),
    /// Write the project's synthetic patient (simulated from the meal model) as FHIR.
    Synth(SynthArgs),
    /// Check a FHIR R4 Bundle's structure (required fields, codes, references, LOINC and UCUM systems).
    Validate(ValidateArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// A FHIR R4 JSON Bundle, a single resource, or NDJSON (one resource per line).
    input: PathBuf,
    /// The mapping file (TOML), see examples/twins/README.md.
    #[arg(long)]
    map: PathBuf,
    /// The output folder (problem.yaml, model.xml, tables, import.json).
    #[arg(long)]
    out: PathBuf,
    /// The pseudonymisation key (else $VHT_PSEUDONYM_KEY; there is no default).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Unknown codes are errors (overrides the map's `strict`).
    #[arg(long)]
    strict: bool,
}

#[derive(clap::Args)]
struct SynthArgs {
    /// The output folder: patient-001.json, heldback.ndjson, truth.tsv.
    #[arg(long)]
    out: PathBuf,
    /// The Dalla Man 2007 meal model.
    #[arg(long, default_value = "examples/models/dallaman2007_meal.xml")]
    model: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct ValidateArgs {
    bundle: PathBuf,
}

pub fn run(a: FhirArgs) -> Result<()> {
    match a.command {
        FhirCommand::Import(a) => import(a),
        FhirCommand::Synth(a) => synth(a),
        FhirCommand::Validate(a) => validate(a),
    }
}

fn import(a: ImportArgs) -> Result<()> {
    let key = vht_fhir::key(a.key_file.as_deref())?;
    let mut map = vht_fhir::MapFile::read(&a.map)?;
    map.map.strict |= a.strict;
    let (imported, written) = vht_fhir::import(&a.input, &map, &key, &a.out)?;
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "patient {}: {} measurements, {} doses, {} covariates -> {}",
        imported.pseudonym,
        imported.measurements.len(),
        imported.doses.len(),
        imported.covariates.len(),
        written.yaml.display()
    );
    Ok(())
}

fn synth(a: SynthArgs) -> Result<()> {
    let mut cfg = vht_fhir::synth::SynthConfig::patient_001(a.model);
    cfg.seed = a.seed;
    let s = vht_fhir::synth::generate(&cfg)?;
    let problems = vht_fhir::validate::bundle(&s.bundle);
    if !problems.is_empty() {
        bail!("the generated bundle is not valid FHIR R4:\n{}", problems.join("\n"));
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let (b, h, t) = (a.out.join("patient-001.json"), a.out.join("heldback.ndjson"), a.out.join("truth.tsv"));
    vht_fhir::synth::write(&s, &b, &h, &t)?;
    println!(
        "{} (seed {}), {} held back in {}, noise-free values in {}",
        b.display(),
        cfg.seed,
        s.held_back.len(),
        h.display(),
        t.display()
    );
    Ok(())
}

fn validate(a: ValidateArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.bundle).with_context(|| format!("cannot read {}", a.bundle.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", a.bundle.display()))?;
    let problems = vht_fhir::validate::bundle(&v);
    for p in &problems {
        println!("{}: {p}", a.bundle.display());
    }
    if !problems.is_empty() {
        bail!("{}: {} problems", a.bundle.display(), problems.len());
    }
    println!("{}: valid", a.bundle.display());
    Ok(())
}
