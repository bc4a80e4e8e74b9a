//! The linear programs: an [`FbaProblem`] handed to microlp's simplex, once for
//! the optimum ([`solve`]) and 2n more times for its variability
//! ([`flux_variability`]).

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolutionStatus, Variable};

use crate::error::FbcError;
use crate::{Direction, FbaProblem, FluxSolution, Status};

/// Solves the flux balance problem.
///
/// Returns a [`FluxSolution`] whose [`Status`] says whether the fluxes are an
/// optimum; an error only for a malformed problem (an index out of range, a
/// NaN bound) or a numerical failure of the solver.
pub fn solve(problem: &FbaProblem) -> Result<FluxSolution, FbcError> {
    let cost = objective_vector(problem)?;
    let outcome = run(problem, &cost, problem.objective.direction, None)?;
    Ok(solution(problem, &cost, outcome))
}

/// The range one reaction's flux can take over all optimal solutions.
#[derive(Clone, Debug, PartialEq)]
pub struct FluxRange {
    pub reaction: String,
    pub min: f64,
    pub max: f64,
}

/// The optimum of a flux balance problem and how far each flux can move
/// without losing it (flux variability analysis).
#[derive(Clone, Debug, PartialEq)]
pub struct FluxVariability {
    pub optimum: FluxSolution,
    /// One range per reaction, in document order; empty unless the optimum is
    /// [`Status::Optimal`]. A range wider than the solver tolerance means the
    /// optimum is degenerate in that flux: another solver may report any value
    /// in it.
    pub ranges: Vec<FluxRange>,
}

/// Solves the problem, then minimises and maximises every flux with the
/// objective held at its optimum (within the solver's 1e-7 feasibility
/// tolerance). A flux that can grow without limit there gets an infinite end.
pub fn flux_variability(problem: &FbaProblem) -> Result<FluxVariability, FbcError> {
    let optimum = solve(problem)?;
    if optimum.status != Status::Optimal {
        return Ok(FluxVariability { optimum, ranges: Vec::new() });
    }
    let cost = objective_vector(problem)?;
    // Held exactly at the optimum, not relaxed by a slack: the optimum meets the row
    // within the solver's own feasibility tolerance, while a right-hand side offset
    // by about that tolerance (1e-7) made microlp 0.7 fail to converge on the
    // suite's free-flux models (01189, 01609, 01620, 01630).
    let keep = match problem.objective.direction {
        Direction::Maximize => (ComparisonOp::Ge, optimum.objective_value),
        Direction::Minimize => (ComparisonOp::Le, optimum.objective_value),
    };
    let mut ranges = Vec::with_capacity(problem.reactions.len());
    for (j, r) in problem.reactions.iter().enumerate() {
        let mut unit = vec![0.0; problem.reactions.len()];
        unit[j] = 1.0;
        let end = |direction| -> Result<f64, FbcError> {
            match run(problem, &unit, direction, Some((&cost, keep.0, keep.1)))? {
                Outcome::Optimal { values, .. } => Ok(values[j]),
                Outcome::Unbounded => Ok(match direction {
                    Direction::Maximize => f64::INFINITY,
                    Direction::Minimize => f64::NEG_INFINITY,
                }),
                // The optimum itself satisfies these constraints; only numerics can lose it.
                Outcome::Infeasible => Err(FbcError::Solver {
                    reason: format!("the optimal face became infeasible while bounding `{}`", r.id),
                }),
            }
        };
        let min = end(Direction::Minimize)?;
        let max = end(Direction::Maximize)?;
        ranges.push(FluxRange { reaction: r.id.clone(), min, max });
    }
    Ok(FluxVariability { optimum, ranges })
}

enum Outcome {
    Optimal { values: Vec<f64>, iterations: u64 },
    Infeasible,
    Unbounded,
}

/// The dense objective vector `c`, with the problem's indices checked.
fn objective_vector(problem: &FbaProblem) -> Result<Vec<f64>, FbcError> {
    let n = problem.reactions.len();
    let mut cost = vec![0.0; n];
    for &(r, c) in &problem.objective.coefficients {
        *cost.get_mut(r).ok_or(FbcError::IndexOutOfRange { what: "objective reaction", index: r, len: n })? += c;
    }
    Ok(cost)
}

/// Optimises `cost · v` over the problem's flux space, optionally with one
/// extra row `extra.0 · v (extra.1) extra.2`.
fn run(
    problem: &FbaProblem,
    cost: &[f64],
    direction: Direction,
    extra: Option<(&[f64], ComparisonOp, f64)>,
) -> Result<Outcome, FbcError> {
    let m = problem.species.len();
    let mut bounds_infeasible = false;
    for r in &problem.reactions {
        if r.lower_bound.is_nan() || r.upper_bound.is_nan() {
            return Err(FbcError::InvalidBound { reaction: r.id.clone(), lower: r.lower_bound, upper: r.upper_bound });
        }
        if let Some(&(s, _)) = r.stoichiometry.iter().find(|(s, _)| *s >= m) {
            return Err(FbcError::IndexOutOfRange { what: "stoichiometry species", index: s, len: m });
        }
        // microlp refuses +inf lower / -inf upper bounds as invalid input; they
        // (and crossed bounds) simply leave no feasible flux.
        bounds_infeasible |=
            r.lower_bound > r.upper_bound || r.lower_bound == f64::INFINITY || r.upper_bound == f64::NEG_INFINITY;
    }
    if bounds_infeasible {
        return Ok(Outcome::Infeasible);
    }

    let mut lp = Problem::new(match direction {
        Direction::Maximize => OptimizationDirection::Maximize,
        Direction::Minimize => OptimizationDirection::Minimize,
    });
    let vars: Vec<Variable> =
        problem.reactions.iter().zip(cost).map(|(r, &c)| lp.add_var(c, (r.lower_bound, r.upper_bound))).collect();
    let mut rows: Vec<Vec<(Variable, f64)>> = vec![Vec::new(); m];
    for (r, &var) in problem.reactions.iter().zip(&vars) {
        for &(s, k) in &r.stoichiometry {
            let row = &mut rows[s];
            // A repeated species in one column arrives adjacent: merge it, the solver
            // wants each variable once per constraint.
            match row.last_mut() {
                Some((last, v)) if *last == var => *v += k,
                _ => row.push((var, k)),
            }
        }
    }
    for row in rows.into_iter().filter(|row| !row.is_empty()) {
        lp.add_constraint(row, ComparisonOp::Eq, 0.0);
    }
    if let Some((coefficients, op, rhs)) = extra {
        let row: Vec<(Variable, f64)> =
            vars.iter().zip(coefficients).filter(|(_, c)| **c != 0.0).map(|(v, c)| (*v, *c)).collect();
        if !row.is_empty() {
            lp.add_constraint(row, op, rhs);
        }
    }

    let solution = match lp.solve() {
        Ok(outcome) => outcome.into_solution().map_err(|stopped| FbcError::Solver {
            reason: format!("stopped without a solution ({:?})", stopped.termination_reason()),
        })?,
        Err(microlp::Error::Infeasible) => return Ok(Outcome::Infeasible),
        Err(microlp::Error::Unbounded) => return Ok(Outcome::Unbounded),
        Err(e) => return Err(FbcError::Solver { reason: e.to_string() }),
    };
    if solution.status() != SolutionStatus::Optimal {
        return Err(FbcError::Solver { reason: "the solver returned a solution without proving it optimal".into() });
    }
    Ok(Outcome::Optimal {
        // `+ 0.0` turns the solver's -0.0 into 0.0, which reads better in results.
        values: vars.iter().map(|&v| solution.var_value(v) + 0.0).collect(),
        iterations: solution.stats().lp_iterations,
    })
}

fn solution(problem: &FbaProblem, cost: &[f64], outcome: Outcome) -> FluxSolution {
    let filled = |value: &dyn Fn(usize) -> f64, objective_value, status, lp_iterations| FluxSolution {
        objective_id: problem.objective.id.clone(),
        objective_value,
        fluxes: problem.reactions.iter().enumerate().map(|(j, r)| (r.id.clone(), value(j))).collect(),
        status,
        lp_iterations,
    };
    match outcome {
        Outcome::Optimal { values, iterations } => {
            // The objective is recomputed from the reported fluxes so the two always agree.
            let objective = values.iter().zip(cost).map(|(v, c)| v * c).sum::<f64>() + 0.0;
            filled(&|j| values[j], objective, Status::Optimal, iterations)
        }
        Outcome::Infeasible => filled(&|_| f64::NAN, f64::NAN, Status::Infeasible, 0),
        Outcome::Unbounded => {
            let objective = match problem.objective.direction {
                Direction::Maximize => f64::INFINITY,
                Direction::Minimize => f64::NEG_INFINITY,
            };
            filled(&|_| f64::NAN, objective, Status::Unbounded, 0)
        }
    }
}
