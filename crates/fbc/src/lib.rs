//! Flux balance analysis (FBA) of SBML models that carry the fbc package.
//!
//! A flux balance model is not simulated: it is a linear program over the
//! reaction fluxes `v`,
//!
//! ```text
//! maximise or minimise  c · v
//! subject to            N v = 0          (N: stoichiometry of the balanced species)
//!                       lb <= v <= ub    (fbc flux bounds)
//! ```
//!
//! This crate reads that program straight from the SBML XML ([`read_str`]),
//! solves it with a pure-Rust simplex ([`solve`]) and returns the optimal flux
//! of every reaction and the objective value ([`FluxSolution`]). Problem and
//! solution are separate values, so a caller can change bounds and re-solve
//! without re-reading the file.
//!
//! Architecture invariant: this crate knows nothing about the model IR, the
//! other SBML reader or time integration. It reads only what an FBA needs
//! (species, reactions, parameters, initial assignments and assignment rules
//! that set bounds or stoichiometries, fbc bounds and objectives) so that it
//! can evolve independently of the kinetic simulation path.
//! An infeasible or unbounded program is an answer ([`Status`]), not an error:
//! its values are NaN, as the SBML Test Suite expects.
//!
//! ```
//! let xml = r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core"
//!     xmlns:fbc="http://www.sbml.org/sbml/level3/version1/fbc/version2" level="3" version="1">
//!   <model fbc:strict="true">
//!     <listOfSpecies>
//!       <species id="A" compartment="c" boundaryCondition="false" constant="false" hasOnlySubstanceUnits="false"/>
//!     </listOfSpecies>
//!     <listOfParameters>
//!       <parameter id="zero" value="0" constant="true"/>
//!       <parameter id="ten" value="10" constant="true"/>
//!     </listOfParameters>
//!     <listOfReactions>
//!       <reaction id="uptake" reversible="false" fbc:lowerFluxBound="zero" fbc:upperFluxBound="ten">
//!         <listOfProducts><speciesReference species="A" stoichiometry="2" constant="true"/></listOfProducts>
//!       </reaction>
//!       <reaction id="growth" reversible="false" fbc:lowerFluxBound="zero" fbc:upperFluxBound="ten">
//!         <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/></listOfReactants>
//!       </reaction>
//!     </listOfReactions>
//!     <fbc:listOfObjectives fbc:activeObjective="obj">
//!       <fbc:objective fbc:id="obj" fbc:type="maximize">
//!         <fbc:listOfFluxObjectives>
//!           <fbc:fluxObjective fbc:reaction="growth" fbc:coefficient="1"/>
//!         </fbc:listOfFluxObjectives>
//!       </fbc:objective>
//!     </fbc:listOfObjectives>
//!   </model>
//! </sbml>"#;
//! let solution = vht_fbc::solve_str(xml)?;
//! assert_eq!(solution.status, vht_fbc::Status::Optimal);
//! // growth is capped at 10; uptake makes two A per flux unit, so 5 suffices.
//! assert!((solution.objective_value - 10.0).abs() < 1e-9);
//! assert!((solution.value("uptake").unwrap() - 5.0).abs() < 1e-9);
//! # Ok::<(), vht_fbc::FbcError>(())
//! ```

mod error;
mod lp;
mod math;
mod read;
#[cfg(test)]
mod tests;
mod xml;

use std::path::Path;

pub use error::FbcError;
pub use lp::{flux_variability, solve, FluxRange, FluxVariability};
pub use read::read_str;

/// A flux balance linear program, as read from a model.
#[derive(Clone, Debug, PartialEq)]
pub struct FbaProblem {
    /// The active objective.
    pub objective: Objective,
    /// The LP variables, one per reaction, in document order.
    pub reactions: Vec<Reaction>,
    /// The balanced species (the rows of N), in document order. Boundary and
    /// constant species are not balanced and are not listed.
    pub species: Vec<String>,
}

/// One reaction: an LP variable with its bounds and its column of N.
#[derive(Clone, Debug, PartialEq)]
pub struct Reaction {
    pub id: String,
    /// May be `-inf`; `lower_bound > upper_bound` makes the program infeasible.
    pub lower_bound: f64,
    /// May be `+inf`.
    pub upper_bound: f64,
    /// `(index into FbaProblem::species, net stoichiometric coefficient)`:
    /// negative for a consumed species, each species at most once, no zeros.
    pub stoichiometry: Vec<(usize, f64)>,
}

/// The objective `c · v` and whether it is maximised or minimised.
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    pub id: String,
    pub direction: Direction,
    /// `(index into FbaProblem::reactions, coefficient)`, each reaction at most once.
    pub coefficients: Vec<(usize, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Maximize,
    Minimize,
}

/// How the linear program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The fluxes are an optimum (one of possibly many: see [`FluxSolution`]).
    Optimal,
    /// No flux vector meets the bounds and the balances: every value is NaN.
    Infeasible,
    /// The objective improves without limit: the objective value is +inf for
    /// maximisation and -inf for minimisation, the fluxes are NaN.
    Unbounded,
}

/// The result of a flux balance analysis.
///
/// When the optimum is not unique (alternative optima are common in metabolic
/// networks), the fluxes are the vertex the simplex ends at: the objective
/// value is the same for every optimum, the individual fluxes need not match
/// another solver's.
#[derive(Clone, Debug, PartialEq)]
pub struct FluxSolution {
    pub objective_id: String,
    /// `c · v` at the optimum (NaN or ±inf unless [`Status::Optimal`]).
    pub objective_value: f64,
    /// `(reaction id, flux)` for every reaction, in document order.
    pub fluxes: Vec<(String, f64)>,
    pub status: Status,
    /// Simplex pivots the solve took (a work counter for regression checks).
    pub lp_iterations: u64,
}

impl FluxSolution {
    /// The value of a reaction flux or of the objective, by id (the SBML Test
    /// Suite names both the same way in its results).
    pub fn value(&self, id: &str) -> Option<f64> {
        if id == self.objective_id {
            return Some(self.objective_value);
        }
        self.fluxes.iter().find(|(r, _)| r == id).map(|(_, v)| *v)
    }
}

/// Reads and solves the flux balance problem of an SBML document.
pub fn solve_str(xml: &str) -> Result<FluxSolution, FbcError> {
    solve(&read_str(xml)?)
}

/// Reads and solves the flux balance problem of an SBML file. Errors about the
/// document are wrapped in [`FbcError::InFile`] so their message names the file.
pub fn solve_file(path: &Path) -> Result<FluxSolution, FbcError> {
    solve(&read_file(path)?)
}

/// Reads the flux balance problem of an SBML file (see [`read_str`]).
pub fn read_file(path: &Path) -> Result<FbaProblem, FbcError> {
    let xml = std::fs::read_to_string(path).map_err(|source| FbcError::Io { path: path.to_path_buf(), source })?;
    read_str(&xml).map_err(|e| FbcError::InFile { path: path.to_path_buf(), source: Box::new(e) })
}
