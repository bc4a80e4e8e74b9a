//! The model IR: a flat, format-independent description of a dynamical model.
//!
//! A [`Model`] is a list of [`Symbol`]s (each a constant, an integrated state,
//! an assigned quantity or an algebraic unknown), algebraic constraints, and
//! discrete [`Event`]s. It is what every format reader lowers to (SBML today)
//! and what the code generator compiles.
//!
//! Architecture invariant: this crate knows nothing about XML, SBML, files or
//! how the model is executed. Booleans are numbers (`1.0` true, `0.0` false),
//! as they are in the compiled code.
//!
//! ```
//! use vht_ir::{Expr, Model, Role, SymbolKind};
//! let mut m = Model::default();
//! let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
//! let x = m.add("x", Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(1.0));
//! m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
//! assert_eq!(m.lookup("x"), Some(x));
//! assert!(m.check().is_ok());
//! ```

mod deriv;
pub mod eval;
mod expr;
mod model;
mod order;

pub use deriv::{derivative, simplify};
pub use expr::{BinOp, Expr, NaryOp, UnOp};
pub use model::{Event, EventAssignment, Model, Role, SpeciesView, Sym, Symbol, SymbolKind};
pub use order::{evaluation_order, initial_order, OrderError};
