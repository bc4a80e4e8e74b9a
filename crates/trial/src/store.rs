//! A trial's output folder: the population, result shards, the merged
//! table, the summary, the report and its plots.
//!
//! Layout of `DIR`:
//! - `population.json`: the run's fingerprint, the screening statistics and
//!   each patient's candidate index (the sampled values are recomputed from
//!   it: they are a pure function of the seed and the index);
//! - `shards/part-NNNNN.parquet`: rows of patients `[N·S, (N+1)·S)`;
//! - `patients.parquet`, `summary.json`, `report.md`, `*.svg`.
//!
//! Every file is written to a temporary name and renamed into place, so a
//! file that exists is complete. A run on an existing folder with the same
//! fingerprint skips the shards already written: an interrupted trial
//! resumes and loses or duplicates nothing. A folder holding another trial
//! is refused rather than mixed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::analysis::{summarize, Summary};
use crate::error::{ScreeningStats, TrialError};
use crate::plan::{fnv, Plan};
use crate::run::{screen, simulate_patients, Progress, Screening, Table};

/// Settings of a run to a folder.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Patients per result shard.
    pub shard_size: u64,
    /// Population size instead of the spec's (benchmarks, quick looks).
    pub size: Option<u64>,
    /// Patients whose trajectories the spaghetti plots show.
    pub plot_patients: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { out: PathBuf::from("out"), threads: 0, shard_size: 1000, size: None, plot_patients: 20 }
    }
}

/// What a run did.
pub struct Outcome {
    pub screening: Screening,
    pub table: Table,
    pub summary: Summary,
    pub shards: usize,
    /// Shards found finished and skipped.
    pub shards_skipped: usize,
    /// Patients simulated by this invocation.
    pub simulated: u64,
    /// Time spent simulating them (screening excluded).
    pub simulate_time: Duration,
    pub files: Vec<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct PopulationFile {
    fingerprint: String,
    tried: u64,
    accepted: u64,
    failed: u64,
    rejected_by: Vec<(String, u64)>,
    candidates: Vec<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrialError + '_ {
    move |source| TrialError::Io { path: path.to_path_buf(), source }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> TrialError {
    TrialError::Store { path: path.to_path_buf(), message: e.to_string() }
}

/// Writes `path` through a temporary file and a rename, so it is complete or absent.
fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<(), TrialError>) -> Result<(), TrialError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    let result = write(&mut f).and_then(|_| f.sync_all().map_err(io(&tmp)));
    drop(f);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The fingerprint of a run: the spec's text, the model file, the
/// population size and how the rows are split into files (`layout`).
fn fingerprint(plan: &Plan, size: u64, layout: &str) -> String {
    let mut key = plan.spec.text.as_bytes().to_vec();
    key.extend(format!("|{}|{size}|{layout}", plan.model_hash).as_bytes());
    format!("{:016x}", fnv(&key))
}

fn pool(threads: usize, dir: &Path) -> Result<rayon::ThreadPool, TrialError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| store_err(dir, format!("cannot start worker threads: {e}")))
}

fn read_population(path: &Path) -> Result<(String, Screening), TrialError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let p: PopulationFile = serde_json::from_str(&text).map_err(|e| store_err(path, e))?;
    let stats = ScreeningStats { tried: p.tried, accepted: p.accepted, rejected_by: p.rejected_by, failed: p.failed };
    Ok((p.fingerprint, Screening { candidates: p.candidates, stats }))
}

fn write_population(path: &Path, fingerprint: &str, s: &Screening) -> Result<(), TrialError> {
    let file = PopulationFile {
        fingerprint: fingerprint.to_string(),
        tried: s.stats.tried,
        accepted: s.stats.accepted,
        failed: s.stats.failed,
        rejected_by: s.stats.rejected_by.clone(),
        candidates: s.candidates.clone(),
    };
    write_atomic(path, |f| serde_json::to_writer(std::io::BufWriter::new(f), &file).map_err(|e| store_err(path, e)))
}

/// The folder's population if it has one of this trial, else screened now
/// and written (`None` when the folder holds another trial).
fn population(
    plan: &Plan,
    dir: &Path,
    size: u64,
    fingerprint: &str,
    pool: &rayon::ThreadPool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Option<Screening>, TrialError> {
    let path = dir.join("population.json");
    if path.exists() {
        let (found, screening) = read_population(&path)?;
        return Ok((found == fingerprint).then_some(screening));
    }
    let s = pool.install(|| screen(plan, size, progress))?;
    write_population(&path, fingerprint, &s)?;
    Ok(Some(s))
}

/// A killed run can leave a shard's temporary file behind: it was never
/// renamed into place, so it holds nothing that counts.
fn remove_temporaries(shard_dir: &Path) -> Result<(), TrialError> {
    for entry in std::fs::read_dir(shard_dir).map_err(io(shard_dir))?.flatten() {
        if entry.file_name().to_string_lossy().contains(".tmp-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Runs (or resumes) a trial into `opts.out`.
pub fn run(plan: &Plan, opts: &RunOptions, progress: &(dyn Fn(Progress) + Sync)) -> Result<Outcome, TrialError> {
    let spec = &plan.spec;
    let size = opts.size.unwrap_or(spec.population.size).max(1);
    let shard_size = opts.shard_size.max(1);
    let dir = &opts.out;
    let shard_dir = dir.join("shards");
    std::fs::create_dir_all(&shard_dir).map_err(io(&shard_dir))?;
    let fingerprint = fingerprint(plan, size, &shard_size.to_string());
    let pool = pool(opts.threads, dir)?;

    // A folder with shards but no population is not ours to add to.
    if !dir.join("population.json").exists() && std::fs::read_dir(&shard_dir).map_err(io(&shard_dir))?.next().is_some()
    {
        return Err(TrialError::OtherTrial { dir: dir.clone() });
    }
    let Some(screening) = population(plan, dir, size, &fingerprint, &pool, progress)? else {
        return Err(TrialError::OtherTrial { dir: dir.clone() });
    };
    remove_temporaries(&shard_dir)?;
    let n = screening.candidates.len() as u64;
    let shards = n.div_ceil(shard_size) as usize;
    let shard_path = |k: usize| shard_dir.join(format!("part-{k:05}.parquet"));
    let todo: Vec<usize> = (0..shards).filter(|&k| !shard_path(k).exists()).collect();
    let total: u64 = todo.iter().map(|&k| ((k as u64 + 1) * shard_size).min(n) - k as u64 * shard_size).sum();
    let done = AtomicU64::new(0);
    let started = Instant::now();
    for &k in &todo {
        let first = k as u64 * shard_size;
        let last = ((k as u64 + 1) * shard_size).min(n);
        let table = pool.install(|| {
            simulate_patients(plan, first, &screening.candidates[first as usize..last as usize], progress, &done, total)
        });
        let path = shard_path(k);
        write_atomic(&path, |f| write_parquet(f, &table, &path, &[]))?;
    }
    let simulate_time = started.elapsed();

    let mut table = Table::empty(plan);
    for k in 0..shards {
        table.extend(read_parquet(&shard_path(k), plan)?);
    }
    let (summary, files) = finish(plan, dir, &screening, &table, opts.plot_patients, &pool)?;
    Ok(Outcome {
        screening,
        table,
        summary,
        shards,
        shards_skipped: shards - todo.len(),
        simulated: total,
        simulate_time,
        files,
    })
}

/// What every way of running a trial writes once all rows are in: the
/// merged table, the summary, the plots and the report. A pure function
/// of the plan, the population and the rows, so the local run and the
/// merged Slurm shards give the same files.
fn finish(
    plan: &Plan,
    dir: &Path,
    screening: &Screening,
    table: &Table,
    plot_patients: usize,
    pool: &rayon::ThreadPool,
) -> Result<(Summary, Vec<PathBuf>), TrialError> {
    let spec = &plan.spec;
    let mut files = Vec::new();
    let patients = dir.join("patients.parquet");
    write_atomic(&patients, |f| write_parquet(f, table, &patients, &[]))?;
    files.push(patients);

    let mut summary = pool.install(|| summarize(spec, table, &screening.stats));
    summary.sensitivity = pool.install(|| crate::sensitivity::run(plan));
    let json = dir.join("summary.json");
    write_atomic(&json, |f| {
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &summary).map_err(|e| store_err(&json, e))
    })?;
    files.push(json);

    // Spaghetti plots: the first patients of each arm, simulated again
    // (cheap, and independent of which shards this invocation ran).
    let mut plots = Vec::new();
    for (a, arm) in plan.arms.iter().enumerate() {
        let shown: Vec<u64> = (0..screening.candidates.len() as u64)
            .filter(|&p| plan.arms_of(p).contains(&a))
            .take(plot_patients)
            .map(|p| screening.candidates[p as usize])
            .collect();
        let lines: crate::report::Lines = pool.install(|| {
            use rayon::prelude::*;
            shown
                .par_iter()
                .filter_map(|&c| crate::run::trajectory(plan, arm, c).ok())
                .map(|t| {
                    let scale = spec.endpoints[0].scale;
                    t.times.iter().enumerate().map(|(i, &x)| (x, scale * t.row(i)[arm.plot_col])).collect()
                })
                .collect()
        });
        plots.push((arm.name.clone(), lines));
    }
    if spec.output.trajectories {
        let path = dir.join("trajectories.parquet");
        let n = (screening.candidates.len() as u64).min(spec.output.patients);
        let t = pool.install(|| trajectories(plan, &screening.candidates[..n as usize]))?;
        write_atomic(&path, |f| write_trajectories(f, &t, &path))?;
        files.push(path);
    }
    files.extend(crate::report::write(dir, plan, table, &summary, &plots)?);
    Ok((summary, files))
}

/// Trajectories of some patients, long format: one row per patient, arm and time.
struct Trajectories {
    names: Vec<String>,
    patient: Vec<u64>,
    arm: Vec<String>,
    time: Vec<f64>,
    /// `values[k][row]`; NaN where the simulation failed.
    values: Vec<Vec<f64>>,
}

fn trajectories(plan: &Plan, candidates: &[u64]) -> Result<Trajectories, TrialError> {
    use rayon::prelude::*;
    let names: Vec<String> = plan.arms[0].trajectory_columns.iter().map(|c| c.name.clone()).collect();
    let mut outputs = Vec::new();
    for arm in &plan.arms {
        let o = arm.sim.outputs(&arm.trajectory_columns).map_err(|e| TrialError::Build {
            model: plan.spec.model.clone(),
            arm: arm.name.clone(),
            message: e.to_string(),
        })?;
        outputs.push(o);
    }
    type Runs = Vec<(usize, Result<vht_sim::Trajectory, String>)>;
    let runs: Vec<Runs> = candidates
        .par_iter()
        .enumerate()
        .map(|(p, &c)| {
            let values = plan.sampler.sample(c);
            plan.arms_of(p as u64)
                .into_iter()
                .map(|a| (a, crate::run::trajectory_with(plan, &plan.arms[a], &values, &outputs[a])))
                .collect()
        })
        .collect();
    let mut t =
        Trajectories { values: vec![Vec::new(); names.len()], names, patient: vec![], arm: vec![], time: vec![] };
    for (p, patient_runs) in runs.into_iter().enumerate() {
        for (a, run) in patient_runs {
            let arm = &plan.arms[a];
            for (i, &time) in arm.times.iter().enumerate() {
                t.patient.push(p as u64);
                t.arm.push(arm.name.clone());
                t.time.push(time);
                for (k, col) in t.values.iter_mut().enumerate() {
                    col.push(match &run {
                        Ok(tr) if i < tr.times.len() => tr.row(i)[k],
                        _ => f64::NAN,
                    });
                }
            }
        }
    }
    Ok(t)
}

fn write_trajectories(f: &mut File, t: &Trajectories, path: &Path) -> Result<(), TrialError> {
    let mut fields = vec![
        Field::new("patient", DataType::UInt64, false),
        Field::new("arm", DataType::Utf8, false),
        Field::new("time", DataType::Float64, false),
    ];
    fields.extend(t.names.iter().map(|n| Field::new(n, DataType::Float64, true)));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(t.patient.clone())),
        Arc::new(StringArray::from_iter_values(t.arm.iter())),
        Arc::new(Float64Array::from(t.time.clone())),
    ];
    for c in &t.values {
        columns.push(Arc::new(c.iter().map(|&v| (!v.is_nan()).then_some(v)).collect::<Float64Array>()));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| store_err(path, e))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w = ArrowWriter::try_new(f, schema, Some(props)).map_err(|e| store_err(path, e))?;
    w.write(&batch).map_err(|e| store_err(path, e))?;
    w.close().map_err(|e| store_err(path, e))?;
    Ok(())
}

// ---- Slurm-style shards: task I of N, then collect -------------------------

/// Settings of one task of a split trial (`vht trial shard`).
#[derive(Clone, Debug)]
pub struct ShardOptions {
    pub out: PathBuf,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// This task, in `0..of`.
    pub index: u64,
    /// How many tasks the trial is split into.
    pub of: u64,
    /// Population size instead of the spec's.
    pub size: Option<u64>,
}

/// What a shard task did.
#[derive(Clone, Debug)]
pub struct ShardOutcome {
    pub path: PathBuf,
    /// Patients `[first, last)` of the population.
    pub first: u64,
    pub last: u64,
    /// False when the file already existed (a re-run task does nothing).
    pub simulated: bool,
    pub simulate_time: Duration,
}

/// `DIR/job.json`: what `collect` needs to find the trial again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Job {
    /// The spec file, absolute.
    pub spec: PathBuf,
    pub size: u64,
    pub tasks: u64,
    pub fingerprint: String,
}

const META_FINGERPRINT: &str = "vht.trial.fingerprint";
const META_TASK: &str = "vht.trial.task";

fn task_layout(of: u64) -> String {
    format!("tasks{of}")
}

/// Patients `[first, last)` of task `index` of `of` over `n` patients:
/// contiguous, in order, sizes differing by at most one.
pub fn task_range(n: u64, index: u64, of: u64) -> (u64, u64) {
    let at = |k: u64| ((n as u128 * k as u128) / of as u128) as u64;
    (at(index), at(index + 1))
}

fn task_file(index: u64, of: u64) -> String {
    format!("task-{index:05}-of-{of:05}.parquet")
}

/// Prepares a split run: the population (screened now, once, rather than by
/// every task) and `job.json`. Tasks started afterwards only read them.
pub fn prepare_tasks(
    plan: &Plan,
    out: &Path,
    threads: usize,
    size: Option<u64>,
    of: u64,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(Job, Screening), TrialError> {
    prepare_in(plan, out, size, of, &pool(threads, out)?, progress)
}

/// [`prepare_tasks`] on a given pool (a shard task reuses its own for simulating).
fn prepare_in(
    plan: &Plan,
    out: &Path,
    size: Option<u64>,
    of: u64,
    pool: &rayon::ThreadPool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(Job, Screening), TrialError> {
    let size = size.unwrap_or(plan.spec.population.size).max(1);
    if of == 0 {
        return Err(store_err(out, "a trial needs at least one task"));
    }
    let shard_dir = out.join("shards");
    std::fs::create_dir_all(&shard_dir).map_err(io(&shard_dir))?;
    let fingerprint = fingerprint(plan, size, &task_layout(of));
    let Some(screening) = population(plan, out, size, &fingerprint, pool, progress)? else {
        return Err(TrialError::OtherTrial { dir: out.to_path_buf() });
    };
    let spec = std::path::absolute(&plan.spec.path).map_err(io(&plan.spec.path))?;
    let job = Job { spec, size, tasks: of, fingerprint };
    let path = out.join("job.json");
    if path.exists() {
        if read_job(out)?.fingerprint != job.fingerprint {
            return Err(TrialError::OtherTrial { dir: out.to_path_buf() });
        }
    } else {
        write_atomic(&path, |f| {
            serde_json::to_writer_pretty(std::io::BufWriter::new(f), &job).map_err(|e| store_err(&path, e))
        })?;
    }
    Ok((job, screening))
}

/// Reads `DIR/job.json`.
pub fn read_job(dir: &Path) -> Result<Job, TrialError> {
    let path = dir.join("job.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| store_err(&path, e))
}

/// Runs task `opts.index` of `opts.of`: its slice of the population into
/// `shards/task-IIIII-of-NNNNN.parquet` (written whole, by rename). The
/// population is read from the folder, or screened and written if this is
/// the first task to need it (every task would screen the same population).
pub fn shard(
    plan: &Plan,
    opts: &ShardOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<ShardOutcome, TrialError> {
    if opts.index >= opts.of {
        return Err(store_err(&opts.out, format!("task {} does not exist in a split into {}", opts.index, opts.of)));
    }
    let pool = pool(opts.threads, &opts.out)?;
    let (job, screening) = prepare_in(plan, &opts.out, opts.size, opts.of, &pool, progress)?;
    let shard_dir = opts.out.join("shards");
    let n = screening.candidates.len() as u64;
    let (first, last) = task_range(n, opts.index, opts.of);
    let path = shard_dir.join(task_file(opts.index, opts.of));
    if path.exists() {
        return Ok(ShardOutcome { path, first, last, simulated: false, simulate_time: Duration::ZERO });
    }
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let table = pool.install(|| {
        simulate_patients(
            plan,
            first,
            &screening.candidates[first as usize..last as usize],
            progress,
            &done,
            last - first,
        )
    });
    let simulate_time = started.elapsed();
    let meta = [
        (META_FINGERPRINT, job.fingerprint.clone()),
        (META_TASK, format!("{} {} {first} {last}", opts.index, opts.of)),
    ];
    write_atomic(&path, |f| write_parquet(f, &table, &path, &meta))?;
    Ok(ShardOutcome { path, first, last, simulated: true, simulate_time })
}

/// Settings of merging a split trial.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    pub threads: usize,
    /// Patients whose trajectories the spaghetti plots show.
    pub plot_patients: usize,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions { threads: 0, plot_patients: RunOptions::default().plot_patients }
    }
}

/// Merges the task files of a split trial in `dir` and writes what `run`
/// writes. Refuses a folder where a task's file is missing, where files of
/// another split or another trial are mixed in, or where the files'
/// patient ranges do not tile the population.
pub fn collect(plan: &Plan, dir: &Path, opts: &CollectOptions) -> Result<Outcome, TrialError> {
    let job = read_job(dir)?;
    let expected = fingerprint(plan, job.size, &task_layout(job.tasks));
    if job.fingerprint != expected {
        return Err(TrialError::OtherTrial { dir: dir.to_path_buf() });
    }
    let pop_path = dir.join("population.json");
    let (found, screening) = read_population(&pop_path)?;
    if found != expected {
        return Err(TrialError::OtherTrial { dir: dir.to_path_buf() });
    }
    let shard_dir = dir.join("shards");
    let mut present = vec![false; job.tasks as usize];
    for entry in std::fs::read_dir(&shard_dir).map_err(io(&shard_dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") {
            continue;
        }
        let parsed = name
            .strip_prefix("task-")
            .and_then(|r| r.strip_suffix(".parquet"))
            .and_then(|r| r.split_once("-of-"))
            .and_then(|(i, n)| Some((i.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        match parsed {
            Some((i, n)) if n == job.tasks && i < n => present[i as usize] = true,
            _ => {
                return Err(TrialError::Shard {
                    path: entry.path(),
                    problem: format!("is not a file of this split into {} tasks", job.tasks),
                })
            }
        }
    }
    let missing: Vec<u64> = (0..job.tasks).filter(|&i| !present[i as usize]).collect();
    if !missing.is_empty() {
        return Err(TrialError::MissingShards { dir: dir.to_path_buf(), tasks: job.tasks, missing });
    }
    let n = screening.candidates.len() as u64;
    let mut table = Table::empty(plan);
    for i in 0..job.tasks {
        let path = shard_dir.join(task_file(i, job.tasks));
        let meta = read_metadata(&path)?;
        let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        if get(META_FINGERPRINT) != Some(expected.as_str()) {
            return Err(TrialError::Shard {
                path,
                problem: "was written by another trial (fingerprint differs)".into(),
            });
        }
        let (first, last) = task_range(n, i, job.tasks);
        if get(META_TASK) != Some(format!("{i} {} {first} {last}", job.tasks).as_str()) {
            return Err(TrialError::Shard {
                path,
                problem: format!("does not hold task {i}'s patients [{first}, {last})"),
            });
        }
        let part = read_parquet(&path, plan)?;
        // Rows are patient-major: each patient of the range, once, in order.
        let mut expect = first;
        for &p in &part.patient {
            if p != expect && p + 1 != expect {
                return Err(TrialError::Shard {
                    path,
                    problem: format!("patient {p} where patient {expect} was expected (duplicated or missing rows)"),
                });
            }
            expect = p + 1;
        }
        if expect != last && first != last {
            return Err(TrialError::Shard { path, problem: format!("ends at patient {expect}, not {last}") });
        }
        table.extend(part);
    }
    let pool = pool(opts.threads, dir)?;
    let (summary, files) = finish(plan, dir, &screening, &table, opts.plot_patients, &pool)?;
    Ok(Outcome {
        screening,
        table,
        summary,
        shards: job.tasks as usize,
        shards_skipped: job.tasks as usize,
        simulated: 0,
        simulate_time: Duration::ZERO,
        files,
    })
}

fn read_metadata(path: &Path) -> Result<Vec<(String, String)>, TrialError> {
    let f = File::open(path).map_err(io(path))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| store_err(path, e))?;
    Ok(b.metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default())
}

fn schema(t: &Table) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("patient", DataType::UInt64, false),
        Field::new("candidate", DataType::UInt64, false),
        Field::new("arm", DataType::Utf8, false),
    ];
    fields.extend(t.param_names.iter().map(|n| Field::new(n, DataType::Float64, false)));
    fields.extend(t.endpoint_names.iter().map(|n| Field::new(n, DataType::Float64, true)));
    fields.push(Field::new("status", DataType::Utf8, false));
    fields.push(Field::new("reason", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// Writes the table as one Parquet row group set (Snappy). Undefined
/// endpoints (NaN) are written as nulls.
/// `meta` goes into the file's key-value metadata (shards carry their
/// trial's fingerprint and patient range there).
pub fn write_parquet(f: &mut File, t: &Table, path: &Path, meta: &[(&str, String)]) -> Result<(), TrialError> {
    let schema = schema(t);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(t.patient.clone())),
        Arc::new(UInt64Array::from(t.candidate.clone())),
        Arc::new(StringArray::from_iter_values(t.arm.iter().map(|&a| t.arm_names[a as usize].as_str()))),
    ];
    for c in &t.params {
        columns.push(Arc::new(Float64Array::from(c.clone())));
    }
    for c in &t.endpoints {
        columns.push(Arc::new(c.iter().map(|&v| (!v.is_nan()).then_some(v)).collect::<Float64Array>()));
    }
    columns.push(Arc::new(StringArray::from_iter_values(t.reason.iter().map(|r| {
        if r.is_none() {
            "ok"
        } else {
            "failed"
        }
    }))));
    columns.push(Arc::new(t.reason.iter().map(|r| r.as_deref()).collect::<StringArray>()));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| store_err(path, e))?;
    let kv: Vec<KeyValue> = meta.iter().map(|(k, v)| KeyValue::new(k.to_string(), v.clone())).collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata((!kv.is_empty()).then_some(kv))
        .build();
    let mut w = ArrowWriter::try_new(f, schema, Some(props)).map_err(|e| store_err(path, e))?;
    w.write(&batch).map_err(|e| store_err(path, e))?;
    w.close().map_err(|e| store_err(path, e))?;
    Ok(())
}

/// Reads a table written by [`write_parquet`] for this plan's columns.
pub fn read_parquet(path: &Path, plan: &Plan) -> Result<Table, TrialError> {
    let f = File::open(path).map_err(io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f).and_then(|b| b.build()).map_err(|e| store_err(path, e))?;
    let mut t = Table::empty(plan);
    let bad = |what: &str| store_err(path, format!("not a result shard of this trial ({what})"));
    for batch in reader {
        let batch = batch.map_err(|e| store_err(path, e))?;
        let col = |name: &str| batch.column_by_name(name).ok_or_else(|| bad(&format!("no column '{name}'")));
        let u64s = |name: &str| -> Result<Vec<u64>, TrialError> {
            Ok(col(name)?.as_any().downcast_ref::<UInt64Array>().ok_or_else(|| bad(name))?.values().to_vec())
        };
        let f64s = |name: &str| -> Result<Vec<f64>, TrialError> {
            let a = col(name)?.as_any().downcast_ref::<Float64Array>().ok_or_else(|| bad(name))?;
            Ok(a.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        };
        let strs = |name: &str| -> Result<Vec<Option<String>>, TrialError> {
            let a = col(name)?.as_any().downcast_ref::<StringArray>().ok_or_else(|| bad(name))?;
            Ok(a.iter().map(|v| v.map(str::to_string)).collect())
        };
        t.patient.extend(u64s("patient")?);
        t.candidate.extend(u64s("candidate")?);
        for a in strs("arm")? {
            let name = a.unwrap_or_default();
            let i = t.arm_names.iter().position(|x| *x == name).ok_or_else(|| bad(&format!("unknown arm '{name}'")))?;
            t.arm.push(i as u32);
        }
        for (k, name) in t.param_names.clone().iter().enumerate() {
            t.params[k].extend(f64s(name)?);
        }
        for (k, name) in t.endpoint_names.clone().iter().enumerate() {
            t.endpoints[k].extend(f64s(name)?);
        }
        t.reason.extend(strs("reason")?);
    }
    Ok(t)
}
