//! The linear program: an [`FbaProblem`] handed to microlp's simplex.

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolutionStatus, Variable};

use crate::error::FbcError;
use crate::{Direction, FbaProblem, FluxSolution, Status};

/// Solves the flux balance problem.
///
/// Returns a [`FluxSolution`] whose [`Status`] says whether the fluxes are an
/// optimum; an error only for a malformed problem (an index out of range, a
/// NaN bound) or a numerical failure of the solver.
pub fn solve(problem: &FbaProblem) -> Result<FluxSolution, FbcError> {
    let n = problem.reactions.len();
    let mut cost = vec![0.0; n];
    for &(r, c) in &problem.objective.coefficients {
        *cost.get_mut(r).ok_or(FbcError::IndexOutOfRange {
            what: "objective reaction",
            index: r,
            len: n,
        })? += c;
    }
    let mut bounds_infeasible = false;
    for r in &problem.reactions {
        if r.lower_bound.is_nan() || r.upper_bound.is_nan() {
            return Err(FbcError::InvalidBound {
                reaction: r.id.clone(),
                lower: r.lower_bound,
                upper: r.upper_bound,
            });
        }
        // microlp refuses +inf lower / -inf upper bounds as invalid input; they
        // (and crossed bounds) simply leave no feasible flux.
        bounds_infeasible |= r.lower_bound > r.upper_bound
            || r.lower_bound == f64::INFINITY
            || r.upper_bound == f64::NEG_INFINITY;
    }

    let direction = match problem.objective.direction {
        Direction::Maximize => OptimizationDirection::Maximize,
        Direction::Minimize => OptimizationDirection::Minimize,
    };
    let mut lp = Problem::new(direction);
    let vars: Vec<Variable> = if bounds_infeasible {
        Vec::new()
    } else {
        problem
            .reactions
            .iter()
            .zip(&cost)
            .map(|(r, &c)| lp.add_var(c, (r.lower_bound, r.upper_bound)))
            .collect()
    };
    let m = problem.species.len();
    let mut rows: Vec<Vec<(Variable, f64)>> = vec![Vec::new(); m];
    for (j, r) in problem.reactions.iter().enumerate() {
        for &(s, k) in &r.stoichiometry {
            let row = rows.get_mut(s).ok_or(FbcError::IndexOutOfRange {
                what: "stoichiometry species",
                index: s,
                len: m,
            })?;
            let Some(&var) = vars.get(j) else { continue };
            // A repeated species in one column arrives adjacent: merge it, the solver
            // wants each variable once per constraint.
            match row.last_mut() {
                Some((last, v)) if *last == var => *v += k,
                _ => row.push((var, k)),
            }
        }
    }
    let nan = || FluxSolution {
        objective_id: problem.objective.id.clone(),
        objective_value: f64::NAN,
        fluxes: problem
            .reactions
            .iter()
            .map(|r| (r.id.clone(), f64::NAN))
            .collect(),
        status: Status::Infeasible,
        lp_iterations: 0,
    };
    if bounds_infeasible {
        return Ok(nan());
    }
    for row in rows.into_iter().filter(|row| !row.is_empty()) {
        lp.add_constraint(row, ComparisonOp::Eq, 0.0);
    }

    let solution = match lp.solve() {
        Ok(outcome) => outcome
            .into_solution()
            .map_err(|stopped| FbcError::Solver {
                reason: format!(
                    "stopped without a solution ({:?})",
                    stopped.termination_reason()
                ),
            })?,
        Err(microlp::Error::Infeasible) => return Ok(nan()),
        Err(microlp::Error::Unbounded) => {
            let objective_value = match problem.objective.direction {
                Direction::Maximize => f64::INFINITY,
                Direction::Minimize => f64::NEG_INFINITY,
            };
            return Ok(FluxSolution {
                objective_value,
                status: Status::Unbounded,
                ..nan()
            });
        }
        Err(e) => {
            return Err(FbcError::Solver {
                reason: e.to_string(),
            })
        }
    };
    if solution.status() != SolutionStatus::Optimal {
        return Err(FbcError::Solver {
            reason: "the solver returned a solution without proving it optimal".into(),
        });
    }
    // `+ 0.0` turns the solver's -0.0 into 0.0, which reads better in results.
    let values: Vec<f64> = vars.iter().map(|&v| solution.var_value(v) + 0.0).collect();
    // The objective is recomputed from the reported fluxes so the two always agree.
    let objective_value = values.iter().zip(&cost).map(|(v, c)| v * c).sum::<f64>() + 0.0;
    Ok(FluxSolution {
        objective_id: problem.objective.id.clone(),
        objective_value,
        fluxes: problem
            .reactions
            .iter()
            .zip(values)
            .map(|(r, v)| (r.id.clone(), v))
            .collect(),
        status: Status::Optimal,
        lp_iterations: solution.stats().lp_iterations,
    })
}
