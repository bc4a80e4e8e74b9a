//! A model compiled once, with what every run needs precomputed.

use vht_codegen::{compile, compile_exprs, CodegenError, CompiledModel, Function, Options, Slot};
use vht_ir::{BinOp, Expr, Model, OrderError, Sym, SymbolKind, UnOp};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid model: {0}")]
    Model(#[from] OrderError),
    #[error("could not compile the model: {0}")]
    Codegen(#[from] CodegenError),
}

/// A compiled model, shared by every run (`Send + Sync`).
pub struct Simulator {
    pub model: Model,
    pub code: CompiledModel,
    /// Number of ODE states (the front of the y vector).
    pub(crate) n_ode: usize,
    /// Number of algebraic unknowns (the back of the y vector).
    pub(crate) n_alg: usize,
    /// Root functions: one per relational atom of the event triggers.
    pub(crate) roots: Function,
    /// The event triggers, as booleans.
    pub(crate) triggers: Function,
    pub(crate) init_order: Vec<Sym>,
    /// Jacobian entries (pattern index, row) in the ODE block, grouped by
    /// column: column `c` is `jac_ode[jac_ode_cols[c]..jac_ode_cols[c + 1]]`.
    /// The solver assembles its Jacobian from products with vectors that are
    /// zero outside a few columns (one colour of a column colouring), so a
    /// product only visits the columns where the vector is nonzero.
    pub(crate) jac_ode: Vec<(usize, usize)>,
    pub(crate) jac_ode_cols: Vec<usize>,
    /// Jacobian entries (pattern index, row - n_ode, col - n_ode) in the algebraic block.
    pub(crate) jac_alg: Vec<(usize, usize, usize)>,
    /// The ODE Jacobian's pattern with what depends on it alone (the sparse
    /// LU's ordering and analysis), made once for every run: the integrator
    /// writes the compiled Jacobian straight into its matrix. `None` when
    /// the model has algebraic unknowns (the reduced system's Jacobian goes
    /// through their solve, by finite differences) or no ODE states.
    pub(crate) jac_structure: Option<vht_solver::JacobianStructure>,
    pub(crate) has_delays: bool,
    /// Some rate reads time (directly or through rules).
    pub(crate) reads_time: bool,
    /// No events, delays or switches (`piecewise`, comparisons as values,
    /// `floor`, `ceil`, `rem`, `quotient`):
    /// the integrator's steps need only follow its error estimate, so it may
    /// grow them quickly at the start (`vht_solver::Options::fast_start`).
    pub(crate) smooth: bool,
    /// Discontinuities of the vector field (`piecewise` conditions), where runs restart.
    pub(crate) switches: crate::switches::Switches,
    options: Options,
}

impl Simulator {
    pub fn new(model: Model, options: &Options) -> Result<Simulator, BuildError> {
        model.check()?;
        let code = compile(&model, options)?;
        let n_ode = code.layout.n_ode;
        let n_alg = code.layout.y.len() - n_ode;
        let mut atoms = Vec::new();
        for ev in &model.events {
            relational_atoms(&ev.trigger, &mut atoms);
        }
        let roots = compile_exprs(&model, &code.layout, &atoms, options)?;
        let trigger_exprs: Vec<Expr> = model.events.iter().map(|e| e.trigger.clone()).collect();
        let triggers = compile_exprs(&model, &code.layout, &trigger_exprs, options)?;
        let init_order = vht_ir::initial_order(&model)?;
        let switches = crate::switches::Switches::new(&model, &code.layout, options)?;
        let mut jac_ode = Vec::new();
        let mut jac_alg = Vec::new();
        for (k, &(r, c)) in code.jac_pattern.iter().enumerate() {
            if r < n_ode && c < n_ode {
                jac_ode.push((k, r, c));
            } else if r >= n_ode && c >= n_ode {
                jac_alg.push((k, r - n_ode, c - n_ode));
            }
        }
        jac_ode.sort_by_key(|&(_, _, c)| c);
        let mut jac_ode_cols = vec![0usize; n_ode + 1];
        for &(_, _, c) in &jac_ode {
            jac_ode_cols[c + 1] += 1;
        }
        for c in 0..n_ode {
            jac_ode_cols[c + 1] += jac_ode_cols[c];
        }
        let jac_ode: Vec<(usize, usize)> = jac_ode.into_iter().map(|(k, r, _)| (k, r)).collect();
        // Without algebraic unknowns every pattern entry is in the ODE block,
        // in the order the compiled Jacobian writes its values.
        let jac_structure = (n_alg == 0 && n_ode > 0)
            .then(|| vht_solver::JacobianStructure::new(n_ode, &code.jac_pattern).ok())
            .flatten();
        let has_delays = {
            let mut d = model.algebraic.iter().any(Expr::contains_delay)
                || model
                    .events
                    .iter()
                    .any(|e| e.trigger.contains_delay() || e.assignments.iter().any(|a| a.value.contains_delay()));
            for s in &model.symbols {
                d |= s.initial.contains_delay()
                    || match &s.kind {
                        SymbolKind::State { rate } => rate.contains_delay(),
                        SymbolKind::Assigned { expr } => expr.contains_delay(),
                        _ => false,
                    };
            }
            d
        };
        let has_switch = |e: &Expr| {
            let mut found = false;
            e.walk(&mut |x| {
                found |= matches!(
                    x,
                    Expr::Piecewise(..)
                        | Expr::Un(UnOp::Floor | UnOp::Ceil, _)
                        | Expr::Bin(
                            BinOp::Lt
                                | BinOp::Le
                                | BinOp::Gt
                                | BinOp::Ge
                                | BinOp::Eq
                                | BinOp::Neq
                                | BinOp::Rem
                                | BinOp::Quotient,
                            ..
                        )
                )
            });
            found
        };
        let smooth = model.events.is_empty()
            && !has_delays
            && !model.algebraic.iter().any(has_switch)
            && !model.symbols.iter().any(|s| match &s.kind {
                SymbolKind::State { rate } => has_switch(rate),
                SymbolKind::Assigned { expr } => has_switch(expr),
                _ => false,
            });
        let reads_time = model.symbols.iter().any(|s| match &s.kind {
            SymbolKind::State { rate } => mentions_time(rate),
            SymbolKind::Assigned { expr } => mentions_time(expr),
            _ => false,
        });
        Ok(Simulator {
            reads_time,
            model,
            code,
            n_ode,
            n_alg,
            roots,
            triggers,
            init_order,
            jac_ode,
            jac_ode_cols,
            jac_alg,
            jac_structure,
            has_delays,
            smooth,
            switches,
            options: options.clone(),
        })
    }

    /// Compiles output columns once; every run that reports them reuses the result.
    pub fn outputs(&self, columns: &[crate::Column]) -> Result<crate::Outputs, crate::SimError> {
        let exprs: Vec<Expr> = columns.iter().map(|c| c.expr.clone()).collect();
        let function = compile_exprs(&self.model, &self.code.layout, &exprs, &self.options)
            .map_err(|e| crate::SimError::Columns(e.to_string()))?;
        Ok(crate::Outputs { names: columns.iter().map(|c| c.name.clone()).collect(), function })
    }

    pub fn slot(&self, s: Sym) -> Slot {
        self.code.layout.slot(s)
    }

    /// Number of values in a run's state vector `y` (ODE states, then algebraic unknowns).
    pub fn n_y(&self) -> usize {
        self.n_ode + self.n_alg
    }
}

fn mentions_time(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| found |= matches!(x, Expr::Time));
    found
}

/// Collects the relational sub-expressions (`a < b` etc.) of a boolean
/// expression as root functions `a - b`. A trigger can only change value
/// where one of them crosses zero (or at a discontinuity, which is an event).
fn relational_atoms(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Bin(BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Neq, a, b) => {
            let root = Expr::bin(BinOp::Sub, (**a).clone(), (**b).clone());
            if !out.contains(&root) {
                out.push(root);
            }
            // Relations nested inside the operands (e.g. piecewise) matter too.
            relational_atoms(a, out);
            relational_atoms(b, out);
        }
        Expr::Num(_) | Expr::Sym(_) | Expr::Time => {}
        Expr::Un(_, a) => relational_atoms(a, out),
        Expr::Bin(_, a, b) => {
            relational_atoms(a, out);
            relational_atoms(b, out);
        }
        Expr::Delay(a, b) => {
            relational_atoms(a, out);
            relational_atoms(b, out);
        }
        Expr::Nary(_, args) => args.iter().for_each(|a| relational_atoms(a, out)),
        Expr::Piecewise(pieces, otherwise) => {
            for (v, c) in pieces {
                relational_atoms(v, out);
                relational_atoms(c, out);
            }
            relational_atoms(otherwise, out);
        }
    }
}
