//! Running patients: the plausibility screen and the arms, in parallel.
//!
//! Every result is a pure function of the plan and the patient (its
//! candidate index): threads only change the order in which patients are
//! computed, never what is computed, and results are collected in patient
//! order. A patient whose simulation fails (or panics) gets a reason and
//! the trial goes on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use vht_sim::{TimeCourse, Trajectory};

use crate::error::{ScreeningStats, TrialError};
use crate::plan::{ArmPlan, Plan};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Trying candidates against the plausibility constraints.
    Screening,
    /// Simulating every accepted patient in every arm.
    Simulating,
}

/// Reported as work advances (from worker threads: keep the callback cheap).
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

/// The accepted population: the candidate index of each patient, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Screening {
    pub candidates: Vec<u64>,
    pub stats: ScreeningStats,
}

/// Results, one row per patient and arm (patient-major), column by column.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub param_names: Vec<String>,
    pub endpoint_names: Vec<String>,
    pub arm_names: Vec<String>,
    pub patient: Vec<u64>,
    pub candidate: Vec<u64>,
    /// Index into `arm_names`.
    pub arm: Vec<u32>,
    /// `params[k][row]`: the sampled value of parameter `k` (as the spec states it).
    pub params: Vec<Vec<f64>>,
    /// `endpoints[k][row]`; NaN when undefined or when the simulation failed.
    pub endpoints: Vec<Vec<f64>>,
    /// Why the row's simulation failed; `None` when it succeeded.
    pub reason: Vec<Option<String>>,
}

impl Table {
    pub fn empty(plan: &Plan) -> Table {
        let spec = &plan.spec;
        Table {
            param_names: spec.population.columns(),
            endpoint_names: spec.endpoints.iter().map(|e| e.name.clone()).collect(),
            arm_names: spec.arms.iter().map(|a| a.name.clone()).collect(),
            params: vec![Vec::new(); spec.population.columns().len()],
            endpoints: vec![Vec::new(); spec.endpoints.len()],
            ..Table::default()
        }
    }

    pub fn len(&self) -> usize {
        self.patient.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patient.is_empty()
    }

    /// Appends another table's rows (same columns).
    pub fn extend(&mut self, other: Table) {
        self.patient.extend(other.patient);
        self.candidate.extend(other.candidate);
        self.arm.extend(other.arm);
        for (a, b) in self.params.iter_mut().zip(other.params) {
            a.extend(b);
        }
        for (a, b) in self.endpoints.iter_mut().zip(other.endpoints) {
            a.extend(b);
        }
        self.reason.extend(other.reason);
    }

    fn push(&mut self, patient: u64, candidate: u64, arm: u32, params: &[f64], result: Result<Vec<f64>, String>) {
        self.patient.push(patient);
        self.candidate.push(candidate);
        self.arm.push(arm);
        for (c, v) in self.params.iter_mut().zip(params) {
            c.push(*v);
        }
        match result {
            Ok(values) => {
                for (c, v) in self.endpoints.iter_mut().zip(values) {
                    c.push(v);
                }
                self.reason.push(None);
            }
            Err(reason) => {
                for c in &mut self.endpoints {
                    c.push(f64::NAN);
                }
                self.reason.push(Some(reason));
            }
        }
    }
}

fn time_course(plan: &Plan, times: &[f64]) -> TimeCourse {
    let s = &plan.spec.simulation;
    TimeCourse {
        start: s.start,
        end: times.last().copied().unwrap_or(s.end),
        times: Some(times.to_vec()),
        rtol: s.rtol,
        atol: s.atol,
        max_steps: s.max_steps,
        seed: plan.spec.population.seed,
        ..TimeCourse::default()
    }
}

/// Runs a simulation, turning errors and panics into a reason.
fn guarded(f: impl FnOnce() -> Result<Trajectory, vht_sim::SimError>) -> Result<Trajectory, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "internal error (panic): {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown")
        )),
    }
}

/// One patient's trajectory in one arm, on the arm's output times.
pub fn trajectory(plan: &Plan, arm: &ArmPlan, candidate: u64) -> Result<Trajectory, String> {
    trajectory_of(plan, arm, &plan.sampler.sample(candidate))
}

/// The trajectory of a patient with the given parameter values (spec order).
pub fn trajectory_of(plan: &Plan, arm: &ArmPlan, values: &[f64]) -> Result<Trajectory, String> {
    trajectory_with(plan, arm, values, &arm.outputs)
}

/// A patient's trajectory of the given outputs (compiled for this arm's
/// simulator) on the arm's output times.
pub fn trajectory_with(
    plan: &Plan,
    arm: &ArmPlan,
    values: &[f64],
    outputs: &vht_sim::Outputs,
) -> Result<Trajectory, String> {
    let overrides = plan.overrides(values, Some(arm));
    let tc = time_course(plan, &arm.times);
    guarded(|| vht_sim::simulate(&arm.sim, &tc, outputs, &overrides))
}

/// The endpoints of a patient with the given parameter values (spec order).
pub fn endpoints_of(plan: &Plan, arm: &ArmPlan, values: &[f64]) -> Result<Vec<f64>, String> {
    let traj = trajectory_of(plan, arm, values)?;
    Ok(crate::endpoints::compute(&arm.reads, &traj.times, &traj.values, traj.names.len()))
}

/// One patient's endpoints in one arm.
pub fn endpoints(plan: &Plan, arm: &ArmPlan, candidate: u64) -> Result<Vec<f64>, String> {
    endpoints_of(plan, arm, &plan.sampler.sample(candidate))
}

enum Verdict {
    Accept,
    Reject(Vec<usize>),
    Failed,
}

fn judge(plan: &Plan, candidate: u64) -> Verdict {
    let Some(screen) = &plan.screen else {
        return Verdict::Accept;
    };
    let values = plan.sampler.sample(candidate);
    if values.iter().any(|v| !v.is_finite()) {
        return Verdict::Failed;
    }
    let overrides = plan.overrides(&values, None);
    let tc = time_course(plan, &screen.times);
    let Ok(traj) = guarded(|| vht_sim::simulate(&screen.sim, &tc, &screen.outputs, &overrides)) else {
        return Verdict::Failed;
    };
    let failed: Vec<usize> = plan
        .spec
        .population
        .constraints
        .iter()
        .zip(&screen.at)
        .enumerate()
        .filter(|(_, (c, &(row, col)))| {
            let v = c.scale * traj.row(row)[col];
            !(v >= c.min && v <= c.max)
        })
        .map(|(k, _)| k)
        .collect();
    if failed.is_empty() {
        Verdict::Accept
    } else {
        Verdict::Reject(failed)
    }
}

/// Tries candidates in index order until `size` are plausible. Candidates
/// are judged in parallel chunks, but the population is the first `size`
/// accepted in index order, so it does not depend on the chunking.
pub fn screen(plan: &Plan, size: u64, progress: &(dyn Fn(Progress) + Sync)) -> Result<Screening, TrialError> {
    let pop = &plan.spec.population;
    let mut stats = ScreeningStats {
        tried: 0,
        accepted: 0,
        rejected_by: pop.constraints.iter().map(|c| (c.label(), 0)).collect(),
        failed: 0,
    };
    if plan.screen.is_none() {
        stats.tried = size;
        stats.accepted = size;
        return Ok(Screening { candidates: (0..size).collect(), stats });
    }
    // A population size other than the spec's (`--patients`) scales the
    // candidate budget with it.
    let budget = if size == pop.size {
        pop.max_candidates
    } else {
        (pop.max_candidates as f64 * size as f64 / pop.size as f64).ceil() as u64
    };
    let max = budget.max(size);
    let mut candidates = Vec::with_capacity(size as usize);
    let mut next = 0u64;
    while (candidates.len() as u64) < size {
        if next >= max {
            return Err(TrialError::Implausible { wanted: size, stats });
        }
        let want = size - candidates.len() as u64;
        let chunk = (want + want / 4 + 64).min(65_536).min(max - next);
        let verdicts: Vec<Verdict> = (next..next + chunk).into_par_iter().map(|i| judge(plan, i)).collect();
        for (k, v) in verdicts.into_iter().enumerate() {
            if candidates.len() as u64 == size {
                break;
            }
            stats.tried += 1;
            match v {
                Verdict::Accept => {
                    stats.accepted += 1;
                    candidates.push(next + k as u64);
                }
                Verdict::Reject(which) => {
                    for c in which {
                        stats.rejected_by[c].1 += 1;
                    }
                }
                Verdict::Failed => stats.failed += 1,
            }
        }
        next += chunk;
        progress(Progress { phase: Phase::Screening, done: candidates.len() as u64, total: size });
    }
    Ok(Screening { candidates, stats })
}

/// Simulates patients `first, first + 1, …` (with the given candidate
/// indices) in every arm, in parallel; rows come out in patient order.
pub fn simulate_patients(
    plan: &Plan,
    first: u64,
    candidates: &[u64],
    progress: &(dyn Fn(Progress) + Sync),
    done: &AtomicU64,
    total: u64,
) -> Table {
    // Per patient: its sampled values, and its endpoints (or failure) in
    // each arm it goes through (all of them in a crossover, one when randomised).
    type Patient = (Vec<f64>, Vec<(usize, Result<Vec<f64>, String>)>);
    let per_patient: Vec<Patient> = candidates
        .par_iter()
        .enumerate()
        .map(|(k, &c)| {
            // Sampled once per patient: every arm starts from the same values.
            let params = plan.sampler.sample(c);
            let results = plan
                .arms_of(first + k as u64)
                .into_iter()
                .map(|a| (a, endpoints_of(plan, &plan.arms[a], &params)))
                .collect();
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(Progress { phase: Phase::Simulating, done: d, total });
            (params, results)
        })
        .collect();
    let mut table = Table::empty(plan);
    for (k, (params, results)) in per_patient.into_iter().enumerate() {
        for (a, r) in results {
            table.push(first + k as u64, candidates[k], a as u32, &params, r);
        }
    }
    table
}

/// Screens and simulates a whole trial in memory on `threads` threads (0:
/// all cores). The library's simplest entry point; [`crate::store::run`]
/// adds files, shards and resumption.
pub fn run_in_memory(plan: &Plan, threads: usize) -> Result<(Screening, Table), TrialError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| TrialError::Store { path: "(thread pool)".into(), message: e.to_string() })?;
    pool.install(|| {
        let screening = screen(plan, plan.spec.population.size, &|_| {})?;
        let done = AtomicU64::new(0);
        let n = screening.candidates.len() as u64;
        let table = simulate_patients(plan, 0, &screening.candidates, &|_| {}, &done, n);
        Ok((screening, table))
    })
}
