//! Experiments on a compiled model: time courses with exact SBML event
//! semantics, algebraic constraints and delays.
//!
//! A [`Simulator`] is built once from a `vht_ir::Model` (compiling it) and is
//! shared (`Arc`) by every run; a run differs only in its [`TimeCourse`]
//! settings and parameter overrides, and gives a [`Trajectory`].
//!
//! How a run works:
//! - initial values are evaluated in dependency order, algebraic unknowns are
//!   solved by Newton, and events whose trigger is true at the start fire;
//! - the integrator ([`vht_solver`]) steps over the ODE states only: the
//!   algebraic unknowns are eliminated (solved for at each right-hand-side
//!   evaluation), so the solver sees a plain ODE;
//! - every relational sub-expression of every trigger is a root function;
//!   at a root the triggers are re-evaluated and events are scheduled,
//!   cancelled and executed (by priority, then at random with the run's seed)
//!   exactly as SBML Level 3 section 4.12 prescribes;
//! - the vector field's own discontinuities (`piecewise` conditions and
//!   comparisons in rates and rules, `floor`/`ceil`/`rem`/`quotient`) restart
//!   the integrator where they switch, as an event without assignments: those
//!   of time alone at stop times computed from the parameters, the others
//!   found like trigger changes (see `switches.rs`);
//! - `delay(x, tau)` reads a history of the solution (cubic Hermite);
//! - adjoint sensitivities ([`Adjoint`]) integrate backwards along a run
//!   that kept its steps ([`simulate_dense`]);
//! - outputs are interpolated from the integrator's dense output, not by
//!   stopping at every output time. An output time that coincides with an
//!   event shows the state after the event.
//!
//! Architecture invariant: this crate knows nothing about SBML or any file
//! format, and nothing about HTTP or storage.

mod adjoint;
mod cohort;
mod events;
mod history;
mod newton;
mod run;
mod simulator;
mod switches;

pub use adjoint::{Adjoint, AdjointError, AdjointResult, Jump};
pub use cohort::{simulate_cohort, CohortSummary};
pub use run::{
    initial_values, simulate, simulate_dense, Column, Dense, Firing, Outputs, SimError, TimeCourse, Trajectory,
};
pub use simulator::{BuildError, Simulator};
pub use vht_solver::{LinearSolver, Stats};
