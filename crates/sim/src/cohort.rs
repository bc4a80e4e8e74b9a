//! Many runs of one simulator in parallel: a cohort of virtual patients.
//!
//! Every member differs only in its parameter overrides. Members are made on
//! the worker thread that runs them (from their index) and each trajectory is
//! handed to the caller's sink as soon as it is done, so memory stays flat
//! however large the cohort: nothing is collected here. The work is spread
//! over the current rayon pool; to choose the number of threads, call this
//! inside `rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(..)`.
//!
//! A member's result depends only on the simulator, the time course and the
//! member's overrides, never on the thread that ran it or the order of runs.

use rayon::prelude::*;
use vht_ir::Sym;

use crate::{simulate, Outputs, SimError, Simulator, Stats, TimeCourse, Trajectory};

/// What a cohort run did, summed over its members.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CohortSummary {
    pub members: usize,
    pub failures: usize,
    /// Work counters summed over the members that succeeded.
    pub stats: Stats,
}

/// Simulates members `0..members` of a cohort in parallel. `overrides(i, buf)`
/// fills `buf` (cleared before the call, reused between members on a thread)
/// with member `i`'s parameter overrides; `sink(i, result)` receives each
/// member's trajectory or error, in no particular order and from any thread.
pub fn simulate_cohort<O, S>(
    sim: &Simulator,
    tc: &TimeCourse,
    outputs: &Outputs,
    members: usize,
    overrides: O,
    sink: S,
) -> CohortSummary
where
    O: Fn(usize, &mut Vec<(Sym, f64)>) + Sync,
    S: Fn(usize, Result<Trajectory, SimError>) + Sync,
{
    let (failures, stats) = (0..members)
        .into_par_iter()
        .map_init(Vec::new, |buf, i| {
            buf.clear();
            overrides(i, buf);
            let result = simulate(sim, tc, outputs, buf);
            let done = match &result {
                Ok(traj) => (0, traj.stats),
                Err(_) => (1, Stats::default()),
            };
            sink(i, result);
            done
        })
        .reduce(
            || (0, Stats::default()),
            |(f1, mut s1), (f2, s2)| {
                s1 += s2;
                (f1 + f2, s1)
            },
        );
    CohortSummary { members, failures, stats }
}
