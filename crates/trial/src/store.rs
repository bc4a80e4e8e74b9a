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

/// Runs (or resumes) a trial into `opts.out`.
pub fn run(plan: &Plan, opts: &RunOptions, progress: &(dyn Fn(Progress) + Sync)) -> Result<Outcome, TrialError> {
    let spec = &plan.spec;
    let size = opts.size.unwrap_or(spec.population.size).max(1);
    let shard_size = opts.shard_size.max(1);
    let dir = &opts.out;
    let shard_dir = dir.join("shards");
    std::fs::create_dir_all(&shard_dir).map_err(io(&shard_dir))?;
    let mut key = spec.text.as_bytes().to_vec();
    key.extend(format!("|{}|{size}|{shard_size}", plan.model_hash).as_bytes());
    let fingerprint = format!("{:016x}", fnv(&key));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| store_err(dir, format!("cannot start worker threads: {e}")))?;

    let pop_path = dir.join("population.json");
    let screening = if pop_path.exists() {
        let text = std::fs::read_to_string(&pop_path).map_err(io(&pop_path))?;
        let p: PopulationFile = serde_json::from_str(&text).map_err(|e| store_err(&pop_path, e))?;
        if p.fingerprint != fingerprint {
            return Err(TrialError::OtherTrial { dir: dir.clone() });
        }
        Screening {
            candidates: p.candidates,
            stats: ScreeningStats {
                tried: p.tried,
                accepted: p.accepted,
                rejected_by: p.rejected_by,
                failed: p.failed,
            },
        }
    } else {
        // A folder with shards but no population is not ours to add to.
        let stray = std::fs::read_dir(&shard_dir).map_err(io(&shard_dir))?.next().is_some();
        if stray {
            return Err(TrialError::OtherTrial { dir: dir.clone() });
        }
        let s = pool.install(|| screen(plan, size, progress))?;
        let file = PopulationFile {
            fingerprint: fingerprint.clone(),
            tried: s.stats.tried,
            accepted: s.stats.accepted,
            failed: s.stats.failed,
            rejected_by: s.stats.rejected_by.clone(),
            candidates: s.candidates.clone(),
        };
        write_atomic(&pop_path, |f| {
            serde_json::to_writer(std::io::BufWriter::new(f), &file).map_err(|e| store_err(&pop_path, e))
        })?;
        s
    };

    // A killed run can leave a shard's temporary file behind: it was never
    // renamed into place, so it holds nothing that counts.
    for entry in std::fs::read_dir(&shard_dir).map_err(io(&shard_dir))?.flatten() {
        if entry.file_name().to_string_lossy().contains(".tmp-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
        write_atomic(&path, |f| write_parquet(f, &table, &path))?;
    }
    let simulate_time = started.elapsed();

    let mut table = Table::empty(plan);
    for k in 0..shards {
        table.extend(read_parquet(&shard_path(k), plan)?);
    }
    let mut files = Vec::new();
    let patients = dir.join("patients.parquet");
    write_atomic(&patients, |f| write_parquet(f, &table, &patients))?;
    files.push(patients);

    let summary = pool.install(|| summarize(spec, &table, &screening.stats));
    let json = dir.join("summary.json");
    write_atomic(&json, |f| {
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &summary).map_err(|e| store_err(&json, e))
    })?;
    files.push(json);

    // Spaghetti plots: the first patients' trajectories, simulated again
    // (cheap, and independent of which shards this invocation ran).
    let shown = &screening.candidates[..screening.candidates.len().min(opts.plot_patients)];
    let mut plots = Vec::new();
    for arm in &plan.arms {
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
    files.extend(crate::report::write(dir, plan, &table, &summary, &plots)?);
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
pub fn write_parquet(f: &mut File, t: &Table, path: &Path) -> Result<(), TrialError> {
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
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
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
