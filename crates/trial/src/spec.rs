//! The trial specification: a TOML file, read into typed, checked settings.
//!
//! Reading happens in two steps. `serde` + `toml` turn the text into raw
//! structs whose every field keeps its span, so that later checks (a
//! negative standard deviation, a correlation matrix of the wrong size) can
//! name the line; [`Spec::parse`] then checks everything that does not need
//! the model. Ids are checked against the model in [`crate::plan`].
//! The format is documented in `examples/trials/README.md` and
//! `examples/trials/trial.schema.json`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Location, TrialError};

/// A checked trial specification.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The spec file (for messages).
    pub path: PathBuf,
    /// Its text (part of a run's fingerprint).
    pub text: String,
    pub name: String,
    /// The SBML file, resolved relative to the spec's folder.
    pub model: PathBuf,
    pub simulation: Simulation,
    pub population: Population,
    pub arms: Vec<Arm>,
    /// How patients meet the arms.
    pub assignment: Assignment,
    pub endpoints: Vec<Endpoint>,
    pub analysis: Analysis,
    pub output: Output,
}

/// How patients are assigned to arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// Every patient goes through every arm; arms are compared within patients.
    Crossover,
    /// Each patient gets one arm, by permuted-block randomisation with the
    /// arms' ratios (seeded); arms are compared between groups.
    Randomised,
}

/// Extra outputs of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Write `trajectories.parquet` (patient, arm, time, variables).
    pub trajectories: bool,
    /// The first this many patients get their trajectories written.
    pub patients: u64,
    /// What the trajectory file holds: model ids or expressions (default:
    /// every endpoint's variable or expression).
    pub variables: Vec<String>,
    pub variables_at: Option<Location>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    pub start: f64,
    pub end: f64,
    /// Spacing of the output grid that minima, maxima and plots read.
    pub step: f64,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// Independent pseudo-random draws, one stream per candidate.
    Random,
    /// Latin hypercube: each block of `size` candidates is one design.
    Lhs,
    /// Owen-scrambled Sobol points, candidate `i` is point `i`.
    Sobol,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Population {
    pub size: u64,
    pub seed: u64,
    pub sampler: Sampler,
    pub max_candidates: u64,
    pub parameters: Vec<Parameter>,
    /// Full correlation matrix over `parameters` (in their order), if any.
    pub correlation: Option<Vec<Vec<f64>>>,
    pub correlation_at: Option<Location>,
    pub constraints: Vec<Constraint>,
    /// Covariates resampled from a table of real patients.
    pub covariates: Option<Covariates>,
}

impl Population {
    /// The ids a patient's values are for, in order: the sampled
    /// parameters, then the covariates.
    pub fn columns(&self) -> Vec<String> {
        let mut v: Vec<String> = self.parameters.iter().map(|p| p.id.clone()).collect();
        if let Some(c) = &self.covariates {
            v.extend(c.ids.iter().cloned());
        }
        v
    }
}

/// Covariates drawn together from the rows of a CSV table (a bootstrap of
/// whole rows, so their joint distribution is kept): candidate `i` gets
/// row `r(seed, i)`, uniformly.
#[derive(Clone, Debug, PartialEq)]
pub struct Covariates {
    pub file: PathBuf,
    /// Model ids set by the covariates (each a column of the table).
    pub ids: Vec<String>,
    /// Where each id is named in the spec.
    pub at: Vec<Location>,
    /// `rows[r][k]`: row `r`'s value of `ids[k]`.
    pub rows: Vec<Vec<f64>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub id: String,
    pub at: Location,
    pub dist: Dist,
}

/// A marginal distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    Normal {
        mean: f64,
        sd: f64,
    },
    /// `ln(x)` is normal with median `exp(mu)` and standard deviation `sigma`.
    LogNormal {
        median: f64,
        sigma: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    /// A normal restricted to `[low, high]` (either may be infinite).
    TruncNormal {
        mean: f64,
        sd: f64,
        low: f64,
        high: f64,
    },
}

/// A plausibility constraint: `min <= scale * variable(time) <= max`.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub variable: String,
    pub at: Location,
    pub time: f64,
    pub min: f64,
    pub max: f64,
    pub scale: f64,
}

impl Constraint {
    pub fn label(&self) -> String {
        let v = &self.variable;
        let range = match (self.min.is_finite(), self.max.is_finite()) {
            (true, false) => format!("{v} >= {}", self.min),
            (false, true) => format!("{v} <= {}", self.max),
            _ => format!("{v} in [{}, {}]", self.min, self.max),
        };
        format!("{range} at t = {}", self.time)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    pub name: String,
    pub interventions: Vec<Intervention>,
    /// Allocation ratio under randomisation (1 unless given).
    pub ratio: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Intervention {
    pub target: String,
    pub at: Location,
    pub kind: InterventionKind,
    /// Start times, ascending (one per dose of a repeated schedule).
    pub times: Vec<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InterventionKind {
    /// Adds `amount` to the target (a species' amount, or a variable) at each time.
    Bolus { amount: f64 },
    /// Adds `rate` to the target's rate of change for `duration` from each time.
    Infusion { rate: f64, duration: f64 },
    /// Sets a parameter (or variable) to a value at each time.
    Set { value: f64 },
    /// Multiplies a parameter (or variable) by a factor at each time.
    Scale { factor: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub name: String,
    /// A model id, or the text of an expression over model ids.
    pub variable: String,
    /// `variable` is an expression (`expression = "..."` in the spec).
    pub expression: bool,
    pub at: Location,
    /// Multiplies the variable (unit conversion) before anything is computed.
    pub scale: f64,
    pub kind: EndpointKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EndpointKind {
    Value {
        time: f64,
    },
    Min {
        from: f64,
        to: f64,
    },
    Max {
        from: f64,
        to: f64,
    },
    TimeOfMin {
        from: f64,
        to: f64,
    },
    TimeOfMax {
        from: f64,
        to: f64,
    },
    /// Integral over `[from, to]`, computed by an added quadrature state.
    Auc {
        from: f64,
        to: f64,
    },
    /// Time spent with `low <= value <= high` in `[from, to]`.
    TimeInRange {
        low: f64,
        high: f64,
        from: f64,
        to: f64,
    },
    /// First time the value crosses `threshold` upward (`up`) or downward.
    FirstCrossing {
        threshold: f64,
        up: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub quantiles: Vec<f64>,
    pub bootstrap: usize,
    pub confidence: f64,
    pub seed: u64,
    /// Index of the control arm in [`Spec::arms`].
    pub control: usize,
    pub responders: Vec<Responder>,
    /// Sobol indices of endpoints with respect to the population parameters.
    pub sobol: Option<Sobol>,
}

/// Global sensitivity analysis (Saltelli sampling; see [`crate::sensitivity`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Sobol {
    /// Indices into [`Spec::endpoints`].
    pub endpoints: Vec<usize>,
    /// Index of the arm simulated.
    pub arm: usize,
    /// Base samples `n`: the design costs `n (d + 2)` simulations.
    pub samples: usize,
    pub bootstrap: usize,
    pub seed: u64,
}

/// A patient responds when endpoint `endpoint` is above (or below) `threshold`.
#[derive(Clone, Debug, PartialEq)]
pub struct Responder {
    pub endpoint: usize,
    pub threshold: f64,
    pub above: bool,
}

impl Responder {
    pub fn label(&self, endpoints: &[Endpoint]) -> String {
        format!("{} {} {}", endpoints[self.endpoint].name, if self.above { ">" } else { "<" }, self.threshold)
    }
}

// ---- raw, as written -------------------------------------------------------

type S<T> = Spanned<T>;

/// Checks that a time lies in the simulated interval.
type InRun<'a> = dyn Fn(&S<f64>, &str) -> Result<f64, TrialError> + 'a;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    model: S<String>,
    simulation: S<RawSimulation>,
    population: S<RawPopulation>,
    assignment: Option<S<String>>,
    arms: S<Vec<S<RawArm>>>,
    endpoints: S<Vec<S<RawEndpoint>>>,
    #[serde(default)]
    analysis: Option<S<RawAnalysis>>,
    output: Option<S<RawOutput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    trajectories: Option<bool>,
    patients: Option<S<u64>>,
    variables: Option<S<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCovariates {
    file: S<String>,
    ids: Option<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimulation {
    start: Option<S<f64>>,
    end: S<f64>,
    step: Option<S<f64>>,
    rtol: Option<S<f64>>,
    atol: Option<S<f64>>,
    max_steps: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulation {
    size: S<u64>,
    seed: Option<u64>,
    sampler: Option<S<String>>,
    max_candidates: Option<S<u64>>,
    #[serde(default)]
    parameters: Vec<S<RawParameter>>,
    correlation: Option<S<RawCorrelation>>,
    #[serde(default)]
    constraints: Vec<S<RawConstraint>>,
    covariates: Option<S<RawCovariates>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    id: S<String>,
    dist: S<String>,
    mean: Option<S<f64>>,
    sd: Option<S<f64>>,
    median: Option<S<f64>>,
    sigma: Option<S<f64>>,
    low: Option<S<f64>>,
    high: Option<S<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCorrelation {
    ids: Option<Vec<S<String>>>,
    matrix: S<Vec<Vec<f64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstraint {
    variable: S<String>,
    time: S<f64>,
    min: Option<S<f64>>,
    max: Option<S<f64>>,
    scale: Option<S<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    name: S<String>,
    ratio: Option<S<u64>>,
    #[serde(default)]
    interventions: Vec<S<RawIntervention>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntervention {
    #[serde(rename = "type")]
    kind: S<String>,
    target: S<String>,
    amount: Option<S<f64>>,
    rate: Option<S<f64>>,
    duration: Option<S<f64>>,
    value: Option<S<f64>>,
    factor: Option<S<f64>>,
    at: Option<S<f64>>,
    every: Option<S<f64>>,
    count: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    name: S<String>,
    variable: Option<S<String>>,
    expression: Option<S<String>>,
    kind: S<String>,
    scale: Option<S<f64>>,
    time: Option<S<f64>>,
    from: Option<S<f64>>,
    to: Option<S<f64>>,
    low: Option<S<f64>>,
    high: Option<S<f64>>,
    threshold: Option<S<f64>>,
    direction: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAnalysis {
    quantiles: Option<S<Vec<f64>>>,
    bootstrap: Option<S<u64>>,
    confidence: Option<S<f64>>,
    seed: Option<u64>,
    control: Option<S<String>>,
    #[serde(default)]
    responders: Vec<S<RawResponder>>,
    sobol: Option<S<RawSobol>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSobol {
    endpoints: Option<Vec<S<String>>>,
    arm: Option<S<String>>,
    samples: Option<S<u64>>,
    bootstrap: Option<S<u64>>,
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponder {
    endpoint: S<String>,
    above: Option<S<f64>>,
    below: Option<S<f64>>,
}

/// Turns spans into locations and builds errors.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }
    fn loc(&self, span: Range<usize>, field: &str) -> Location {
        Location { file: self.path.to_path_buf(), line: self.line(span), field: field.to_string() }
    }
    fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> TrialError {
        TrialError::Spec { at: self.loc(span, field), message: message.into() }
    }
    /// A required field of a table that lacks it: the table's line.
    fn need<T: Copy>(&self, v: &Option<S<T>>, table: Range<usize>, field: &str, why: &str) -> Result<T, TrialError> {
        match v {
            Some(x) => Ok(*x.get_ref()),
            None => Err(self.err(table, field, format!("missing; {why}"))),
        }
    }
}

fn finite(ctx: &Ctx, v: &S<f64>, field: &str) -> Result<f64, TrialError> {
    let x = *v.get_ref();
    if x.is_finite() {
        Ok(x)
    } else {
        Err(ctx.err(v.span(), field, format!("must be a finite number (found {x})")))
    }
}

fn positive(ctx: &Ctx, v: &S<f64>, field: &str) -> Result<f64, TrialError> {
    let x = finite(ctx, v, field)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(ctx.err(v.span(), field, format!("must be positive (found {x})")))
    }
}

fn opt_finite(ctx: &Ctx, v: &Option<S<f64>>, field: &str, default: f64) -> Result<f64, TrialError> {
    match v {
        Some(x) => finite(ctx, x, field),
        None => Ok(default),
    }
}

impl Spec {
    /// Reads and checks a spec file.
    pub fn from_file(path: &Path) -> Result<Spec, TrialError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TrialError::Io { path: path.to_path_buf(), source })?;
        Spec::parse(&text, path)
    }

    /// Checks a spec's text; `path` names it in messages and anchors the model path.
    pub fn parse(text: &str, path: &Path) -> Result<Spec, TrialError> {
        let ctx = Ctx { path, text };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            TrialError::Spec { at: ctx.loc(span.clone(), &field_at(text, span)), message: e.message().to_string() }
        })?;

        let sim = raw.simulation.get_ref();
        let start = opt_finite(&ctx, &sim.start, "simulation.start", 0.0)?;
        let end = finite(&ctx, &sim.end, "simulation.end")?;
        if end <= start {
            return Err(ctx.err(sim.end.span(), "simulation.end", format!("must be after simulation.start ({start})")));
        }
        let step = match &sim.step {
            Some(s) => positive(&ctx, s, "simulation.step")?,
            None => (end - start) / 1000.0,
        };
        if (end - start) / step > 10_000_000.0 {
            return Err(ctx.err(
                sim.step.as_ref().map_or(raw.simulation.span(), |s| s.span()),
                "simulation.step",
                "gives more than 10 million output points",
            ));
        }
        let simulation = Simulation {
            start,
            end,
            step,
            rtol: match &sim.rtol {
                Some(v) => positive(&ctx, v, "simulation.rtol")?,
                None => 1e-6,
            },
            atol: match &sim.atol {
                Some(v) => positive(&ctx, v, "simulation.atol")?,
                None => 1e-9,
            },
            max_steps: sim.max_steps.as_ref().map_or(500_000, |v| *v.get_ref() as usize),
        };
        let in_run = |v: &S<f64>, field: &str| -> Result<f64, TrialError> {
            let x = finite(&ctx, v, field)?;
            if x < start || x > end {
                return Err(ctx.err(v.span(), field, format!("{x} is outside the simulated time [{start}, {end}]")));
            }
            Ok(x)
        };

        let mut population = parse_population(&ctx, &raw.population, &in_run)?;
        if let Some(c) = &raw.population.get_ref().covariates {
            population.covariates = Some(parse_covariates(&ctx, c, path, &population.parameters)?);
        }

        let mut arms = Vec::new();
        if raw.arms.get_ref().is_empty() {
            return Err(ctx.err(raw.arms.span(), "arms", "at least one arm is needed"));
        }
        for (i, arm) in raw.arms.get_ref().iter().enumerate() {
            let a = arm.get_ref();
            let name = a.name.get_ref().trim().to_string();
            if name.is_empty() || name.contains(['/', '\\', '\n']) {
                return Err(ctx.err(
                    a.name.span(),
                    &format!("arms[{i}].name"),
                    "must be a non-empty name without slashes",
                ));
            }
            if arms.iter().any(|x: &Arm| x.name == name) {
                return Err(ctx.err(
                    a.name.span(),
                    &format!("arms[{i}].name"),
                    format!("arm '{name}' is defined twice"),
                ));
            }
            let mut interventions = Vec::new();
            for (j, iv) in a.interventions.iter().enumerate() {
                interventions.push(parse_intervention(
                    &ctx,
                    iv,
                    &format!("arms[{i}].interventions[{j}]"),
                    start,
                    &in_run,
                )?);
            }
            let ratio = match &a.ratio {
                None => 1,
                Some(r) if *r.get_ref() == 0 || *r.get_ref() > 1000 => {
                    return Err(ctx.err(r.span(), &format!("arms[{i}].ratio"), "must be a whole number from 1 to 1000"))
                }
                Some(r) => *r.get_ref() as u32,
            };
            arms.push(Arm { name, interventions, ratio });
        }
        let assignment = match raw.assignment.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("crossover", _)) => Assignment::Crossover,
            Some(("randomised" | "randomized", _)) => Assignment::Randomised,
            Some((other, span)) => {
                return Err(ctx.err(
                    span,
                    "assignment",
                    format!("unknown assignment '{other}' (expected \"crossover\" or \"randomised\")"),
                ))
            }
        };
        if assignment == Assignment::Crossover {
            if let Some((i, r)) =
                raw.arms.get_ref().iter().enumerate().find_map(|(i, a)| Some((i, a.get_ref().ratio.as_ref()?)))
            {
                return Err(ctx.err(
                    r.span(),
                    &format!("arms[{i}].ratio"),
                    "an allocation ratio needs assignment = \"randomised\" (in a crossover every patient gets every arm)",
                ));
            }
        }

        let mut endpoints = Vec::new();
        if raw.endpoints.get_ref().is_empty() {
            return Err(ctx.err(raw.endpoints.span(), "endpoints", "at least one endpoint is needed"));
        }
        for (i, ep) in raw.endpoints.get_ref().iter().enumerate() {
            let e = parse_endpoint(&ctx, ep, &format!("endpoints[{i}]"), start, end, &in_run)?;
            let reserved = ["patient", "candidate", "arm", "status", "reason"];
            if reserved.contains(&e.name.as_str())
                || endpoints.iter().any(|x: &Endpoint| x.name == e.name)
                || population.columns().contains(&e.name)
            {
                return Err(ctx.err(
                    ep.get_ref().name.span(),
                    &format!("endpoints[{i}].name"),
                    format!("'{}' is already a column (of another endpoint, a parameter, or the table itself)", e.name),
                ));
            }
            endpoints.push(e);
        }

        let analysis = parse_analysis(&ctx, raw.analysis.as_ref(), &arms, &endpoints, population.seed)?;
        let output = match &raw.output {
            None => Output { trajectories: false, patients: 100, variables: vec![], variables_at: None },
            Some(o) => {
                let o = o.get_ref();
                let patients =
                    match &o.patients {
                        None => 100,
                        Some(n) if *n.get_ref() == 0 || *n.get_ref() > 10_000 => return Err(ctx.err(
                            n.span(),
                            "output.patients",
                            "must be from 1 to 10000 (trajectories are a sample, held in memory, not the whole trial)",
                        )),
                        Some(n) => *n.get_ref(),
                    };
                let (variables, variables_at) = match &o.variables {
                    None => (vec![], None),
                    Some(v) => (v.get_ref().clone(), Some(ctx.loc(v.span(), "output.variables"))),
                };
                Output { trajectories: o.trajectories.unwrap_or(false), patients, variables, variables_at }
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Spec {
            path: path.to_path_buf(),
            text: text.to_string(),
            name: raw.name.unwrap_or_else(|| {
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "trial".into())
            }),
            model: dir.join(raw.model.get_ref()),
            simulation,
            population,
            arms,
            assignment,
            endpoints,
            analysis,
            output,
        })
    }
}

/// The key written on the line a TOML error points at, or the table header.
fn field_at(text: &str, span: Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    match line.split_once('=') {
        Some((k, _)) => k.trim().to_string(),
        None => line.trim_matches(['[', ']']).to_string(),
    }
}

fn parse_population(ctx: &Ctx, raw: &S<RawPopulation>, in_run: &InRun) -> Result<Population, TrialError> {
    let p = raw.get_ref();
    let size = *p.size.get_ref();
    if size == 0 {
        return Err(ctx.err(p.size.span(), "population.size", "must be at least 1"));
    }
    let sampler = match p.sampler.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("random") => Sampler::Random,
        Some("lhs") => Sampler::Lhs,
        Some("sobol") => Sampler::Sobol,
        Some(other) => {
            let span = p.sampler.as_ref().map_or(raw.span(), |s| s.span());
            return Err(ctx.err(
                span,
                "population.sampler",
                format!("unknown sampler '{other}' (expected \"random\", \"lhs\" or \"sobol\")"),
            ));
        }
    };
    let mut parameters = Vec::new();
    for (i, rp) in p.parameters.iter().enumerate() {
        let field = format!("population.parameters[{i}]");
        let r = rp.get_ref();
        let span = rp.span();
        let dist_name = r.dist.get_ref().as_str();
        let need = |v: &Option<S<f64>>, name: &str| -> Result<f64, TrialError> {
            let x =
                ctx.need(v, span.clone(), &format!("{field}.{name}"), &format!("a {dist_name} distribution needs it"))?;
            finite(ctx, v.as_ref().expect("checked by need"), &format!("{field}.{name}")).map(|_| x)
        };
        let pos = |v: &Option<S<f64>>, name: &str| -> Result<f64, TrialError> {
            need(v, name)?;
            positive(ctx, v.as_ref().expect("checked by need"), &format!("{field}.{name}"))
        };
        let allowed: &[&str] = match dist_name {
            "normal" => &["mean", "sd"],
            "lognormal" => &["median", "sigma"],
            "uniform" => &["low", "high"],
            "truncnormal" => &["mean", "sd", "low", "high"],
            other => {
                return Err(ctx.err(
                    r.dist.span(),
                    &format!("{field}.dist"),
                    format!(
                        "unknown distribution '{other}' (expected \"normal\", \"lognormal\", \"uniform\" or \"truncnormal\")"
                    ),
                ))
            }
        };
        for (name, v) in [
            ("mean", &r.mean),
            ("sd", &r.sd),
            ("median", &r.median),
            ("sigma", &r.sigma),
            ("low", &r.low),
            ("high", &r.high),
        ] {
            if let Some(v) = v {
                if !allowed.contains(&name) {
                    return Err(ctx.err(
                        v.span(),
                        &format!("{field}.{name}"),
                        format!("a {dist_name} distribution takes {}", allowed.join(", ")),
                    ));
                }
            }
        }
        let dist = match dist_name {
            "normal" => Dist::Normal { mean: need(&r.mean, "mean")?, sd: pos(&r.sd, "sd")? },
            "lognormal" => Dist::LogNormal { median: pos(&r.median, "median")?, sigma: pos(&r.sigma, "sigma")? },
            "uniform" => {
                let (low, high) = (need(&r.low, "low")?, need(&r.high, "high")?);
                if high <= low {
                    return Err(ctx.err(span, &format!("{field}.high"), format!("must be above low ({low})")));
                }
                Dist::Uniform { low, high }
            }
            _ => {
                let low = r.low.as_ref().map_or(f64::NEG_INFINITY, |v| *v.get_ref());
                let high = r.high.as_ref().map_or(f64::INFINITY, |v| *v.get_ref());
                if r.low.is_none() && r.high.is_none() {
                    return Err(ctx.err(span, &field, "a truncnormal distribution needs low, high or both"));
                }
                if high <= low || low.is_nan() || high.is_nan() {
                    return Err(ctx.err(span, &format!("{field}.high"), format!("must be above low ({low})")));
                }
                let (mean, sd) = (need(&r.mean, "mean")?, pos(&r.sd, "sd")?);
                // Too far in a tail, the mass between the bounds underflows.
                let (a, b) = ((low - mean) / sd, (high - mean) / sd);
                if a > 30.0 || b < -30.0 {
                    return Err(ctx.err(
                        span,
                        &field,
                        "the bounds hold no probability mass (more than 30 sd from the mean)",
                    ));
                }
                Dist::TruncNormal { mean, sd, low, high }
            }
        };
        let id = r.id.get_ref().clone();
        if parameters.iter().any(|x: &Parameter| x.id == id) {
            return Err(ctx.err(r.id.span(), &format!("{field}.id"), format!("'{id}' is sampled twice")));
        }
        parameters.push(Parameter { id, at: ctx.loc(r.id.span(), &format!("{field}.id")), dist });
    }

    let (correlation, correlation_at) = match &p.correlation {
        None => (None, None),
        Some(c) => {
            let (m, at) = parse_correlation(ctx, c, &parameters)?;
            (Some(m), Some(at))
        }
    };

    let mut constraints = Vec::new();
    for (i, rc) in p.constraints.iter().enumerate() {
        let field = format!("population.constraints[{i}]");
        let c = rc.get_ref();
        let min = c.min.as_ref().map_or(Ok(f64::NEG_INFINITY), |v| finite(ctx, v, &format!("{field}.min")))?;
        let max = c.max.as_ref().map_or(Ok(f64::INFINITY), |v| finite(ctx, v, &format!("{field}.max")))?;
        if c.min.is_none() && c.max.is_none() {
            return Err(ctx.err(rc.span(), &field, "a constraint needs min, max or both"));
        }
        if max < min {
            return Err(ctx.err(rc.span(), &format!("{field}.max"), format!("is below min ({min})")));
        }
        constraints.push(Constraint {
            variable: c.variable.get_ref().clone(),
            at: ctx.loc(c.variable.span(), &format!("{field}.variable")),
            time: in_run(&c.time, &format!("{field}.time"))?,
            min,
            max,
            scale: opt_finite(ctx, &c.scale, &format!("{field}.scale"), 1.0)?,
        });
    }

    let default_max = size.saturating_mul(if constraints.is_empty() { 1 } else { 20 }).max(1000);
    let max_candidates = match &p.max_candidates {
        Some(m) if *m.get_ref() < size => {
            return Err(ctx.err(
                m.span(),
                "population.max_candidates",
                format!("must be at least population.size ({size})"),
            ))
        }
        Some(m) => *m.get_ref(),
        None => default_max,
    };
    if sampler == Sampler::Sobol && parameters.len() > crate::sample::SOBOL_MAX_DIMS {
        return Err(ctx.err(
            p.sampler.as_ref().map_or(raw.span(), |s| s.span()),
            "population.sampler",
            format!("the Sobol sampler supports up to {} parameters", crate::sample::SOBOL_MAX_DIMS),
        ));
    }
    if sampler == Sampler::Sobol && max_candidates > 1 << 32 {
        return Err(ctx.err(
            raw.span(),
            "population.max_candidates",
            "the Sobol sampler supports up to 2^32 candidates",
        ));
    }
    Ok(Population {
        size,
        seed: p.seed.unwrap_or(1),
        sampler,
        max_candidates,
        parameters,
        correlation,
        correlation_at,
        constraints,
        covariates: None,
    })
}

/// The correlation matrix over all sampled parameters: the given block is
/// placed at the rows of its ids, everything else is independent.
fn parse_correlation(
    ctx: &Ctx,
    c: &S<RawCorrelation>,
    parameters: &[Parameter],
) -> Result<(Vec<Vec<f64>>, Location), TrialError> {
    let field = "population.correlation";
    let raw = c.get_ref();
    let ids: Vec<(String, Range<usize>)> = match &raw.ids {
        Some(ids) => ids.iter().map(|s| (s.get_ref().clone(), s.span())).collect(),
        None => parameters.iter().map(|p| (p.id.clone(), c.span())).collect(),
    };
    let mut index = Vec::new();
    for (k, (id, span)) in ids.iter().enumerate() {
        match parameters.iter().position(|p| &p.id == id) {
            Some(i) if !index.contains(&i) => index.push(i),
            Some(_) => {
                return Err(ctx.err(span.clone(), &format!("{field}.ids[{k}]"), format!("'{id}' is listed twice")))
            }
            None => {
                return Err(TrialError::UnknownId {
                    at: ctx.loc(span.clone(), &format!("{field}.ids[{k}]")),
                    id: id.clone(),
                    problem: "is not one of population.parameters".into(),
                    nearest: crate::error::nearest(id, parameters.iter().map(|p| p.id.as_str())),
                })
            }
        }
    }
    let m = raw.matrix.get_ref();
    let n = index.len();
    let mspan = raw.matrix.span();
    if m.len() != n || m.iter().any(|r| r.len() != n) {
        return Err(ctx.err(
            mspan,
            &format!("{field}.matrix"),
            format!("must be {n} x {n} (one row and column per id)"),
        ));
    }
    #[allow(clippy::needless_range_loop)] // (i, j) and (j, i) are both read
    for i in 0..n {
        if (m[i][i] - 1.0).abs() > 1e-12 {
            return Err(ctx.err(
                mspan,
                &format!("{field}.matrix"),
                format!("diagonal entry {} is {}, not 1", i + 1, m[i][i]),
            ));
        }
        for j in 0..n {
            if !m[i][j].is_finite() || m[i][j].abs() > 1.0 || (m[i][j] - m[j][i]).abs() > 1e-12 {
                return Err(ctx.err(
                    mspan,
                    &format!("{field}.matrix"),
                    format!(
                        "entry ({}, {}) must be in [-1, 1] and equal to entry ({}, {})",
                        i + 1,
                        j + 1,
                        j + 1,
                        i + 1
                    ),
                ));
            }
        }
    }
    let np = parameters.len();
    let mut full = vec![vec![0.0; np]; np];
    for (i, row) in full.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for a in 0..n {
        for b in 0..n {
            full[index[a]][index[b]] = m[a][b];
        }
    }
    if crate::sample::cholesky(&full).is_none() {
        return Err(ctx.err(
            mspan,
            &format!("{field}.matrix"),
            "is not positive definite (not a valid correlation matrix)",
        ));
    }
    Ok((full, ctx.loc(mspan, &format!("{field}.matrix"))))
}

fn schedule(ctx: &Ctx, r: &RawIntervention, field: &str, in_run: &InRun, start: f64) -> Result<Vec<f64>, TrialError> {
    let at = match &r.at {
        Some(v) => in_run(v, &format!("{field}.at"))?,
        None => start,
    };
    let count = r.count.as_ref().map_or(1, |c| *c.get_ref());
    if count == 0 {
        return Err(ctx.err(
            r.count.as_ref().map_or(0..0, |c| c.span()),
            &format!("{field}.count"),
            "must be at least 1",
        ));
    }
    let every = match &r.every {
        Some(v) => positive(ctx, v, &format!("{field}.every"))?,
        None if count > 1 => {
            return Err(ctx.err(
                r.target.span(),
                &format!("{field}.every"),
                "missing; a repeated dose (count > 1) needs it",
            ))
        }
        None => 0.0,
    };
    if count > 10_000 {
        return Err(ctx.err(r.target.span(), &format!("{field}.count"), "more than 10000 doses"));
    }
    Ok((0..count).map(|k| at + every * k as f64).collect())
}

fn parse_intervention(
    ctx: &Ctx,
    iv: &S<RawIntervention>,
    field: &str,
    start: f64,
    in_run: &InRun,
) -> Result<Intervention, TrialError> {
    let r = iv.get_ref();
    let span = iv.span();
    let kind_name = r.kind.get_ref().as_str();
    let only = |allowed: &[&str]| -> Result<(), TrialError> {
        for (name, present) in [
            ("amount", r.amount.is_some()),
            ("rate", r.rate.is_some()),
            ("duration", r.duration.is_some()),
            ("value", r.value.is_some()),
            ("factor", r.factor.is_some()),
        ] {
            if present && !allowed.contains(&name) {
                return Err(ctx.err(
                    span.clone(),
                    &format!("{field}.{name}"),
                    format!("a {kind_name} intervention takes {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    };
    let need = |v: &Option<S<f64>>, name: &str| -> Result<f64, TrialError> {
        match v {
            Some(x) => finite(ctx, x, &format!("{field}.{name}")),
            None => Err(ctx.err(
                span.clone(),
                &format!("{field}.{name}"),
                format!("missing; a {kind_name} intervention needs it"),
            )),
        }
    };
    let kind = match kind_name {
        "bolus" => {
            only(&["amount"])?;
            InterventionKind::Bolus { amount: need(&r.amount, "amount")? }
        }
        "infusion" => {
            only(&["rate", "duration"])?;
            need(&r.duration, "duration")?;
            let duration = positive(ctx, r.duration.as_ref().expect("checked"), &format!("{field}.duration"))?;
            InterventionKind::Infusion { rate: need(&r.rate, "rate")?, duration }
        }
        "set" => {
            only(&["value", "factor"])?;
            match (&r.value, &r.factor) {
                (Some(_), None) => InterventionKind::Set { value: need(&r.value, "value")? },
                (None, Some(_)) => InterventionKind::Scale { factor: need(&r.factor, "factor")? },
                _ => {
                    return Err(ctx.err(
                        span,
                        &format!("{field}.value"),
                        "a set intervention needs either value or factor",
                    ))
                }
            }
        }
        other => {
            return Err(ctx.err(
                r.kind.span(),
                &format!("{field}.type"),
                format!("unknown intervention '{other}' (expected \"bolus\", \"infusion\" or \"set\")"),
            ))
        }
    };
    Ok(Intervention {
        target: r.target.get_ref().clone(),
        at: ctx.loc(r.target.span(), &format!("{field}.target")),
        kind,
        times: schedule(ctx, r, field, in_run, start)?,
    })
}

fn parse_endpoint(
    ctx: &Ctx,
    ep: &S<RawEndpoint>,
    field: &str,
    start: f64,
    end: f64,
    in_run: &InRun,
) -> Result<Endpoint, TrialError> {
    let r = ep.get_ref();
    let span = ep.span();
    let kind_name = r.kind.get_ref().as_str();
    let name = r.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(ctx.err(r.name.span(), &format!("{field}.name"), "must not be empty"));
    }
    let need = |v: &Option<S<f64>>, n: &str| -> Result<f64, TrialError> {
        match v {
            Some(x) => finite(ctx, x, &format!("{field}.{n}")),
            None => {
                Err(ctx.err(span.clone(), &format!("{field}.{n}"), format!("missing; a {kind_name} endpoint needs it")))
            }
        }
    };
    let window = || -> Result<(f64, f64), TrialError> {
        let from = match &r.from {
            Some(v) => in_run(v, &format!("{field}.from"))?,
            None => start,
        };
        let to = match &r.to {
            Some(v) => in_run(v, &format!("{field}.to"))?,
            None => end,
        };
        if to <= from {
            return Err(ctx.err(span.clone(), &format!("{field}.to"), format!("must be after from ({from})")));
        }
        Ok((from, to))
    };
    let allowed: &[&str] = match kind_name {
        "value" => &["time"],
        "min" | "max" | "time_of_min" | "time_of_max" | "auc" => &["from", "to"],
        "time_in_range" => &["low", "high", "from", "to"],
        "first_crossing" => &["threshold", "direction"],
        other => {
            return Err(ctx.err(
                r.kind.span(),
                &format!("{field}.kind"),
                format!(
                    "unknown endpoint kind '{other}' (expected one of value, min, max, time_of_min, time_of_max, auc, time_in_range, first_crossing)"
                ),
            ))
        }
    };
    for (n, present) in [
        ("time", r.time.is_some()),
        ("from", r.from.is_some()),
        ("to", r.to.is_some()),
        ("low", r.low.is_some()),
        ("high", r.high.is_some()),
        ("threshold", r.threshold.is_some()),
        ("direction", r.direction.is_some()),
    ] {
        if present && !allowed.contains(&n) {
            return Err(ctx.err(
                span.clone(),
                &format!("{field}.{n}"),
                format!(
                    "a {kind_name} endpoint takes {}",
                    if allowed.is_empty() { "nothing else".into() } else { allowed.join(", ") }
                ),
            ));
        }
    }
    let kind = match kind_name {
        "value" => match &r.time {
            Some(t) => EndpointKind::Value { time: in_run(t, &format!("{field}.time"))? },
            None => return Err(ctx.err(span, &format!("{field}.time"), "missing; a value endpoint needs it")),
        },
        "min" => {
            let (from, to) = window()?;
            EndpointKind::Min { from, to }
        }
        "max" => {
            let (from, to) = window()?;
            EndpointKind::Max { from, to }
        }
        "time_of_min" => {
            let (from, to) = window()?;
            EndpointKind::TimeOfMin { from, to }
        }
        "time_of_max" => {
            let (from, to) = window()?;
            EndpointKind::TimeOfMax { from, to }
        }
        "auc" => {
            let (from, to) = window()?;
            EndpointKind::Auc { from, to }
        }
        "time_in_range" => {
            let (from, to) = window()?;
            let (low, high) = (need(&r.low, "low")?, need(&r.high, "high")?);
            if high <= low {
                return Err(ctx.err(span, &format!("{field}.high"), format!("must be above low ({low})")));
            }
            EndpointKind::TimeInRange { low, high, from, to }
        }
        _ => {
            let up = match r.direction.as_ref().map(|d| d.get_ref().as_str()) {
                None | Some("up") => true,
                Some("down") => false,
                Some(other) => {
                    return Err(ctx.err(
                        r.direction.as_ref().map_or(span.clone(), |d| d.span()),
                        &format!("{field}.direction"),
                        format!("unknown direction '{other}' (expected \"up\" or \"down\")"),
                    ))
                }
            };
            EndpointKind::FirstCrossing { threshold: need(&r.threshold, "threshold")?, up }
        }
    };
    let scale = opt_finite(ctx, &r.scale, &format!("{field}.scale"), 1.0)?;
    if scale == 0.0 {
        return Err(ctx.err(span, &format!("{field}.scale"), "must not be 0"));
    }
    let (variable, expression, at) = match (&r.variable, &r.expression) {
        (Some(v), None) => (v.get_ref().clone(), false, ctx.loc(v.span(), &format!("{field}.variable"))),
        (None, Some(e)) => (e.get_ref().clone(), true, ctx.loc(e.span(), &format!("{field}.expression"))),
        _ => {
            return Err(ctx.err(
                span,
                &format!("{field}.variable"),
                "an endpoint needs either variable (a model id) or expression (a formula over model ids)",
            ))
        }
    };
    Ok(Endpoint { name, variable, expression, at, scale, kind })
}

fn parse_analysis(
    ctx: &Ctx,
    raw: Option<&S<RawAnalysis>>,
    arms: &[Arm],
    endpoints: &[Endpoint],
    population_seed: u64,
) -> Result<Analysis, TrialError> {
    let default = RawAnalysis::default();
    let a = raw.map_or(&default, |r| r.get_ref());
    let quantiles = match &a.quantiles {
        Some(q) => {
            if q.get_ref().iter().any(|x| !(0.0..=1.0).contains(x)) {
                return Err(ctx.err(q.span(), "analysis.quantiles", "every quantile must be in [0, 1]"));
            }
            q.get_ref().clone()
        }
        None => vec![0.05, 0.25, 0.5, 0.75, 0.95],
    };
    let confidence = match &a.confidence {
        Some(c) if !(*c.get_ref() > 0.0 && *c.get_ref() < 1.0) => {
            return Err(ctx.err(c.span(), "analysis.confidence", "must be in (0, 1), e.g. 0.95"))
        }
        Some(c) => *c.get_ref(),
        None => 0.95,
    };
    let control = match &a.control {
        None => 0,
        Some(c) => match arms.iter().position(|arm| &arm.name == c.get_ref()) {
            Some(i) => i,
            None => {
                return Err(TrialError::UnknownId {
                    at: ctx.loc(c.span(), "analysis.control"),
                    id: c.get_ref().clone(),
                    problem: "is not an arm".into(),
                    nearest: crate::error::nearest(c.get_ref(), arms.iter().map(|a| a.name.as_str())),
                })
            }
        },
    };
    let mut responders = Vec::new();
    for (i, r) in a.responders.iter().enumerate() {
        let field = format!("analysis.responders[{i}]");
        let rr = r.get_ref();
        let name = rr.endpoint.get_ref();
        let Some(endpoint) = endpoints.iter().position(|e| &e.name == name) else {
            return Err(TrialError::UnknownId {
                at: ctx.loc(rr.endpoint.span(), &format!("{field}.endpoint")),
                id: name.clone(),
                problem: "is not an endpoint".into(),
                nearest: crate::error::nearest(name, endpoints.iter().map(|e| e.name.as_str())),
            });
        };
        let (threshold, above) = match (&rr.above, &rr.below) {
            (Some(v), None) => (finite(ctx, v, &format!("{field}.above"))?, true),
            (None, Some(v)) => (finite(ctx, v, &format!("{field}.below"))?, false),
            _ => return Err(ctx.err(r.span(), &format!("{field}.above"), "a responder needs either above or below")),
        };
        responders.push(Responder { endpoint, threshold, above });
    }
    let sobol = match &a.sobol {
        None => None,
        Some(sb) => Some(parse_sobol(ctx, sb, arms, endpoints, control, a.seed.unwrap_or(population_seed))?),
    };
    Ok(Analysis {
        sobol,
        quantiles,
        bootstrap: a.bootstrap.as_ref().map_or(1000, |b| *b.get_ref() as usize),
        confidence,
        seed: a.seed.unwrap_or(population_seed),
        control,
        responders,
    })
}

fn parse_sobol(
    ctx: &Ctx,
    raw: &S<RawSobol>,
    arms: &[Arm],
    endpoints: &[Endpoint],
    control: usize,
    seed: u64,
) -> Result<Sobol, TrialError> {
    let r = raw.get_ref();
    let field = "analysis.sobol";
    let chosen = match &r.endpoints {
        None => (0..endpoints.len()).collect(),
        Some(names) => {
            let mut v = Vec::new();
            for (k, n) in names.iter().enumerate() {
                match endpoints.iter().position(|e| &e.name == n.get_ref()) {
                    Some(i) => v.push(i),
                    None => {
                        return Err(TrialError::UnknownId {
                            at: ctx.loc(n.span(), &format!("{field}.endpoints[{k}]")),
                            id: n.get_ref().clone(),
                            problem: "is not an endpoint".into(),
                            nearest: crate::error::nearest(n.get_ref(), endpoints.iter().map(|e| e.name.as_str())),
                        })
                    }
                }
            }
            v
        }
    };
    let arm = match &r.arm {
        None => control,
        Some(name) => match arms.iter().position(|a| &a.name == name.get_ref()) {
            Some(i) => i,
            None => {
                return Err(TrialError::UnknownId {
                    at: ctx.loc(name.span(), &format!("{field}.arm")),
                    id: name.get_ref().clone(),
                    problem: "is not an arm".into(),
                    nearest: crate::error::nearest(name.get_ref(), arms.iter().map(|a| a.name.as_str())),
                })
            }
        },
    };
    let samples = match &r.samples {
        None => 1024,
        Some(n) if *n.get_ref() < 16 || *n.get_ref() > 1 << 24 => {
            return Err(ctx.err(n.span(), &format!("{field}.samples"), "must be between 16 and 2^24"))
        }
        Some(n) => *n.get_ref() as usize,
    };
    Ok(Sobol {
        endpoints: chosen,
        arm,
        samples,
        bootstrap: r.bootstrap.as_ref().map_or(500, |b| *b.get_ref() as usize),
        seed: r.seed.unwrap_or(seed),
    })
}

/// Reads the covariate table: a CSV file with a header row of model ids and
/// one row of numbers per real patient.
fn parse_covariates(
    ctx: &Ctx,
    raw: &S<RawCovariates>,
    spec_path: &Path,
    parameters: &[Parameter],
) -> Result<Covariates, TrialError> {
    let r = raw.get_ref();
    let field = "population.covariates";
    let file = spec_path.parent().unwrap_or(Path::new(".")).join(r.file.get_ref());
    let text = std::fs::read_to_string(&file).map_err(|e| {
        ctx.err(r.file.span(), &format!("{field}.file"), format!("cannot read {}: {e}", file.display()))
    })?;
    let table_err = |line: usize, message: String| TrialError::Spec {
        at: Location { file: file.clone(), line, field: format!("{field} (from {})", spec_path.display()) },
        message,
    };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(table_err(1, "the table is empty (expected a header row of model ids)".into()));
    };
    let columns: Vec<String> = header.split(',').map(|c| c.trim().trim_matches('"').to_string()).collect();
    let (ids, at): (Vec<String>, Vec<Location>) = match &r.ids {
        None => (columns.clone(), columns.iter().map(|_| ctx.loc(r.file.span(), &format!("{field}.file"))).collect()),
        Some(ids) => ids
            .iter()
            .enumerate()
            .map(|(k, id)| (id.get_ref().clone(), ctx.loc(id.span(), &format!("{field}.ids[{k}]"))))
            .unzip(),
    };
    let mut index = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let Some(c) = columns.iter().position(|c| c == id) else {
            return Err(TrialError::UnknownId {
                at: at[k].clone(),
                id: id.clone(),
                problem: format!("is not a column of {}", file.display()),
                nearest: crate::error::nearest(id, columns.iter().map(String::as_str)),
            });
        };
        if parameters.iter().any(|p| &p.id == id) || ids[..k].contains(id) {
            return Err(ctx.err(
                raw.span(),
                &format!("{field}.ids"),
                format!("'{id}' is set twice (by a covariate and a sampled parameter, or twice as a covariate)"),
            ));
        }
        index.push(c);
    }
    let mut rows = Vec::new();
    for (ln, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(table_err(ln + 1, format!("{} cells where the header has {}", cells.len(), columns.len())));
        }
        let mut row = Vec::with_capacity(index.len());
        for (k, &c) in index.iter().enumerate() {
            match cells[c].trim_matches('"').parse::<f64>() {
                Ok(v) if v.is_finite() => row.push(v),
                _ => {
                    return Err(table_err(
                        ln + 1,
                        format!("column '{}': '{}' is not a finite number", ids[k], cells[c]),
                    ))
                }
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(table_err(1, "the table has a header but no rows".into()));
    }
    Ok(Covariates { file, ids, at, rows })
}
