//! Compiles a [`vht_ir::Model`] once into evaluators that every simulation shares.
//!
//! A cohort of a million virtual patients runs one model with different
//! parameters, so the model is compiled once into a [`CompiledModel`] (put it
//! in an `Arc`; it is `Send + Sync`) and every run only supplies `t`, `y` and
//! `p`. Each [`Function`] is a list of IR expressions lowered to a linear SSA
//! *tape* (hash-consed, so shared subexpressions are computed once), which is
//! then either interpreted or compiled to native code with Cranelift.
//!
//! Architecture invariant: this crate knows nothing about SBML, solvers or
//! time stepping. It maps `(t, y, p)` to numbers; what `y` and `p` mean is
//! fixed by [`Layout`], and the history needed by `delay` comes from the
//! caller through [`DelayHost`].
//!
//! Design, in short:
//! - *One semantics.* What each operator computes is `vht_ir::eval`. The
//!   interpreter calls it; the JIT emits native instructions only where they
//!   are IEEE-exact (arithmetic, sqrt, floor, ceil, compares, select) and
//!   calls the same Rust functions otherwise, so both backends agree to the
//!   bit (tests compare every operator on special values, and every SBML
//!   Test Suite model against the tree-walking evaluator).
//! - *Piecewise* lowers to selects: every branch is computed, only the chosen
//!   value is kept, so a NaN in an unchosen branch never leaks.
//! - *Jacobian.* Symbolic (`vht_ir::derivative`), through assigned symbols by
//!   the chain rule in dependency order (one derivative symbol per rule and
//!   column, not inlining), so a rule read by many rates is differentiated
//!   once; the tape's sharing computes it once per evaluation.
//! - *Threads.* Functions are immutable after compilation; evaluation uses a
//!   thread-local stack of scratch buffers (re-entrant: a `DelayHost` may
//!   evaluate functions), so `eval` allocates nothing after warm-up.
//! - *Big models.* The JIT cuts tapes into chunks of 1024 instructions
//!   compiled as separate functions, because Cranelift's compile time grows
//!   quadratically with one straight-line function.
//!
//! ```
//! use vht_ir::{Expr, Model, Role, SymbolKind};
//! use vht_codegen::{compile, NoDelays, Options};
//! let mut m = Model::default();
//! let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
//! let x = m.add("x", Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(1.0));
//! m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
//! let cm = compile(&m, &Options::default()).unwrap();
//! let mut dxdt = [0.0];
//! cm.rhs.eval(0.0, &[2.0], &[0.5], &mut dxdt, &NoDelays);
//! assert_eq!(dxdt[0], -1.0);
//! assert_eq!(cm.jac_pattern, vec![(0, 0)]);
//! let mut j = [0.0];
//! cm.jac.eval(0.0, &[2.0], &[0.5], &mut j, &NoDelays);
//! assert_eq!(j[0], -0.5);
//! ```

mod interp;
mod jacobian;
mod jit;
mod ops;
mod tape;

use std::fmt;

use vht_ir::{Expr, Model, OrderError, Sym, SymbolKind};

use crate::tape::{Env, Tape};

/// Which backend executes compiled functions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// Native code via Cranelift: the fast path.
    #[default]
    Jit,
    /// A tape interpreter: the reference semantics, and portable.
    Interpreter,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub backend: Backend,
}

/// Where each IR symbol lives at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// y vector: the State symbols (model order) then the Algebraic symbols (model order).
    pub y: Vec<Sym>,
    /// Number of State symbols at the front of y (the rest are algebraic unknowns).
    pub n_ode: usize,
    /// p vector: the Parameter symbols, model order.
    pub p: Vec<Sym>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Y(usize),
    P(usize),
    /// Not stored: computed from its assignment wherever it is read.
    Assigned,
}

impl Layout {
    pub fn of(model: &Model) -> Layout {
        let states = model.states();
        let n_ode = states.len();
        let mut y = states;
        y.extend(model.algebraic_unknowns());
        Layout { y, n_ode, p: model.parameters() }
    }

    /// Where `s` lives. Symbols that are in neither vector are reported as
    /// `Assigned` (the layout alone cannot tell more). This is a linear
    /// search; compilation builds its own index instead.
    pub fn slot(&self, s: Sym) -> Slot {
        if let Some(i) = self.y.iter().position(|&x| x == s) {
            Slot::Y(i)
        } else if let Some(i) = self.p.iter().position(|&x| x == s) {
            Slot::P(i)
        } else {
            Slot::Assigned
        }
    }

    /// The slot of every model symbol; `None` for a symbol that is neither in
    /// the layout nor an assigned symbol (it cannot be read at run time).
    fn index(&self, model: &Model) -> Result<Vec<Option<Slot>>, CodegenError> {
        let n = model.symbols.len();
        let mut slots: Vec<Option<Slot>> = model
            .symbols
            .iter()
            .map(|s| matches!(s.kind, SymbolKind::Assigned { .. }).then_some(Slot::Assigned))
            .collect();
        let vectors = [("y", &self.y), ("p", &self.p)];
        for (vector, syms) in vectors {
            for (i, s) in syms.iter().enumerate() {
                let Some(slot) = slots.get_mut(s.index()) else {
                    return Err(CodegenError::BadLayout {
                        vector,
                        position: i,
                        reason: LayoutProblem::NoSuchSymbol { index: s.0, symbols: n },
                    });
                };
                if matches!(slot, Some(Slot::Y(_) | Slot::P(_))) {
                    return Err(CodegenError::BadLayout {
                        vector,
                        position: i,
                        reason: LayoutProblem::Duplicate { symbol: model.name(*s).to_string() },
                    });
                }
                *slot = Some(if vector == "y" { Slot::Y(i) } else { Slot::P(i) });
            }
        }
        if self.n_ode > self.y.len() {
            return Err(CodegenError::BadLayout {
                vector: "y",
                position: self.n_ode,
                reason: LayoutProblem::TooManyStates { n_ode: self.n_ode, len: self.y.len() },
            });
        }
        Ok(slots)
    }
}

/// Callback for `delay(x, tau)`: the value the k-th delayed expression had at time `t_past`.
pub trait DelayHost {
    fn delayed(&self, k: usize, t_past: f64) -> f64;
}

/// The [`DelayHost`] of a model without delays: every delayed value is NaN.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDelays;

impl DelayHost for NoDelays {
    fn delayed(&self, _k: usize, _t_past: f64) -> f64 {
        f64::NAN
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodegenError {
    #[error("the model is not well formed: {0}")]
    Model(#[from] OrderError),
    #[error("{at} reads symbol #{index}, which does not exist")]
    BadReference { index: u32, at: String },
    #[error("{at} reads '{symbol}', which has no place in the layout (not in y, not in p, not assigned)")]
    MissingSlot { symbol: String, at: String },
    #[error("{at} contains a delay whose expression is not one of the model's delays")]
    UnknownDelay { at: String },
    #[error("layout vector {vector}, position {position}: {reason}")]
    BadLayout { vector: &'static str, position: usize, reason: LayoutProblem },
    #[error("JIT compilation of {function} failed during {stage}: {message}")]
    Jit { function: String, stage: JitStage, message: String },
    #[error("cannot differentiate with respect to '{symbol}': it is neither a state nor a parameter")]
    NotStored { symbol: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutProblem {
    #[error("symbol #{index} does not exist (the model has {symbols})")]
    NoSuchSymbol { index: u32, symbols: usize },
    #[error("'{symbol}' appears more than once")]
    Duplicate { symbol: String },
    #[error("n_ode = {n_ode} but y has only {len} entries")]
    TooManyStates { n_ode: usize, len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitStage {
    /// The host ISA could not be detected or configured.
    Isa,
    /// Declaring or defining the function or its imports.
    Define,
    /// Relocating and publishing the machine code.
    Finalize,
}

impl fmt::Display for JitStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JitStage::Isa => "host ISA setup",
            JitStage::Define => "code generation",
            JitStage::Finalize => "finalization",
        })
    }
}

/// A compiled list of expressions over the model: assigned symbols that the
/// expressions read are computed inside, in dependency order (only those needed).
pub struct Function {
    n_y: usize,
    n_p: usize,
    n_out: usize,
    /// Number of tape instructions (after sharing and folding), for reports.
    instructions: usize,
    imp: Imp,
}

enum Imp {
    Interpreter(Tape),
    Jit(jit::JitFunction),
}

impl Function {
    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.n_out
    }

    pub fn is_empty(&self) -> bool {
        self.n_out == 0
    }

    /// Number of instructions this function computes, after identical
    /// subexpressions were merged and constants folded.
    pub fn instructions(&self) -> usize {
        self.instructions
    }

    pub fn backend(&self) -> Backend {
        match self.imp {
            Imp::Interpreter(_) => Backend::Interpreter,
            Imp::Jit(_) => Backend::Jit,
        }
    }

    /// Evaluates every output at `(t, y, p)` into `out`. Does not allocate
    /// (after warm-up) and may be called from many threads at once.
    ///
    /// # Panics
    /// If `y`, `p` or `out` are shorter than the layout / the output count
    /// (a caller bug, like an out-of-range slice index). The check is what
    /// makes the native code memory-safe.
    pub fn eval(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64], host: &dyn DelayHost) {
        assert!(
            y.len() >= self.n_y && p.len() >= self.n_p && out.len() >= self.n_out,
            "Function::eval: y has {} entries (need {}), p has {} (need {}), out has {} (need {})",
            y.len(),
            self.n_y,
            p.len(),
            self.n_p,
            out.len(),
            self.n_out
        );
        match &self.imp {
            Imp::Interpreter(tape) => interp::eval(tape, t, y, p, out, host),
            Imp::Jit(f) => f.call(t, y, p, out, host),
        }
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("outputs", &self.n_out)
            .field("instructions", &self.instructions)
            .field("backend", &self.backend())
            .finish()
    }
}

#[derive(Debug)]
pub struct CompiledModel {
    pub layout: Layout,
    /// [d(state)/dt for each State symbol (layout.y[..n_ode] order), then each algebraic residual (model.algebraic order)]
    pub rhs: Function,
    /// Sparse Jacobian of `rhs` w.r.t. y: (row, col) pattern, row-major sorted, structurally nonzero entries only.
    pub jac_pattern: Vec<(usize, usize)>,
    /// Values of the Jacobian entries, in `jac_pattern` order.
    pub jac: Function,
    /// The value of every symbol of the model, in model (Sym) order.
    pub values: Function,
    /// The first argument of every `Delay` node, numbered k = 0.. in the order
    /// `Expr::walk` meets them (model symbols in order: initial, kind exprs;
    /// then algebraic; then events: trigger, delay, priority, assignment values),
    /// so DelayHost::delayed(k, t) can be answered by evaluating
    /// `delayed.eval(t_past, y_past, p)` and taking output k.
    pub delayed: Function,
}

/// The first argument of every delay node of the model, in the numbering
/// documented on [`CompiledModel::delayed`].
pub fn model_delays(model: &Model) -> Vec<Expr> {
    let mut out = Vec::new();
    let mut visit = |e: &Expr| {
        e.walk(&mut |x| {
            if let Expr::Delay(a, _) = x {
                out.push(a.as_ref().clone());
            }
        })
    };
    for s in &model.symbols {
        visit(&s.initial);
        match &s.kind {
            SymbolKind::State { rate } => visit(rate),
            SymbolKind::Assigned { expr } => visit(expr),
            SymbolKind::Parameter | SymbolKind::Algebraic => {}
        }
    }
    for g in &model.algebraic {
        visit(g);
    }
    for ev in &model.events {
        visit(&ev.trigger);
        if let Some(d) = &ev.delay {
            visit(d);
        }
        if let Some(p) = &ev.priority {
            visit(p);
        }
        for a in &ev.assignments {
            visit(&a.value);
        }
    }
    out
}

pub fn compile(model: &Model, opts: &Options) -> Result<CompiledModel, CodegenError> {
    on_big_stack(|| compile_here(model, opts))
}

fn compile_here(model: &Model, opts: &Options) -> Result<CompiledModel, CodegenError> {
    model.check()?;
    let layout = Layout::of(model);
    let slots = layout.index(model)?;
    let delays = model_delays(model);
    let env = Env { model, slots: &slots, delays: &delays, n_y: layout.y.len(), n_p: layout.p.len() };

    let states = &layout.y[..layout.n_ode];
    let mut rhs_exprs: Vec<Expr> = Vec::with_capacity(layout.y.len());
    for &s in states {
        if let SymbolKind::State { rate } = &model.symbol(s).kind {
            rhs_exprs.push(rate.clone());
        }
    }
    rhs_exprs.extend(model.algebraic.iter().cloned());
    let rhs_label = |i: usize| match states.get(i) {
        Some(&s) => format!("rate of '{}'", model.name(s)),
        None => format!("algebraic rule {}", i - states.len()),
    };
    let rhs = build(&env, &rhs_exprs, &rhs_label, "rhs", opts)?;

    let value_exprs: Vec<Expr> = (0..model.symbols.len()).map(|i| Expr::Sym(Sym(i as u32))).collect();
    let values = build(&env, &value_exprs, &|i| format!("value of '{}'", model.symbols[i].name), "values", opts)?;

    let delayed = build(&env, &delays, &|k| format!("delay #{k}"), "delayed", opts)?;

    let jac_exprs = jacobian::jacobian(model, &layout, &rhs_exprs)?;
    let jac_env = Env { model: &jac_exprs.model, slots: &jac_exprs.slots, ..env };
    let jac_label = |i: usize| {
        let (r, c) = jac_exprs.pattern[i];
        format!("d({})/d('{}')", rhs_label(r), model.name(layout.y[c]))
    };
    let jac = build(&jac_env, &jac_exprs.values, &jac_label, "jac", opts)?;

    Ok(CompiledModel { layout, rhs, jac_pattern: jac_exprs.pattern, jac, values, delayed })
}

/// Compiles extra expressions over the same model and layout (event triggers, event assignment values, priorities, delays, outputs).
pub fn compile_exprs(model: &Model, layout: &Layout, exprs: &[Expr], opts: &Options) -> Result<Function, CodegenError> {
    on_big_stack(|| compile_exprs_here(model, layout, exprs, opts))
}

/// A sparse Jacobian compiled to one function: `pattern[k] = (row, column)`
/// is the derivative of expression `row` by symbol `wrt[column]`, and output
/// `k` of `values` is its value.
#[derive(Debug)]
pub struct CompiledJacobian {
    pub pattern: Vec<(usize, usize)>,
    pub values: Function,
}

/// The analytic sparse Jacobian of `exprs` with respect to the symbols `wrt`
/// (states or parameters, i.e. y or p slots), through assigned symbols, as
/// [`compile`] builds the Jacobian of the right-hand side.
pub fn compile_jacobian(
    model: &Model,
    layout: &Layout,
    exprs: &[Expr],
    wrt: &[Sym],
    opts: &Options,
) -> Result<CompiledJacobian, CodegenError> {
    on_big_stack(|| {
        let jac = jacobian::jacobian_wrt(model, layout, exprs, wrt)?;
        let delays = model_delays(&jac.model);
        let env =
            Env { model: &jac.model, slots: &jac.slots, delays: &delays, n_y: layout.y.len(), n_p: layout.p.len() };
        let label = |i: usize| {
            let (r, c) = jac.pattern[i];
            format!("d(expression {r})/d('{}')", model.name(wrt[c]))
        };
        let values = build(&env, &jac.values, &label, "jacobian", opts)?;
        Ok(CompiledJacobian { pattern: jac.pattern, values })
    })
}

fn compile_exprs_here(
    model: &Model,
    layout: &Layout,
    exprs: &[Expr],
    opts: &Options,
) -> Result<Function, CodegenError> {
    let slots = layout.index(model)?;
    let delays = model_delays(model);
    let env = Env { model, slots: &slots, delays: &delays, n_y: layout.y.len(), n_p: layout.p.len() };
    build(&env, exprs, &|i| format!("expression {i}"), "expressions", opts)
}

fn build(
    env: &Env,
    exprs: &[Expr],
    label: &dyn Fn(usize) -> String,
    name: &str,
    opts: &Options,
) -> Result<Function, CodegenError> {
    let tape = tape::lower(env, exprs, label)?;
    let instructions = tape.instrs.len();
    let imp = match opts.backend {
        Backend::Interpreter => Imp::Interpreter(tape),
        Backend::Jit => Imp::Jit(jit::compile(&tape, name)?),
    };
    Ok(Function { n_y: env.n_y, n_p: env.n_p, n_out: exprs.len(), instructions, imp })
}

/// Runs `f` on a thread with a large stack. Compilation recurses over
/// expression trees (here, in differentiation, and in `vht_ir`'s walks), and
/// a long chain of binary operators, as infix formulas produce, would
/// overflow an ordinary 2 MiB thread stack (a chain of ~600 nodes does in a
/// debug build). The stack is reserved address space, committed only as far
/// as it is used. If no thread can be started, `f` runs on this one.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    const STACK: usize = 256 << 20;
    let slot = std::sync::Mutex::new(Some(f));
    let take = || slot.lock().map(|mut g| g.take()).unwrap_or_else(|p| p.into_inner().take());
    let spawned = std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("vht-codegen".into())
            .stack_size(STACK)
            .spawn_scoped(s, || take().map(|f| f()))
            .ok()?;
        Some(handle.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload)))
    });
    match spawned.flatten() {
        Some(v) => v,
        None => match take() {
            Some(f) => f(),
            // Unreachable: the closure is taken exactly once, by whichever
            // thread runs it, and a thread that took it returned its value.
            None => unreachable!("compilation closure taken but no result"),
        },
    }
}
