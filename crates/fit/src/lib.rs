//! Parameter estimation for problems in the PEtab v1 format: import, the
//! negative log-likelihood, its exact gradient, multistart optimisation,
//! profile likelihoods and prediction bands.
//!
//! A PEtab problem is an SBML model plus four tables: parameters (scales,
//! bounds, nominal values, priors), observables (formulas over the model,
//! noise formulas, transformations, noise distributions), conditions (what
//! each experiment changes in the model) and measurements. [`read`] gives a
//! [`Problem`] (plain data, checked for internal consistency);
//! [`Objective::new`] loads and compiles the model once for all conditions and
//! resolves every formula and override against it; [`Objective::evaluate`]
//! simulates each (pre-equilibration, simulation condition) pair and sums the
//! PEtab likelihood terms.
//!
//! Estimation works on the *scaled estimated parameter vector*: one entry
//! per estimated row of the parameter table, in table order
//! ([`Objective::estimated`]), each on its `parameterScale` (log10 rows hold
//! `log10(value)`); bounds, starts, gradients, Hessians, profiles and
//! results all use it. [`Objective::evaluate_with_gradient`] gives the
//! objective, its gradient by forward sensitivities and the Gauss-Newton
//! Hessian (see the `sens` module for how the sensitivity system is built),
//! or with [`Settings::gradient`] = [`Gradient::Adjoint`] the gradient alone
//! by adjoint sensitivities (the `adjoint` module; faster from about 40
//! parameters: measured 3x on Bachmann_MSB2011's 113);
//! [`fit`] runs seeded Latin-hypercube multistarts of a trust-region
//! optimiser on that Hessian (Fides-style) or a projected L-BFGS
//! ([`optimize`]) in parallel; [`profile`] and [`prediction_bands`] give
//! the uncertainty of a fit.
//!
//! Design choices:
//! - Observable and noise formulas are parsed to `vht_ir::Expr` over the
//!   model's symbols plus "extras" (placeholders and parameter-table entries
//!   that are not model symbols). The simulator reports the model symbols
//!   they read; each measurement's formula is then evaluated with its own
//!   placeholder values, which may differ between rows of one condition.
//! - A condition that sets a species integrated as an amount sets its
//!   initial concentration through a parameter added to the model, so a
//!   compartment size set by the same condition is taken into account.
//! - Steady states (pre-equilibration, `inf` times) come from simulating
//!   until the state derivative is small ([`SteadyState`]), then Newton's
//!   method on `f(x) = 0` within the conserved moieties the run stayed in;
//!   their sensitivities solve `J s = -df/dp` there. Where Newton fails, the
//!   simulated point is kept (with sensitivities: simulated until the
//!   tangents stop moving too).
//! - Events have gradients: the tangents jump with the event's assignments,
//!   including the shift of an event time that depends on the parameters
//!   (a trigger that is one comparison, without delay).
//!
//! ```no_run
//! let problem = vht_fit::read(std::path::Path::new("Boehm_JProteomeRes2014.yaml"))?;
//! let nominal = problem.nominal();
//! let objective = vht_fit::Objective::new(problem, vht_fit::Settings::default())?;
//! let value = objective.evaluate(&nominal)?;
//! println!("{}", value.total());
//!
//! // Estimation: 20 seeded starts, then a profile and bands at the best one.
//! let options = vht_fit::FitOptions { starts: 20, seed: 1, ..Default::default() };
//! let result = vht_fit::fit(&objective, &options)?;
//! let best = result.best.expect("at least one start succeeded");
//! let profiles = vht_fit::profile(
//!     &objective,
//!     &best.x,
//!     best.fval,
//!     &vht_fit::ProfileOptions { parameters: vec![0], ..Default::default() },
//! )?;
//! let (_, _, hessian) = objective.evaluate_with_gradient(&best.x)?;
//! let bands = vht_fit::prediction_bands(&objective, &best.x, &hessian, None, &Default::default())?;
//! println!("{:?} {:?}", profiles[0].lower, bands.bands[0].upper);
//! # Ok::<(), vht_fit::FitError>(())
//! ```
//!
//! Architecture invariant: knows PEtab's files and semantics; knows nothing of
//! SBML beyond `vht_lower::load`, and nothing of the solver beyond `vht_sim`.

mod adjoint;
mod error;
mod math;
mod multistart;
mod objective;
pub mod optimize;
mod problem;
mod sens;
mod steady;
mod tsv;
mod uncertainty;
mod yaml;

pub use error::{At, FitError};
pub use math::{parse as parse_formula, FormulaError};
pub use multistart::{
    fit, fit_from, latin_hypercube, FitOptions, FitResult, Optimizer, StartResult, StartStatus, REDRAWS,
};
pub use objective::{
    neg_log_prior, nllh_term, Evaluation, ExperimentValue, Gradient, MeasurementValue, Objective, Settings,
    SteadyState, WithGradient,
};
pub use problem::{
    read, Condition, Measurement, NoiseDistribution, Observable, Parameter, Prior, PriorKind, Problem, Scale,
    Transformation, Value,
};
pub use uncertainty::{
    interval, prediction_and_measurement_bands, prediction_bands, profile, quantile, BandOptions, Bands, NoiseSource,
    Prediction, PredictionBand, Profile, ProfileOptions, ProfilePoint, CI95,
};
