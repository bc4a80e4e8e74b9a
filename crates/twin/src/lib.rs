//! Personalised twins: a model whose parameters are estimated from one
//! patient's data, with honest uncertainty and the provenance of the data.
//!
//! [`create`] is: the FHIR import ([`vht_fhir`]), a multistart fit
//! ([`vht_fit::fit`]), the Gauss-Newton Hessian at the optimum (the Laplace
//! approximation of the posterior), posterior draws by MCMC started from it
//! ([`posterior`]), and provenance (SHA-256 of every input, the pseudonym,
//! the tool version, the date, the fit settings), written as a twin folder:
//!
//! ```text
//! TWIN/twin.json        model reference + hash, fitted parameters, covariance, provenance
//! TWIN/model.xml        the model as given (the doses are added per prediction)
//! TWIN/map.toml         the mapping file as given
//! TWIN/problem/         the patient's PEtab problem (vht fhir import)
//! ```
//!
//! [`predict`] simulates the twin with its own dose history plus
//! interventions ([`Intervention`], e.g. a 60 g glucose drink at 310 min)
//! and gives, per observable and time, the prediction at the estimate, the
//! median and the 95% band of the observable (parameter uncertainty), and
//! the 95% band of a new measurement (parameter uncertainty plus the noise
//! model), from the twin's MCMC draws, or, for a twin made without them,
//! from seeded draws of the Laplace approximation
//! ([`vht_fit::prediction_bands`]). [`check`] compares held-back
//! measurements with the bands. Measured calibration (examples/calibration.rs,
//! 100 synthetic patients, 2,000 held-back points): 94.7% inside the nominal
//! 95% bands with MCMC draws, 94.0% with the Laplace approximation; the
//! oracle band (the truth ± 1.96 SD of the noise) covers 95.3% of them.
//!
//! Architecture invariant: knows twins (what is stored, how a prediction is
//! asked for); FHIR and units are `vht_fhir`'s, likelihoods and optimisers
//! `vht_fit`'s. No HTTP, no storage beyond the twin folder.

mod dfo;
mod intervention;
pub mod posterior;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vht_fhir::sbml::{num, SbmlText};
use vht_fhir::{Covariate, MapFile, ModelDose};

pub use intervention::{parse_intervention, Intervention};
pub use posterior::{McmcOptions, Posterior};

/// The format tag of twin.json.
pub const FORMAT: &str = "openvht-twin/1";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwinError {
    #[error(transparent)]
    Fhir(#[from] vht_fhir::FhirError),
    #[error(transparent)]
    Fit(#[from] vht_fit::FitError),
    #[error("cannot read {}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{}: {problem}", path.display())]
    Format { path: PathBuf, problem: String },
    #[error("{}: the file changed since the twin was made (SHA-256 {found}, twin.json has {expected})", path.display())]
    Hash { path: PathBuf, expected: String, found: String },
    #[error("no start of the fit succeeded; first failure: {reason}")]
    NoFit { reason: String },
    #[error("intervention '{spec}': {problem}")]
    Intervention { spec: String, problem: String },
    #[error("the held-back data are of another patient (pseudonym {found}, twin {expected}) or another key")]
    OtherPatient { expected: String, found: String },
    #[error("{problem}")]
    Options { problem: String },
}

/// Settings of [`create`]. Plain data.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub starts: usize,
    pub seed: u64,
    pub max_iterations: usize,
    pub threads: Option<usize>,
    pub progress: bool,
    /// Sample the posterior by MCMC (predictions then use its draws); `None`:
    /// only the Laplace approximation.
    pub posterior: Option<McmcOptions>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            starts: 20,
            seed: 0,
            max_iterations: 200,
            threads: None,
            progress: false,
            posterior: Some(McmcOptions::default()),
        }
    }
}

/// An input or a part of the twin, with its SHA-256. Only the file name is
/// kept (a path may name the patient), and for the patient's data not even
/// that: the hash identifies the file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    pub role: String,
    pub file: String,
    pub sha256: String,
}

/// One estimated parameter of the twin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FittedParameter {
    pub id: String,
    pub scale: String,
    pub lower: f64,
    pub upper: f64,
    /// The estimate (linear scale).
    pub value: f64,
    /// The estimate on its scale (the optimiser's variable).
    pub scaled: f64,
    /// Standard deviation on its scale, from the Laplace approximation.
    pub sd_scaled: f64,
    /// The Laplace 95% interval, on the linear scale (clipped to the bounds).
    pub ci95: [f64; 2],
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitSummary {
    pub optimizer: String,
    pub starts: usize,
    pub seed: u64,
    pub max_iterations: usize,
    pub converged: usize,
    pub failed: usize,
    /// Starts that ended within 0.1 of the best objective value.
    pub at_best: usize,
    /// The best negative log-likelihood (plus priors).
    pub objective: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub inputs: Vec<FileRef>,
    pub tool: String,
    /// UTC, RFC 3339: when the twin was made.
    pub created: String,
    pub measurements: usize,
    pub warnings: Vec<String>,
}

/// twin.json.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Twin {
    pub format: String,
    pub pseudonym: String,
    /// The model as given (a copy in the twin folder) and its hash.
    pub model: FileRef,
    /// The patient's PEtab problem, relative to the twin folder.
    pub problem: String,
    pub time_unit: String,
    pub parameters: Vec<FittedParameter>,
    /// The scaled estimate, its Gauss-Newton Hessian and the covariance
    /// (its inverse, with directions the data do not determine floored).
    pub x_hat: Vec<f64>,
    pub hessian: Vec<Vec<f64>>,
    pub covariance: Vec<Vec<f64>>,
    /// Posterior draws by MCMC, when the twin was made with them.
    #[serde(default)]
    pub posterior: Option<Posterior>,
    pub initial: BTreeMap<String, f64>,
    pub doses: Vec<ModelDose>,
    pub covariates: Vec<Covariate>,
    pub fit: FitSummary,
    pub provenance: Provenance,
}

pub fn sha256_file(path: &Path) -> Result<String, TwinError> {
    let bytes = std::fs::read(path).map_err(|error| TwinError::Io { path: path.to_path_buf(), error })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn file_ref(role: &str, path: &Path) -> Result<FileRef, TwinError> {
    Ok(FileRef {
        role: role.into(),
        file: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        sha256: sha256_file(path)?,
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), TwinError> {
    std::fs::copy(from, to).map(|_| ()).map_err(|error| TwinError::Write { path: to.to_path_buf(), error })
}

/// The inverse of a symmetric positive semi-definite matrix, with
/// eigenvalues below 1e-8 of the largest floored there (as the prediction
/// bands do), so a direction the data do not determine has a large but
/// finite variance.
pub fn covariance(hessian: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = hessian.len();
    let m = nalgebra::DMatrix::from_fn(n, n, |a, b| 0.5 * (hessian[a][b] + hessian[b][a]));
    let eig = m.symmetric_eigen();
    let max = eig.eigenvalues.iter().fold(0.0f64, |a, &b| a.max(b));
    let floor = (max * 1e-8).max(1e-300);
    let inv = nalgebra::DMatrix::from_diagonal(&eig.eigenvalues.map(|l| 1.0 / l.max(floor)));
    let c = &eig.eigenvectors * inv * eig.eigenvectors.transpose();
    (0..n).map(|i| (0..n).map(|j| c[(i, j)]).collect()).collect()
}

/// Imports the patient, fits the model, and writes the twin folder `out`.
pub fn create(
    patient: &Path,
    map_path: &Path,
    model: Option<&Path>,
    key: &[u8],
    out: &Path,
    options: &CreateOptions,
) -> Result<Twin, TwinError> {
    if options.starts == 0 {
        return Err(TwinError::Options { problem: "at least one start is needed".into() });
    }
    let mut map = MapFile::read(map_path)?;
    if let Some(m) = model {
        map.model_override = Some(m.to_path_buf());
    }
    let model_path = map.model_path();
    std::fs::create_dir_all(out).map_err(|error| TwinError::Write { path: out.to_path_buf(), error })?;
    let (imported, written) = vht_fhir::import(patient, &map, key, &out.join("problem"))?;
    copy(&model_path, &out.join("model.xml"))?;
    copy(map_path, &out.join("map.toml"))?;

    let problem = vht_fit::read(&written.yaml)?;
    let objective = vht_fit::Objective::new(problem, vht_fit::Settings::default())?;
    // Gradients when the model allows them (trust region on the Gauss-Newton
    // Hessian); else a derivative-free multistart and a finite-difference Hessian.
    let gradients = !matches!(
        objective.evaluate_with_gradient(&objective.scaled_nominal()),
        Err(vht_fit::FitError::Sensitivities { .. })
    );
    // Other local optima of the multistart, for the sampler (see `modes`).
    let mut others: Vec<(Vec<f64>, f64)> = Vec::new();
    let (x_best, fval, hessian, mut summary) = if gradients {
        let fo = vht_fit::FitOptions {
            starts: options.starts,
            optimizer: vht_fit::Optimizer::TrustRegion,
            seed: options.seed,
            max_iterations: options.max_iterations,
            threads: options.threads,
            progress: options.progress,
            ..Default::default()
        };
        let result = vht_fit::fit(&objective, &fo)?;
        let Some(best) = result.best.clone() else {
            let reason = result
                .starts
                .iter()
                .find_map(|s| match &s.status {
                    vht_fit::StartStatus::Failed(r) => Some(r.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(TwinError::NoFit { reason });
        };
        let (fval, _, hessian) = objective.evaluate_with_gradient(&best.x)?;
        let count = |f: fn(&vht_fit::StartStatus) -> bool| result.starts.iter().filter(|s| f(&s.status)).count();
        let summary = FitSummary {
            optimizer: "trust-region (Gauss-Newton Hessian)".into(),
            starts: options.starts,
            seed: options.seed,
            max_iterations: options.max_iterations,
            converged: count(|s| matches!(s, vht_fit::StartStatus::Converged)),
            failed: count(|s| matches!(s, vht_fit::StartStatus::Failed(_))),
            at_best: result.starts.iter().filter(|s| s.fval.is_finite() && s.fval - best.fval <= 0.1).count(),
            objective: fval,
            seconds: result.seconds,
        };
        others = result
            .starts
            .iter()
            .filter(|s| !matches!(s.status, vht_fit::StartStatus::Failed(_)) && s.fval.is_finite())
            .map(|s| (s.x.clone(), s.fval))
            .collect();
        (best.x, fval, hessian, summary)
    } else {
        let t0 = std::time::Instant::now();
        let (lb, ub) = objective.scaled_bounds();
        let starts = vht_fit::latin_hypercube(options.starts, &lb, &ub, options.seed);
        let max_evals = 200 * lb.len().max(1);
        let r = dfo::fit(&objective, &starts, max_evals)
            .ok_or_else(|| TwinError::NoFit { reason: "the objective could not be evaluated at any start".into() })?;
        let hessian = dfo::hessian(&objective, &r.x, 1e-3)?;
        let summary = FitSummary {
            optimizer: format!(
                "Nelder-Mead, at most {max_evals} evaluations per start, finite-difference Hessian (the model has no forward sensitivities: algebraic rules, delays, or an event whose time depends on the estimated parameters)"
            ),
            starts: options.starts,
            seed: options.seed,
            max_iterations: max_evals,
            converged: r.values.iter().filter(|v| v.is_finite()).count(),
            failed: r.values.iter().filter(|v| !v.is_finite()).count(),
            at_best: r.values.iter().filter(|v| v.is_finite() && **v - r.fval <= 0.1).count(),
            objective: r.fval,
            seconds: t0.elapsed().as_secs_f64(),
        };
        (r.x, r.fval, hessian, summary)
    };
    summary.objective = fval;
    let cov = covariance(&hessian);
    let est = objective.estimated();
    let parameters = est
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let p = &objective.problem.parameters[i];
            let sd = cov[k][k].max(0.0).sqrt();
            let x = x_best[k];
            let (lo, hi) = (p.scale.apply(p.lower), p.scale.apply(p.upper));
            FittedParameter {
                id: p.id.clone(),
                scale: format!("{:?}", p.scale).to_lowercase(),
                lower: p.lower,
                upper: p.upper,
                value: p.scale.unapply(x),
                scaled: x,
                sd_scaled: sd,
                ci95: [p.scale.unapply((x - 1.96 * sd).max(lo)), p.scale.unapply((x + 1.96 * sd).min(hi))],
            }
        })
        .collect();
    let posterior = match &options.posterior {
        Some(o) => {
            let best = posterior::Mode { x: x_best.clone(), covariance: cov.clone(), objective: fval };
            Some(posterior::sample(&objective, &modes(&objective, best, &others)?, o)?)
        }
        None => None,
    };
    let twin = Twin {
        format: FORMAT.into(),
        pseudonym: imported.pseudonym.clone(),
        model: file_ref("model", &out.join("model.xml"))?,
        problem: "problem/problem.yaml".into(),
        time_unit: imported.time_unit.clone(),
        parameters,
        x_hat: x_best.clone(),
        hessian,
        covariance: cov,
        posterior,
        initial: map.map.initial.clone(),
        doses: imported.doses.clone(),
        covariates: imported.covariates.clone(),
        fit: summary,
        provenance: Provenance {
            inputs: vec![
                FileRef { file: String::new(), ..file_ref("patient", patient)? },
                file_ref("map", map_path)?,
                file_ref("model", &model_path)?,
            ],
            tool: format!("vht-twin {}", env!("CARGO_PKG_VERSION")),
            created: now(),
            measurements: imported.measurements.len(),
            warnings: imported.warnings.clone(),
        },
    };
    write_json(&out.join("twin.json"), &twin)?;
    Ok(twin)
}

/// The posterior mass of a mode `MODE_DEPTH` above the best one is at most
/// about e^-10 ≈ 5e-5 of the best's (unless it is far wider), too little to
/// change a 95% band; deeper optima are left out.
const MODE_DEPTH: f64 = 10.0;
/// At most this many modes (the best included) go to the sampler.
const MAX_MODES: usize = 4;

/// The distinct local optima among the multistart's ends, best first: an end
/// within `MODE_DEPTH` of the best objective that lies more than 3 standard
/// deviations (Mahalanobis distance under each kept mode's covariance) from
/// every mode kept so far. Each gets its own Gauss-Newton covariance.
fn modes(
    objective: &vht_fit::Objective,
    best: posterior::Mode,
    ends: &[(Vec<f64>, f64)],
) -> Result<Vec<posterior::Mode>, TwinError> {
    let mut ends: Vec<&(Vec<f64>, f64)> = ends.iter().filter(|e| e.1 - best.objective <= MODE_DEPTH).collect();
    ends.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut kept = vec![best];
    for (x, _) in ends {
        if kept.len() >= MAX_MODES {
            break;
        }
        let far = |m: &posterior::Mode| {
            let n = x.len();
            let c = nalgebra::DMatrix::from_fn(n, n, |a, b| m.covariance[a][b]);
            let dx = nalgebra::DVector::from_fn(n, |a, _| x[a] - m.x[a]);
            match c.try_inverse() {
                Some(p) => (dx.transpose() * p * &dx)[(0, 0)] > 9.0,
                None => true,
            }
        };
        if !kept.iter().all(far) {
            continue;
        }
        // A start may end on a bound or short of an optimum; its Hessian is
        // still the local curvature the proposals need.
        let Ok((f, _, h)) = objective.evaluate_with_gradient(x) else { continue };
        if f.is_finite() {
            kept.push(posterior::Mode { x: x.clone(), covariance: covariance(&h), objective: f });
        }
    }
    Ok(kept)
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), TwinError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| TwinError::Write { path: path.to_path_buf(), error: std::io::Error::other(e) })?;
    std::fs::write(path, text + "\n").map_err(|error| TwinError::Write { path: path.to_path_buf(), error })
}

/// Reads TWIN/twin.json and checks the model copy against its hash.
pub fn load(dir: &Path) -> Result<Twin, TwinError> {
    let path = dir.join("twin.json");
    let text = std::fs::read_to_string(&path).map_err(|error| TwinError::Io { path: path.clone(), error })?;
    let twin: Twin = serde_json::from_str(&text)
        .map_err(|e| TwinError::Format { path: path.clone(), problem: format!("line {}: {e}", e.line()) })?;
    if twin.format != FORMAT {
        return Err(TwinError::Format { path, problem: format!("format '{}', expected '{FORMAT}'", twin.format) });
    }
    let model = dir.join(&twin.model.file);
    let found = sha256_file(&model)?;
    if found != twin.model.sha256 {
        return Err(TwinError::Hash { path: model, expected: twin.model.sha256.clone(), found });
    }
    Ok(twin)
}

/// Settings of [`predict`]. Plain data.
#[derive(Clone, Debug)]
pub struct PredictOptions {
    pub end: f64,
    /// Output grid step (model time units).
    pub step: f64,
    pub samples: usize,
    pub seed: u64,
    /// Central probability of the bands.
    pub level: f64,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions { end: 420.0, step: 5.0, samples: 200, seed: 0, level: 0.95 }
    }
}

/// One row of a prediction: an observable at a time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PredictionRow {
    pub observable: String,
    pub unit: String,
    pub time: f64,
    /// At the estimate.
    pub best: f64,
    pub median: f64,
    /// Band of the observable (parameter uncertainty).
    pub lower: f64,
    pub upper: f64,
    /// Band of a new measurement (parameter uncertainty and noise).
    pub measured_lower: f64,
    pub measured_upper: f64,
}

#[derive(Clone, Debug)]
pub struct Prediction {
    pub rows: Vec<PredictionRow>,
    pub samples: usize,
    /// Draws whose simulation failed (left out of the quantiles).
    pub failed: usize,
}

/// Simulates the twin with its dose history and `interventions` on
/// `0..=end`, with bands.
pub fn predict(dir: &Path, interventions: &[Intervention], options: &PredictOptions) -> Result<Prediction, TwinError> {
    if !(options.end > 0.0 && options.step > 0.0) {
        return Err(TwinError::Options { problem: "--end and --step must be positive".into() });
    }
    let twin = load(dir)?;
    let map = MapFile::read(&dir.join("map.toml"))?;
    let mut doses = twin.doses.clone();
    for i in interventions {
        doses.extend(i.doses(&map)?);
    }
    doses.sort_by(|a, b| a.time.total_cmp(&b.time));
    // The prediction problem: the twin's tables with a model carrying every dose.
    let work = std::env::temp_dir().join(format!(
        "vht-twin-predict-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&work).map_err(|error| TwinError::Write { path: work.clone(), error })?;
    let result = (|| {
        let problem_dir = dir.join(&twin.problem).parent().map(Path::to_path_buf).unwrap_or_default();
        for f in ["problem.yaml", "parameters.tsv", "conditions.tsv", "observables.tsv", "measurements.tsv"] {
            copy(&problem_dir.join(f), &work.join(f))?;
        }
        let sbml = SbmlText::read(&dir.join(&twin.model.file))?;
        let xml = sbml.with_doses(&twin.initial, &doses)?;
        std::fs::write(work.join("model.xml"), xml)
            .map_err(|error| TwinError::Write { path: work.join("model.xml"), error })?;
        let problem = vht_fit::read(&work.join("problem.yaml"))?;
        vht_fit::Objective::new(problem, vht_fit::Settings::default()).map_err(TwinError::from)
    })();
    let _ = std::fs::remove_dir_all(&work);
    let objective = result?;

    let n = (options.end / options.step).round() as usize;
    let mut times: Vec<f64> = (0..=n).map(|i| (i as f64 * options.step).min(options.end)).collect();
    times.dedup();
    let unit =
        |obs: &str| map.map.observations.iter().find(|o| o.observable == obs).map_or(String::new(), |o| o.unit.clone());
    let mut rows = Vec::new();
    let failed;
    match &twin.posterior {
        // MCMC draws: `samples` of them, evenly spread over the stored ones.
        Some(post) if !post.draws.is_empty() => {
            let n = options.samples.min(post.draws.len()).max(1);
            let draws: Vec<Vec<f64>> = (0..n).map(|i| post.draws[i * post.draws.len() / n].clone()).collect();
            let best = objective.predict(&twin.x_hat, Some(&times))?;
            let (p, m, f) = posterior::bands(&objective, &draws, &times, options.level, options.seed)?;
            failed = f;
            for ((p, m), b) in p.iter().zip(&m).zip(&best) {
                for i in 0..p.times.len() {
                    rows.push(PredictionRow {
                        observable: p.observable.clone(),
                        unit: unit(&p.observable),
                        time: p.times[i],
                        best: b.values[i],
                        median: p.median[i],
                        lower: p.lower[i],
                        upper: p.upper[i],
                        measured_lower: m.lower[i],
                        measured_upper: m.upper[i],
                    });
                }
            }
        }
        _ => {
            let bo = vht_fit::BandOptions {
                samples: options.samples,
                seed: options.seed,
                level: options.level,
                include_noise: false,
            };
            let (params, measured) =
                vht_fit::prediction_and_measurement_bands(&objective, &twin.x_hat, &twin.hessian, Some(&times), &bo)?;
            failed = params.failed.max(measured.failed);
            for (p, m) in params.bands.iter().zip(&measured.bands) {
                for i in 0..p.times.len() {
                    rows.push(PredictionRow {
                        observable: p.observable.clone(),
                        unit: unit(&p.observable),
                        time: p.times[i],
                        best: p.best[i],
                        median: p.median[i],
                        lower: p.lower[i],
                        upper: p.upper[i],
                        measured_lower: m.lower[i],
                        measured_upper: m.upper[i],
                    });
                }
            }
        }
    }
    Ok(Prediction { rows, samples: options.samples, failed })
}

/// A prediction as CSV.
pub fn prediction_csv(p: &Prediction) -> String {
    let mut s = String::from("observable,unit,time,best,median,lower,upper,measured_lower,measured_upper\n");
    for r in &p.rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            r.observable,
            r.unit,
            num(r.time),
            r.best,
            r.median,
            r.lower,
            r.upper,
            r.measured_lower,
            r.measured_upper
        );
    }
    s
}

/// Reads a prediction CSV written by [`prediction_csv`].
pub fn read_prediction_csv(path: &Path) -> Result<Prediction, TwinError> {
    let text = std::fs::read_to_string(path).map_err(|error| TwinError::Io { path: path.to_path_buf(), error })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad =
            |what: &str| TwinError::Format { path: path.to_path_buf(), problem: format!("line {}: {what}", i + 1) };
        if f.len() != 9 {
            return Err(bad("expected 9 columns"));
        }
        let n = |k: usize| f[k].parse::<f64>().map_err(|_| bad(&format!("column {} is not a number", k + 1)));
        rows.push(PredictionRow {
            observable: f[0].into(),
            unit: f[1].into(),
            time: n(2)?,
            best: n(3)?,
            median: n(4)?,
            lower: n(5)?,
            upper: n(6)?,
            measured_lower: n(7)?,
            measured_upper: n(8)?,
        });
    }
    Ok(Prediction { rows, samples: 0, failed: 0 })
}

/// One held-back measurement against the band of a new measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRow {
    pub observable: String,
    pub time: f64,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
    pub inside: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    pub rows: Vec<CheckRow>,
    pub inside: usize,
    pub total: usize,
}

/// Reads the held-back file together with the patient's bundle (for the
/// time origin and the patient), and checks each held-back measurement
/// against the band of a new measurement (linear interpolation between
/// grid times). A held-back time outside the prediction is an error.
pub fn check(
    dir: &Path,
    patient: &Path,
    held_back: &Path,
    key: &[u8],
    prediction: &Prediction,
) -> Result<Coverage, TwinError> {
    let twin = load(dir)?;
    let map = MapFile::read(&dir.join("map.toml"))?;
    let imported = vht_fhir::extract_many(&[patient, held_back], &map, key)?;
    if imported.pseudonym != twin.pseudonym {
        return Err(TwinError::OtherPatient { expected: twin.pseudonym, found: imported.pseudonym });
    }
    let mut rows = Vec::new();
    for m in imported.measurements.iter().filter(|m| m.source == 1) {
        let grid: Vec<&PredictionRow> = prediction.rows.iter().filter(|r| r.observable == m.observable).collect();
        let k = grid.iter().position(|r| r.time >= m.time).ok_or_else(|| TwinError::Options {
            problem: format!("held-back {} at t = {} is after the prediction's end", m.observable, m.time),
        })?;
        let (lower, upper) = if grid[k].time == m.time || k == 0 {
            (grid[k].measured_lower, grid[k].measured_upper)
        } else {
            let (a, b) = (grid[k - 1], grid[k]);
            let w = (m.time - a.time) / (b.time - a.time);
            (
                a.measured_lower + w * (b.measured_lower - a.measured_lower),
                a.measured_upper + w * (b.measured_upper - a.measured_upper),
            )
        };
        rows.push(CheckRow {
            observable: m.observable.clone(),
            time: m.time,
            value: m.value,
            lower,
            upper,
            inside: lower <= m.value && m.value <= upper,
        });
    }
    let inside = rows.iter().filter(|r| r.inside).count();
    Ok(Coverage { total: rows.len(), inside, rows })
}
