//! Multistart optimisation: starts sampled by Latin hypercube in the scaled
//! bounds (seeded), each optimised locally, in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::optimize::{self, Smooth, Stop, Tolerances};
use crate::{FitError, Objective, WithGradient};

/// Settings of a multistart fit. Plain data.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Number of local optimisations.
    pub starts: usize,
    pub optimizer: Optimizer,
    /// Seed of the Latin hypercube of starting points.
    pub seed: u64,
    /// Iteration limit of each local optimisation.
    pub max_iterations: usize,
    /// Worker threads (None: all cores).
    pub threads: Option<usize>,
    /// Print a progress line on standard error as starts finish.
    pub progress: bool,
    /// How many times [`fit`] redraws a start point that cannot be
    /// simulated (0: such a start stays failed). Default [`REDRAWS`].
    pub redraws: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            starts: 20,
            optimizer: Optimizer::TrustRegion,
            seed: 0,
            max_iterations: 1000,
            threads: None,
            progress: false,
            redraws: REDRAWS,
        }
    }
}

/// The local optimiser of each start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Trust region on the Gauss-Newton Hessian, as Fides does
    /// ([`optimize::trust_region`]).
    TrustRegion,
    /// Projected L-BFGS ([`optimize::lbfgsb`]).
    Lbfgsb,
}

/// How a start ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StartStatus {
    Converged,
    MaxIterations,
    /// The objective could not be computed at the start (the reason).
    Failed(String),
}

/// One local optimisation. Vectors are scaled estimated parameters (see
/// [`Objective::estimated`]).
#[derive(Clone, Debug)]
pub struct StartResult {
    pub index: usize,
    pub x0: Vec<f64>,
    pub x: Vec<f64>,
    /// The objective at `x` (NaN when failed).
    pub fval: f64,
    pub iterations: usize,
    /// Objective evaluations (with or without gradient).
    pub evaluations: usize,
    pub seconds: f64,
    pub status: StartStatus,
    /// For a start point drawn by [`fit`] because an earlier one could not
    /// be evaluated: the index of that failed start (itself in
    /// [`FitResult::starts`], as failed).
    pub replaces: Option<usize>,
}

/// Every start, sorted by objective value (failed starts last), and the best.
#[derive(Clone, Debug)]
pub struct FitResult {
    pub best: Option<StartResult>,
    pub starts: Vec<StartResult>,
    /// Wall-clock time of the whole multistart.
    pub seconds: f64,
}

/// The objective as a [`Smooth`] function of the scaled estimated parameters.
/// The first simulation failure's message is kept for the start's status.
pub(crate) struct AsSmooth<'a> {
    pub objective: &'a Objective,
    pub last_error: Mutex<Option<String>>,
}

impl Smooth for AsSmooth<'_> {
    fn value(&self, x: &[f64]) -> Option<f64> {
        match self.objective.evaluate_scaled(x) {
            Ok(v) => Some(v),
            Err(e) => {
                self.note(e);
                None
            }
        }
    }
    fn value_gradient(&self, x: &[f64]) -> Option<(f64, Vec<f64>, Vec<Vec<f64>>)> {
        match self.objective.evaluate_with_gradient(x) {
            Ok(v) => Some(v),
            Err(e) => {
                self.note(e);
                None
            }
        }
    }
}

impl AsSmooth<'_> {
    fn note(&self, e: FitError) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e.to_string());
        }
    }
}

/// A small seeded generator (SplitMix64): starts must not depend on a
/// global random state or on the thread count.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// `n` points of a Latin hypercube in the box `[lb, ub]`: in every
/// coordinate, each of the `n` equal strata holds exactly one point.
pub fn latin_hypercube(n: usize, lb: &[f64], ub: &[f64], seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let d = lb.len();
    let mut points = vec![vec![0.0; d]; n];
    for k in 0..d {
        // A random permutation of the strata (Fisher-Yates).
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            perm.swap(i, j);
        }
        for (i, p) in points.iter_mut().enumerate() {
            let u = (perm[i] as f64 + rng.uniform()) / n as f64;
            p[k] = lb[k] + u * (ub[k] - lb[k]);
        }
    }
    points
}

/// How many replacement points [`fit`] draws by default
/// ([`FitOptions::redraws`]), one after the other, for a start point where
/// the objective or its gradient cannot be computed, before that start is
/// left failed. On Fujita_SciSignal2010 (bounds 1e-8 to
/// 1e8 on every rate and initial amount) 42 of 100 Latin-hypercube points
/// fail, so a draw fails with probability ~0.4 and 10 in a row with ~1e-4;
/// a failed point costs one simulation, so the budget is cheap.
pub const REDRAWS: usize = 10;

/// Runs `options.starts` local optimisations from Latin-hypercube starts in
/// the scaled bounds and returns them sorted by objective value.
///
/// A start whose first point cannot be evaluated (a simulation fails) is
/// recorded as failed, and a replacement point is drawn uniformly in the
/// bounds and optimised instead (up to `options.redraws` times per start; what
/// pyPESTO does with `CheckedStartpoints(check_fval=True, check_grad=True)`,
/// except that here the failed points stay in the result). If neither the
/// Latin-hypercube points nor the first replacements can be simulated at
/// all, redrawing stops there. Replacements are numbered from
/// `options.starts` on and name the start they replace
/// ([`StartResult::replaces`]); they are seeded by `options.seed` and the
/// start's index, so the result does not depend on the thread count. Other
/// starts go on whatever one start does.
pub fn fit(objective: &Objective, options: &FitOptions) -> Result<FitResult, FitError> {
    let (lb, ub) = objective.scaled_bounds();
    if let Some(i) = (0..lb.len()).find(|&i| !(lb[i].is_finite() && ub[i].is_finite() && lb[i] <= ub[i])) {
        let p = &objective.problem.parameters[objective.estimated()[i]];
        return Err(FitError::Bounds { id: p.id.clone(), lower: p.lower, upper: p.upper });
    }
    let starts = latin_hypercube(options.starts, &lb, &ub, options.seed);
    run_starts(objective, options, starts, options.redraws)
}

/// [`fit`] from given starting points (scaled). A start that cannot be
/// evaluated is recorded as failed and not replaced (the points are the
/// caller's, not draws from a distribution this function knows).
pub fn fit_from(objective: &Objective, options: &FitOptions, starts: Vec<Vec<f64>>) -> Result<FitResult, FitError> {
    run_starts(objective, options, starts, 0)
}

/// The replacement points of start `index`, in the order they are tried:
/// uniform in the box, from a stream of their own (seed and index each
/// hashed by a SplitMix64 step, then combined), so that they neither repeat
/// the Latin hypercube's stream nor depend on which other starts failed.
fn redraw_stream(seed: u64, index: usize) -> Rng {
    let seed = Rng::new(seed ^ 0x5245_4452_4157_5321).next_u64(); // "REDRAWS!"
    Rng::new(seed ^ Rng::new(index as u64).next_u64())
}

/// [`AsSmooth`] that answers the first `value_gradient` at `x0` from the
/// evaluation already made while checking the start point.
struct StartKnown<'a> {
    inner: AsSmooth<'a>,
    first: Mutex<Option<(Vec<f64>, WithGradient)>>,
}

impl Smooth for StartKnown<'_> {
    fn value(&self, x: &[f64]) -> Option<f64> {
        self.inner.value(x)
    }
    fn value_gradient(&self, x: &[f64]) -> Option<WithGradient> {
        let known = self.first.lock().ok().and_then(|mut first| first.take_if(|(x0, _)| x0.as_slice() == x));
        match known {
            Some((_, v)) => Some(v),
            None => self.inner.value_gradient(x),
        }
    }
}

/// A start point that could not be evaluated.
fn failed_start(index: usize, x0: Vec<f64>, why: String, seconds: f64) -> StartResult {
    StartResult {
        index,
        x: x0.clone(),
        x0,
        fval: f64::NAN,
        iterations: 0,
        evaluations: 1,
        seconds,
        status: StartStatus::Failed(why),
        replaces: None,
    }
}

/// Runs the starts in two phases. First every start point is evaluated
/// (objective, gradient and Hessian, which the optimisers need there anyway);
/// points that fail are redrawn in rounds, all failed starts of a round in
/// parallel, up to `redraws` rounds. If neither the given points nor the
/// first round of redraws gave one runnable point, the problem cannot be
/// simulated where we look, and redrawing stops (bounding the cost of a
/// broken model to twice the starts). Rounds keep the result independent
/// of the thread count. Then every start with a runnable point is
/// optimised, in parallel.
fn run_starts(
    objective: &Objective,
    options: &FitOptions,
    starts: Vec<Vec<f64>>,
    redraws: usize,
) -> Result<FitResult, FitError> {
    let (lb, ub) = objective.scaled_bounds();
    let t0 = Instant::now();
    let total = starts.len();
    let tol = Tolerances { max_iterations: options.max_iterations, ..Tolerances::default() };
    // 0 threads: rayon's default (all cores, or RAYON_NUM_THREADS).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.map_or(0, |n| n.max(1)))
        .build()
        .map_err(|e| FitError::Threads { reason: e.to_string() })?;

    // Per start: the points that failed, in order (a redrawn one has index
    // usize::MAX until numbered below), and the runnable point with its
    // evaluation and the seconds spent evaluating it.
    let mut failed: Vec<Vec<StartResult>> = vec![Vec::new(); total];
    let mut ready: Vec<Option<(Vec<f64>, WithGradient, f64)>> = vec![None; total];
    let mut streams: Vec<Rng> = (0..total).map(|i| redraw_stream(options.seed, i)).collect();
    let mut candidates: Vec<(usize, Vec<f64>)> = starts.into_iter().enumerate().collect();
    let mut runnable_so_far = 0;
    for round in 0..=redraws {
        if candidates.is_empty() || (round == 2 && runnable_so_far == 0) {
            break;
        }
        let evaluated: Vec<(usize, Vec<f64>, Result<WithGradient, String>, f64)> = pool.install(|| {
            candidates
                .into_par_iter()
                .map(|(i, x0)| {
                    let t = Instant::now();
                    let v = match objective.evaluate_with_gradient(&x0) {
                        Ok(v) if v.0.is_finite() => Ok(v),
                        Ok(_) => Err("not finite at the start".to_string()),
                        Err(e) => Err(format!("at the start: {e}")),
                    };
                    (i, x0, v, t.elapsed().as_secs_f64())
                })
                .collect()
        });
        candidates = Vec::new();
        for (i, x0, v, seconds) in evaluated {
            match v {
                Ok(v) => {
                    runnable_so_far += 1;
                    ready[i] = Some((x0, v, seconds));
                }
                Err(why) => {
                    let index = if round == 0 { i } else { usize::MAX };
                    failed[i].push(failed_start(index, x0, why, seconds));
                    let rng = &mut streams[i];
                    candidates.push((i, (0..lb.len()).map(|k| lb[k] + rng.uniform() * (ub[k] - lb[k])).collect()));
                }
            }
        }
    }

    let done = AtomicUsize::new(0);
    let best = Mutex::new(f64::INFINITY);
    let to_run = ready.iter().filter(|r| r.is_some()).count();
    let local = |(i, (x0, first, seconds)): (usize, (Vec<f64>, WithGradient, f64))| -> StartResult {
        let t = Instant::now();
        let f = StartKnown {
            inner: AsSmooth { objective, last_error: Mutex::new(None) },
            first: Mutex::new(Some((x0.clone(), first))),
        };
        let local = match options.optimizer {
            Optimizer::TrustRegion => optimize::trust_region(&f, &x0, &lb, &ub, &tol),
            Optimizer::Lbfgsb => optimize::lbfgsb(&f, &x0, &lb, &ub, &tol),
        };
        let status = match local.stop {
            Stop::Converged(_) => StartStatus::Converged,
            Stop::MaxIterations => StartStatus::MaxIterations,
            // Not reached: the start point was evaluated above.
            Stop::Failed(why) => {
                let detail = f.inner.last_error.lock().ok().and_then(|e| e.clone()).unwrap_or_default();
                StartStatus::Failed(if detail.is_empty() { why } else { format!("{why}: {detail}") })
            }
        };
        let r = StartResult {
            // The given point keeps its index; a redrawn one is numbered below.
            index: if failed[i].is_empty() { i } else { usize::MAX },
            x0,
            x: local.x,
            fval: if matches!(status, StartStatus::Failed(_)) { f64::NAN } else { local.fval },
            iterations: local.iterations,
            evaluations: local.evaluations,
            seconds: seconds + t.elapsed().as_secs_f64(),
            status,
            replaces: None,
        };
        let k = done.fetch_add(1, Ordering::SeqCst) + 1;
        if options.progress {
            let b = {
                let mut b = best.lock().unwrap_or_else(|e| e.into_inner());
                if r.fval < *b {
                    *b = r.fval;
                }
                *b
            };
            eprint!("\rstarts {k}/{to_run} done, best {b:.6}, {:.1} s   ", t0.elapsed().as_secs_f64());
            if k == to_run {
                eprintln!();
            }
        }
        r
    };
    let runs: Vec<(usize, (Vec<f64>, WithGradient, f64))> =
        ready.into_iter().enumerate().filter_map(|(i, r)| r.map(|r| (i, r))).collect();
    let optimised: Vec<(usize, StartResult)> =
        pool.install(|| runs.into_par_iter().map(|(i, r)| (i, local((i, r)))).collect());
    let mut per_start = failed;
    for (i, r) in optimised {
        per_start[i].push(r);
    }

    // Redrawn points are numbered after the given starts, in start order,
    // and each names the point it replaces.
    let mut next = total;
    let mut results: Vec<StartResult> = Vec::with_capacity(total);
    for tried in per_start {
        let mut previous = None;
        for mut r in tried {
            if r.index == usize::MAX {
                r.index = next;
                r.replaces = previous;
                next += 1;
            }
            previous = Some(r.index);
            results.push(r);
        }
    }
    results.sort_by(|a, b| {
        let key = |r: &StartResult| if r.fval.is_nan() { f64::INFINITY } else { r.fval };
        key(a).total_cmp(&key(b)).then(a.index.cmp(&b.index))
    });
    let best = results.first().filter(|r| !r.fval.is_nan()).cloned();
    Ok(FitResult { best, starts: results, seconds: t0.elapsed().as_secs_f64() })
}
