//! In silico trials: a virtual population sampled from distributions,
//! screened for plausibility, put through every treatment arm, with
//! endpoints per patient and arm and their analysis.
//!
//! Design:
//! - A trial is a TOML [`spec::Spec`] (documented in
//!   `examples/trials/README.md`, schema in `examples/trials/trial.schema.json`).
//!   Reading it keeps every field's span, so an error names the file, the
//!   line and the field; ids unknown to the model come with the nearest
//!   valid ids.
//! - A [`plan::Plan`] turns each arm into its own `vht_ir::Model`:
//!   interventions become IR events (or, at the start time, changed initial
//!   values), and endpoints that need it get helper states and events. Each
//!   arm is compiled once into a `vht_sim::Simulator` that every patient
//!   shares (`Arc`); a patient differs only in parameter overrides.
//! - A patient's sampled values are a pure function of `(seed, candidate
//!   index)` ([`sample`]), and a patient's results a pure function of its
//!   values, so results are the same whatever the number of threads or
//!   shards ([`run`]). A failed simulation is recorded with its reason.
//! - [`store::run`] writes results in shards (each file written whole, by
//!   rename) and resumes an interrupted run; [`analysis`] summarises arms and
//!   paired differences with seeded bootstrap intervals; [`report`] writes
//!   Markdown and SVG.
//!
//! Architecture invariant: this crate knows SBML only through
//! `vht_lower::load` (the spec names a model file), and knows nothing of
//! the command line; it knows Parquet, JSON and TOML because they are the
//! trial's own file formats.
//!
//! ```
//! use std::path::Path;
//! use vht_ir::{Expr, Model, Role, SymbolKind};
//! use vht_trial::{plan::Plan, run::run_in_memory, spec::Spec};
//!
//! // x' = -k x with k varying between patients; endpoint: AUC of x over [0, 4].
//! let mut m = Model::default();
//! let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
//! let x = m.add("x", Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(2.0));
//! m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
//! let spec = Spec::parse(r#"
//!     model = "decay.xml"
//!     [simulation]
//!     end = 4
//!     [population]
//!     size = 8
//!     seed = 1
//!     [[population.parameters]]
//!     id = "k"
//!     dist = "lognormal"
//!     median = 0.5
//!     sigma = 0.2
//!     [[arms]]
//!     name = "control"
//!     [[endpoints]]
//!     name = "auc"
//!     variable = "x"
//!     kind = "auc"
//! "#, Path::new("decay.toml")).unwrap();
//! let plan = Plan::with_model(spec, m, vec![], 0).unwrap();
//! let (_, table) = run_in_memory(&plan, 1).unwrap();
//! for (k, auc) in table.params[0].iter().zip(&table.endpoints[0]) {
//!     let exact = 2.0 / k * (1.0 - (-4.0 * k).exp());
//!     assert!((auc - exact).abs() < 1e-4 * exact);
//! }
//! ```

// Errors carry the spec location and suggestions; they are built once per
// failed run, never in a loop, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod analysis;
pub mod endpoints;
pub mod error;
pub mod plan;
pub mod report;
pub mod run;
pub mod sample;
pub mod sensitivity;
pub mod spec;
pub mod store;
