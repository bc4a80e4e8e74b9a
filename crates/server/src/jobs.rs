//! What a job does, on a blocking thread: simulate (one time course, or a
//! cohort from a data set's rows), trial (`vht-trial`), fit (`vht-fit`).
//! Artifacts are written atomically into the attempt's folder; the queue
//! records them afterwards. Knows nothing about HTTP or the database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::files::write_atomic;
use crate::sim::{self, Cache};

/// Groups smaller than this are suppressed in every aggregate.
pub const MIN_GROUP: usize = 5;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

/// The rows of a data set a job reads, and whether per-patient results may leave.
pub struct DatasetInput {
    pub id: String,
    pub classification: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

pub struct JobInput {
    pub kind: String,
    pub version: String,
    pub sbml: String,
    pub params: Value,
    pub dataset: Option<DatasetInput>,
    /// For fit jobs: the PEtab problem's yaml.
    pub petab_yaml: Option<PathBuf>,
    pub trial_max_patients: u64,
    /// For twin jobs: the key that pseudonymises patient ids.
    pub pseudonym_key: Vec<u8>,
}

/// A twin made by a job, stored with the run's end.
#[derive(Clone, Debug)]
pub struct TwinRecord {
    pub name: String,
    pub parameters: HashMap<String, f64>,
    /// Log-scale standard deviations (for the generic predictor).
    pub uncertainty: HashMap<String, f64>,
    pub provenance: Value,
    /// The twin folder, relative to the attempt folder.
    pub dir: String,
}

pub struct Ctx<'a> {
    pub dir: &'a Path,
    pub cancel: &'a AtomicBool,
    /// Progress 0..1 as f64 bits.
    pub progress: &'a AtomicU64,
    pub log: &'a (dyn Fn(String) + Sync),
    pub cache: &'a Cache,
}

impl Ctx<'_> {
    fn set_progress(&self, p: f64) {
        self.progress.store(p.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn write(&self, name: &str, media_type: &str, bytes: &[u8]) -> Result<Artifact, JobError> {
        write_atomic(&self.dir.join(name), bytes).map_err(|e| JobError::Io(format!("{name}: {e}")))?;
        Ok(Artifact {
            name: name.into(),
            media_type: media_type.into(),
            size: bytes.len() as u64,
            sha256: crate::db::sha256_hex(bytes),
        })
    }
}

pub enum Outcome {
    Done(Vec<Artifact>),
    /// A twin job's artifacts and the twin to store.
    Twin(Vec<Artifact>, TwinRecord),
    Cancelled,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("params.{field}: {message}")]
    Params { field: String, message: String },
    #[error("{0}")]
    Simulate(#[from] sim::SimulateError),
    #[error("trial: {0}")]
    Trial(String),
    #[error("fit: {0}")]
    Fit(String),
    #[error("twin: {0}")]
    Twin(String),
    #[error("writing results: {0}")]
    Io(String),
}

fn param<T: for<'de> Deserialize<'de>>(params: &Value, field: &str, default: T) -> Result<T, JobError> {
    match params.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| JobError::Params { field: field.into(), message: e.to_string() }),
    }
}

pub fn run(input: &JobInput, ctx: &Ctx) -> Result<Outcome, JobError> {
    match input.kind.as_str() {
        "simulate" => simulate(input, ctx),
        "trial" => trial(input, ctx),
        "fit" => fit(input, ctx),
        "twin" => twin(input, ctx),
        other => Err(JobError::Params { field: "kind".into(), message: format!("unknown kind '{other}'") }),
    }
}

fn simulate(input: &JobInput, ctx: &Ctx) -> Result<Outcome, JobError> {
    let p = &input.params;
    let req = sim::SimRequest {
        model: String::new(),
        version: input.version.clone(),
        start: param(p, "start", 0.0)?,
        end: param(p, "end", 100.0)?,
        points: param(p, "points", 101usize)?,
        set: param(p, "set", HashMap::new())?,
        select: param(p, "select", Vec::new())?,
    };
    (ctx.log)(format!("compiling model version {}", &input.version[..12.min(input.version.len())]));
    let compiled = ctx.cache.get(&input.version, &input.sbml)?;
    let Some(ds) = &input.dataset else {
        let table = sim::simulate(&compiled, &req, 1_000_000, 3600.0)?;
        ctx.set_progress(0.9);
        let (cols, rows) = table_parts(&table);
        let mut arts = vec![ctx.write("timecourse.csv", "text/csv", csv(&cols, &rows).as_bytes())?];
        arts.push(ctx.write("timecourse.parquet", "application/vnd.apache.parquet", &parquet(&cols, &rows)?)?);
        let series: Vec<(String, Vec<f64>)> =
            (1..cols.len()).map(|j| (cols[j].clone(), rows.iter().map(|r| r[j]).collect())).collect();
        let times: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        arts.push(ctx.write("plot.svg", "image/svg+xml", plot_svg("Time course", &times, &series, &[]).as_bytes())?);
        (ctx.log)(format!("simulated {} points of {} columns", rows.len(), cols.len() - 1));
        return Ok(Outcome::Done(arts));
    };
    cohort(ctx, &compiled, &req, ds)
}

/// A cohort from a data set: each row is a patient whose columns that name
/// parameters of the model replace those parameters. Per-patient results of
/// a restricted or sensitive data set never become artifacts: only the
/// aggregate over patients, and only when at least MIN_GROUP patients ran.
fn cohort(ctx: &Ctx, compiled: &sim::Compiled, req: &sim::SimRequest, ds: &DatasetInput) -> Result<Outcome, JobError> {
    let model = &compiled.sim.model;
    let settable: Vec<(usize, String)> = ds
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| model.lookup(c).is_some_and(|s| matches!(model.symbol(s).kind, vht_ir::SymbolKind::Parameter)))
        .map(|(i, c)| (i, c.clone()))
        .collect();
    (ctx.log)(format!(
        "data set {}: {} rows; columns used as parameters: {}",
        ds.id,
        ds.rows.len(),
        if settable.is_empty() {
            "none".to_string()
        } else {
            settable.iter().map(|c| c.1.as_str()).collect::<Vec<_>>().join(", ")
        }
    ));
    let mut names: Vec<String> = Vec::new();
    let mut times: Vec<f64> = Vec::new();
    // per column, per time: values over patients
    let mut values: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut per_patient: Vec<Vec<f64>> = Vec::new();
    let mut failed = 0usize;
    for (k, row) in ds.rows.iter().enumerate() {
        if ctx.cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let mut r = req.clone();
        for (i, c) in &settable {
            if let Some(v) = row.get(*i).and_then(Value::as_f64) {
                r.set.insert(c.clone(), v);
            }
        }
        match sim::simulate(compiled, &r, 1_000_000, 600.0) {
            Ok(table) => {
                let (cols, rows) = table_parts(&table);
                if names.is_empty() {
                    names = cols[1..].to_vec();
                    times = rows.iter().map(|x| x[0]).collect();
                    values = vec![vec![Vec::new(); times.len()]; names.len()];
                }
                for (ti, x) in rows.iter().enumerate() {
                    for j in 0..names.len() {
                        values[j][ti].push(x[j + 1]);
                    }
                    if ds.classification == "public" {
                        let mut line = vec![k as f64];
                        line.extend_from_slice(x);
                        per_patient.push(line);
                    }
                }
            }
            Err(e) => {
                failed += 1;
                (ctx.log)(format!("patient {k}: {e}"));
            }
        }
        ctx.set_progress(0.95 * (k + 1) as f64 / ds.rows.len().max(1) as f64);
    }
    let n = ds.rows.len() - failed;
    let mut arts = Vec::new();
    let suppressed = n < MIN_GROUP;
    let mut table = Vec::new();
    let mut bands = Vec::new();
    let mut medians = Vec::new();
    if !suppressed {
        for (j, name) in names.iter().enumerate() {
            let mut med = Vec::new();
            let mut lo = Vec::new();
            let mut hi = Vec::new();
            for (ti, t) in times.iter().enumerate() {
                let s = stats(&values[j][ti]);
                table.push(vec![
                    json!(t),
                    json!(name),
                    json!(s.n),
                    json!(s.mean),
                    json!(s.sd),
                    json!(s.p05),
                    json!(s.p50),
                    json!(s.p95),
                ]);
                med.push(s.p50);
                lo.push(s.p05);
                hi.push(s.p95);
            }
            medians.push((name.clone(), med));
            bands.push((lo, hi));
        }
    }
    let summary = json!({
        "dataset": ds.id,
        "classification": ds.classification,
        "patients": ds.rows.len(),
        "simulated": n,
        "failed": failed,
        "min_group": MIN_GROUP,
        "suppressed": suppressed,
        "columns": ["time", "variable", "n", "mean", "sd", "p05", "p50", "p95"],
        "rows": table,
    });
    arts.push(ctx.write("aggregate.json", "application/json", summary.to_string().as_bytes())?);
    if !suppressed {
        let mut text = String::from("time,variable,n,mean,sd,p05,p50,p95\n");
        for r in &table {
            let cells: Vec<String> =
                r.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        arts.push(ctx.write("aggregate.csv", "text/csv", text.as_bytes())?);
        arts.push(ctx.write(
            "plot.svg",
            "image/svg+xml",
            plot_svg(&format!("Median and 90% band over {n} patients"), &times, &medians, &bands).as_bytes(),
        )?);
    }
    if ds.classification == "public" && !per_patient.is_empty() {
        let mut cols = vec!["patient".to_string(), "time".to_string()];
        cols.extend(names.iter().cloned());
        arts.push(ctx.write("patients.csv", "text/csv", csv(&cols, &per_patient).as_bytes())?);
    }
    (ctx.log)(format!(
        "simulated {n} of {} patients{}",
        ds.rows.len(),
        if suppressed { " (fewer than 5: aggregate suppressed)" } else { "" }
    ));
    Ok(Outcome::Done(arts))
}

struct Stats {
    n: usize,
    mean: f64,
    sd: f64,
    p05: f64,
    p50: f64,
    p95: f64,
}

fn stats(xs: &[f64]) -> Stats {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    let sd = if n > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let q = |p: f64| {
        if n == 0 {
            return f64::NAN;
        }
        let h = p * (n - 1) as f64;
        let (i, f) = (h.floor() as usize, h - h.floor());
        v[i] + f * (v[(i + 1).min(n - 1)] - v[i])
    };
    Stats { n, mean, sd, p05: q(0.05), p50: q(0.5), p95: q(0.95) }
}

fn table_parts(table: &Value) -> (Vec<String>, Vec<Vec<f64>>) {
    let cols = table["columns"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let rows = table["rows"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    r.as_array().map(|x| x.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()).unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    (cols, rows)
}

fn csv(cols: &[String], rows: &[Vec<f64>]) -> String {
    let mut s = cols.join(",");
    s.push('\n');
    for r in rows {
        let cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

fn parquet(cols: &[String], rows: &[Vec<f64>]) -> Result<Vec<u8>, JobError> {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    let schema =
        Arc::new(Schema::new(cols.iter().map(|c| Field::new(c, DataType::Float64, false)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = (0..cols.len())
        .map(|j| Arc::new(Float64Array::from(rows.iter().map(|r| r[j]).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| JobError::Io(format!("parquet: {e}")))?;
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)
        .map_err(|e| JobError::Io(format!("parquet: {e}")))?;
    w.write(&batch).map_err(|e| JobError::Io(format!("parquet: {e}")))?;
    w.close().map_err(|e| JobError::Io(format!("parquet: {e}")))?;
    Ok(buf)
}

/// A line plot as standalone SVG: one line per series, optional bands
/// (low, high) drawn under the lines of the same index.
pub fn plot_svg(title: &str, t: &[f64], series: &[(String, Vec<f64>)], bands: &[(Vec<f64>, Vec<f64>)]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 400.0;
    const L: f64 = 70.0;
    const R: f64 = 160.0;
    const T: f64 = 30.0;
    const B: f64 = 40.0;
    const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
    let finite = |v: &f64| v.is_finite();
    let (t0, t1) = (
        t.iter().copied().filter(finite).fold(f64::INFINITY, f64::min),
        t.iter().copied().filter(finite).fold(f64::NEG_INFINITY, f64::max),
    );
    let all = series
        .iter()
        .flat_map(|s| s.1.iter())
        .chain(bands.iter().flat_map(|b| b.0.iter().chain(b.1.iter())))
        .copied()
        .filter(finite);
    let (mut y0, mut y1) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !(y0.is_finite() && y1.is_finite()) {
        (y0, y1) = (0.0, 1.0);
    }
    if y1 - y0 < 1e-300 {
        y1 = y0 + 1.0;
    }
    let span_t = if t1 > t0 { t1 - t0 } else { 1.0 };
    let x = |v: f64| L + (v - t0) / span_t * (W - L - R);
    let y = |v: f64| H - B - (v - y0) / (y1 - y0) * (H - T - B);
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{L}\" y=\"18\" font-size=\"14\">{}</text>\n\
         <line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>\n",
        esc(title), H - B, W - R, H - B, H - B
    );
    for (v, anchor_y) in [(y0, H - B), (y1, T)] {
        s.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.4}</text>\n", L - 4.0, anchor_y + 4.0, v));
    }
    for (v, ax) in [(t0, x(t0)), (t1, x(t1))] {
        s.push_str(&format!("<text x=\"{ax}\" y=\"{}\" text-anchor=\"middle\">{:.4}</text>\n", H - B + 16.0, v));
    }
    s.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time</text>\n", (L + W - R) / 2.0, H - 6.0));
    for (i, (lo, hi)) in bands.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<String> = t
            .iter()
            .zip(hi)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| format!("{:.2},{:.2}", x(*a), y(*b)))
            .collect();
        pts.extend(
            t.iter()
                .zip(lo)
                .rev()
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .map(|(a, b)| format!("{:.2},{:.2}", x(*a), y(*b))),
        );
        s.push_str(&format!(
            "<polygon points=\"{}\" fill=\"{c}\" fill-opacity=\"0.2\" stroke=\"none\"/>\n",
            pts.join(" ")
        ));
    }
    for (i, (name, v)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = t
            .iter()
            .zip(v)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| format!("{:.2},{:.2}", x(*a), y(*b)))
            .collect();
        s.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\"/>\n",
            pts.join(" ")
        ));
        if i < 20 {
            let ly = T + 14.0 * i as f64;
            s.push_str(&format!(
                "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                W - R + 10.0, W - R + 30.0, W - R + 34.0, ly + 4.0, esc(name)
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A trial from `params.spec` (TOML text, see examples/trials/README.md)
/// whose `model` is replaced by the run's model version; `params.patients`
/// overrides the population size (up to the server's limit).
fn trial(input: &JobInput, ctx: &Ctx) -> Result<Outcome, JobError> {
    let text: Option<String> = param(&input.params, "spec", None)?;
    let text = text.ok_or_else(|| JobError::Params {
        field: "spec".into(),
        message: "a trial needs its specification (TOML text, see examples/trials/README.md)".into(),
    })?;
    let patients: Option<u64> = param(&input.params, "patients", None)?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| JobError::Params { field: "spec".into(), message: e.to_string() })?;
    table.insert("model".into(), toml::Value::String("model.xml".into()));
    let work = ctx.dir.join("work");
    std::fs::create_dir_all(&work).map_err(|e| JobError::Io(format!("{}: {e}", work.display())))?;
    std::fs::write(work.join("model.xml"), &input.sbml).map_err(|e| JobError::Io(e.to_string()))?;
    let spec_text = toml::to_string(&table).map_err(|e| JobError::Trial(e.to_string()))?;
    let spec_path = work.join("trial.toml");
    std::fs::write(&spec_path, &spec_text).map_err(|e| JobError::Io(e.to_string()))?;
    let spec = vht_trial::spec::Spec::parse(&spec_text, &spec_path).map_err(|e| JobError::Trial(e.to_string()))?;
    let size = patients.unwrap_or(spec.population.size);
    if size > input.trial_max_patients {
        return Err(JobError::Params {
            field: "patients".into(),
            message: format!(
                "{size} patients is more than this server runs ({}); use `vht trial run`",
                input.trial_max_patients
            ),
        });
    }
    let plan = vht_trial::plan::Plan::new(spec).map_err(|e| JobError::Trial(e.to_string()))?;
    (ctx.log)(format!("trial '{}': {} arm(s), {size} patients", plan.spec.name, plan.arms.len()));
    let out = ctx.dir.join("trial");
    let opts = vht_trial::store::RunOptions { out: out.clone(), threads: 1, size: Some(size), ..Default::default() };
    let progress = |p: vht_trial::run::Progress| {
        let f = p.done as f64 / p.total.max(1) as f64;
        ctx.set_progress(match p.phase {
            vht_trial::run::Phase::Screening => 0.1 * f,
            vht_trial::run::Phase::Simulating => 0.1 + 0.85 * f,
        });
    };
    // vht-trial has no cancellation hook: a cancelled trial finishes its
    // computation here and its results are then discarded.
    let outcome = vht_trial::store::run(&plan, &opts, &progress).map_err(|e| JobError::Trial(e.to_string()))?;
    if ctx.cancelled() {
        return Ok(Outcome::Cancelled);
    }
    (ctx.log)(format!(
        "population: {} candidates tried, {} accepted; {} patients simulated in {:.1} s",
        outcome.screening.stats.tried,
        outcome.screening.stats.accepted,
        outcome.simulated,
        outcome.simulate_time.as_secs_f64()
    ));
    let mut arts = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&out)
        .map_err(|e| JobError::Io(format!("{}: {e}", out.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(e.path()).map_err(|err| JobError::Io(format!("{name}: {err}")))?;
        let media = media_type(&name);
        arts.push(ctx.write(&name, media, &bytes)?);
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&work);
    Ok(Outcome::Done(arts))
}

pub fn media_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "md" => "text/markdown",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "parquet" => "application/vnd.apache.parquet",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "txt" | "log" => "text/plain",
        "html" => "text/html",
        _ => "application/octet-stream",
    }
}

fn fit(input: &JobInput, ctx: &Ctx) -> Result<Outcome, JobError> {
    let yaml = input.petab_yaml.as_ref().ok_or_else(|| JobError::Params {
        field: "model".into(),
        message: "a fit needs a model version imported as a PEtab problem (?kind=petab)".into(),
    })?;
    let set: HashMap<String, f64> = param(&input.params, "set", HashMap::new())?;
    let problem = vht_fit::read(yaml).map_err(|e| JobError::Fit(e.to_string()))?;
    let mut values = problem.nominal();
    let mut keys: Vec<_> = set.keys().collect();
    keys.sort();
    for k in keys {
        let i = problem.parameter_index(k).ok_or_else(|| JobError::Params {
            field: format!("set.{k}"),
            message: "not a parameter of the problem".into(),
        })?;
        values[i] = set[k];
    }
    let objective =
        vht_fit::Objective::new(problem, vht_fit::Settings::default()).map_err(|e| JobError::Fit(e.to_string()))?;
    ctx.set_progress(0.2);
    let v = objective.evaluate(&values).map_err(|e| JobError::Fit(e.to_string()))?;
    let experiments: Vec<Value> = v
        .experiments
        .iter()
        .map(|e| json!({"preequilibration": e.preequilibration, "simulation": e.simulation, "measurements": e.measurements, "nllh": e.nllh}))
        .collect();
    let result = json!({
        "mode": "evaluate",
        "negative_log_likelihood": v.likelihood,
        "negative_log_prior": v.prior,
        "objective": v.total(),
        "parameters": objective.problem.parameters.iter().zip(&values).map(|(p, x)| json!({"id": p.id, "value": x})).collect::<Vec<_>>(),
        "experiments": experiments,
    });
    let mut tsv = String::from(
        "observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tsimulation\tsigma\tnllh\n",
    );
    for (m, x) in objective.problem.measurements.iter().zip(&v.measurements) {
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            m.observable,
            m.preequilibration.as_deref().unwrap_or(""),
            m.simulation,
            m.time,
            x.simulation,
            x.sigma,
            x.nllh
        ));
    }
    (ctx.log)(format!("objective at the given parameters: {}", v.total()));
    Ok(Outcome::Done(vec![
        ctx.write("result.json", "application/json", result.to_string().as_bytes())?,
        ctx.write("simulations.tsv", "text/tab-separated-values", tsv.as_bytes())?,
    ]))
}

/// A twin from one patient's FHIR data (`params.patient`: a Bundle or NDJSON,
/// as text or JSON; `params.map`: the mapping file's TOML text) with
/// `vht-twin`: import, multistart fit, uncertainty, provenance. The
/// patient's identity is pseudonymised with the server's key.
fn twin(input: &JobInput, ctx: &Ctx) -> Result<Outcome, JobError> {
    let bad = |field: &str, message: String| JobError::Params { field: field.into(), message };
    let patient = match input.params.get("patient") {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => {
            return Err(bad("patient", "the patient's FHIR data (a Bundle as JSON, or NDJSON text) is required".into()))
        }
    };
    let map: String = param(&input.params, "map", String::new())?;
    if map.trim().is_empty() {
        return Err(bad("map", "the mapping file (TOML text, see examples/twins/README.md) is required".into()));
    }
    let name: String = param(&input.params, "name", "twin".to_string())?;
    let starts: usize = param(&input.params, "starts", 4usize)?;
    let seed: u64 = param(&input.params, "seed", 0u64)?;
    let posterior: String = param(&input.params, "posterior", "mcmc".to_string())?;
    if !(1..=50).contains(&starts) {
        return Err(bad("starts", format!("between 1 and 50 (got {starts})")));
    }
    let work = ctx.dir.join("input");
    std::fs::create_dir_all(&work).map_err(|e| JobError::Io(format!("{}: {e}", work.display())))?;
    // vht-fhir tells a Bundle from NDJSON by the content, not the name.
    let (patient_path, map_path, model_path) =
        (work.join("patient.json"), work.join("map.toml"), work.join("model.xml"));
    for (p, text) in [(&patient_path, &patient), (&map_path, &map), (&model_path, &input.sbml)] {
        std::fs::write(p, text).map_err(|e| JobError::Io(format!("{}: {e}", p.display())))?;
    }
    let options = vht_twin::CreateOptions {
        starts,
        seed,
        threads: Some(1),
        progress: false,
        posterior: match posterior.as_str() {
            "mcmc" => Some(vht_twin::McmcOptions { seed, ..Default::default() }),
            "laplace" => None,
            other => return Err(bad("posterior", format!("'{other}': use mcmc or laplace"))),
        },
        ..Default::default()
    };
    (ctx.log)(format!("twin '{name}': {starts} start(s), posterior {posterior}"));
    ctx.set_progress(0.05);
    let out = ctx.dir.join("twin");
    let t = vht_twin::create(&patient_path, &map_path, Some(&model_path), &input.pseudonym_key, &out, &options)
        .map_err(|e| JobError::Twin(e.to_string()))?;
    // The patient's data stay out of the artifacts: the twin folder keeps
    // only what predictions need (and its PEtab problem, pseudonymised).
    let _ = std::fs::remove_dir_all(&work);
    if ctx.cancelled() {
        return Ok(Outcome::Cancelled);
    }
    (ctx.log)(format!(
        "fit: objective {:.4}, {} of {} starts at the best, {} failed",
        t.fit.objective, t.fit.at_best, t.fit.starts, t.fit.failed
    ));
    let mut parameters = HashMap::new();
    let mut uncertainty = HashMap::new();
    for p in &t.parameters {
        parameters.insert(p.id.clone(), p.value);
        // The generic predictor draws log-normally: the sd on the natural-log scale.
        let sd_ln = match p.scale.as_str() {
            "log10" => p.sd_scaled * std::f64::consts::LN_10,
            "log" => p.sd_scaled,
            _ if p.value != 0.0 => (p.sd_scaled / p.value).abs(),
            _ => 0.0,
        };
        if sd_ln.is_finite() {
            uncertainty.insert(p.id.clone(), sd_ln);
        }
    }
    let twin_json = std::fs::read(out.join("twin.json")).map_err(|e| JobError::Io(format!("twin.json: {e}")))?;
    let artifacts = vec![ctx.write("twin.json", "application/json", &twin_json)?];
    let provenance = json!({
        "pseudonym": t.pseudonym,
        "model": t.model,
        "inputs": t.provenance.inputs,
        "tool": t.provenance.tool,
        "created": t.provenance.created,
        "measurements": t.provenance.measurements,
        "warnings": t.provenance.warnings,
        "fit": t.fit,
        "parameters": t.parameters,
        "initial": t.initial,
        "covariates": t.covariates,
    });
    Ok(Outcome::Twin(artifacts, TwinRecord { name, parameters, uncertainty, provenance, dir: "twin".into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let s = stats(&[1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN]);
        assert_eq!((s.n, s.mean, s.p50), (5, 3.0, 3.0));
        assert!((s.p05 - 1.2).abs() < 1e-12 && (s.p95 - 4.8).abs() < 1e-12);
        assert!((s.sd - 2.5f64.sqrt()).abs() < 1e-12);
    }
}
