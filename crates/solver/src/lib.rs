//! Time integration of `dy/dt = f(t, y)` with root finding, behind our own
//! small interface so that the engine (diffsol, pinned) can change without
//! touching the simulator.
//!
//! The shape follows diffsol and DifferentialEquations.jl: a [`System`] (the
//! problem) and its [`Options`] go to [`integrate`], which hands a running
//! [`Integrator`] (the method) to your code to `step()`; work counters come
//! back as [`Stats`].
//!
//! Architecture invariant: this crate knows nothing about SBML, the IR or
//! files. It sees a vector field, its Jacobian action and root functions.
//! Numerical failure is a [`SolveError`] value with the time and the reason,
//! never a panic.
//!
//! ```
//! use vht_solver::{integrate, Options, StepOutcome, System};
//! struct Decay;
//! impl System for Decay {
//!     fn len(&self) -> usize { 1 }
//!     fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) { dy[0] = -y[0]; }
//!     fn jac_mul(&self, _t: f64, _y: &[f64], v: &[f64], out: &mut [f64]) { out[0] = -v[0]; }
//! }
//! let y1 = integrate(&Decay, 0.0, &[1.0], &Options::default(), |it| {
//!     it.set_stop_time(1.0).unwrap();
//!     while !matches!(it.step().unwrap(), StepOutcome::Stop { .. }) {}
//!     it.y()[0]
//! })
//! .unwrap();
//! assert!((y1 - (-1.0f64).exp()).abs() < 1e-5);
//! ```

use std::cell::{Cell, RefCell};

use diffsol::{MatrixCommon, NalgebraMat, OdeBuilder, OdeSolverMethod, OdeSolverStopReason, Vector as _, VectorCommon};

/// A vector field with its Jacobian action and root functions.
pub trait System {
    /// Number of states.
    fn len(&self) -> usize;
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]);
    /// `out = J(t, y) · v`, where `J = ∂f/∂y`.
    fn jac_mul(&self, t: f64, y: &[f64], v: &[f64], out: &mut [f64]);
    /// Number of root functions; the integrator stops where one changes sign.
    fn n_roots(&self) -> usize {
        0
    }
    fn roots(&self, _t: f64, _y: &[f64], _out: &mut [f64]) {}
    /// The pattern of `∂f/∂y`, if the system can give the Jacobian's values
    /// ([`Self::jacobian`]). With one, the integrator writes the Jacobian
    /// straight into its matrix; without, it assembles it from
    /// [`Self::jac_mul`] products (finding the pattern at every integration).
    fn jacobian_structure(&self) -> Option<&JacobianStructure> {
        None
    }
    /// Writes `∂f/∂y` at `(t, y)`: one value per entry of
    /// [`Self::jacobian_structure`], in the order it was built with.
    fn jacobian(&self, _t: f64, _y: &[f64], _values: &mut [f64]) {}
}

/// Integration settings. Plain data; `Default` gives tight tolerances.
#[derive(Clone, Debug)]
pub struct Options {
    pub rtol: f64,
    pub atol: f64,
    /// Give up after this many steps (a hung integration is a failure, not a hang).
    pub max_steps: usize,
    /// First step size; `None` lets the integrator choose.
    pub h0: Option<f64>,
    pub linear_solver: LinearSolver,
    /// Let the step size grow as CVODE does at the start of an integration
    /// (up to 10⁴× at the first change, 10× until step 10, until the first
    /// error-test failure) instead of diffsol's 2× throughout. From a first
    /// step of 1e-11 (tight absolute tolerances on species that start at
    /// zero) diffsol needs ~35 doublings, each a new LU factorisation, to
    /// reach the model's time scale. Only for smooth systems: where steps
    /// must also resolve something the error estimate does not see (event
    /// triggers, a delay's history, piecewise switches), a few large steps
    /// can pass a pair of crossings or leave the history too coarse; it is
    /// also ignored when the system has root functions.
    pub fast_start: bool,
    /// The smallest step before the integrator gives up. CVODE's `hmin` is
    /// 0 (a run whose steps shrink to round-off still ends at `max_steps`);
    /// diffsol's default is an absolute 1e-13, which stops stiff runs whose
    /// fastest time scale is shorter (Fujita_SciSignal2010 at rates and
    /// amounts near their bounds, 1e8 x 1e8, fails at t ~ 1e-14).
    pub min_step: f64,
}

/// How the Newton systems of the implicit method are solved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinearSolver {
    /// Dense LU for small systems, sparse LU above [`SPARSE_FROM`] states.
    #[default]
    Auto,
    Dense,
    Sparse,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rtol: 1e-6,
            atol: 1e-12,
            max_steps: 500_000,
            h0: None,
            linear_solver: LinearSolver::Auto,
            fast_start: false,
            min_step: 0.0,
        }
    }
}

/// Work done so far: the numbers that show regressions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub rhs_evals: usize,
    pub jac_mul_evals: usize,
    /// Jacobians evaluated whole (systems with a [`JacobianStructure`]).
    pub jac_evals: usize,
    /// Jacobian evaluations + LU factorisations (diffsol's linear solver setups).
    pub lu_factorisations: usize,
    pub error_test_failures: usize,
    pub newton_failures: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.steps += o.steps;
        self.rhs_evals += o.rhs_evals;
        self.jac_mul_evals += o.jac_mul_evals;
        self.jac_evals += o.jac_evals;
        self.lu_factorisations += o.lu_factorisations;
        self.error_test_failures += o.error_test_failures;
        self.newton_failures += o.newton_failures;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepOutcome {
    /// An internal step ended at `t`.
    Step { t: f64 },
    /// A root function changed sign at `t` (the integrator itself may be past it).
    Root { t: f64 },
    /// The stop time set with [`Integrator::set_stop_time`] was reached.
    Stop { t: f64 },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    #[error("integration failed at t = {t}: {reason}")]
    Failed { t: f64, reason: String },
    #[error("integration gave up at t = {t} after {steps} steps")]
    TooManySteps { t: f64, steps: usize },
    #[error("the system has {expected} states but {found} values were given")]
    Dimension { expected: usize, found: usize },
    #[error("Jacobian entry ({row}, {col}) is outside a system of {n} states")]
    Pattern { row: usize, col: usize, n: usize },
}

#[derive(Default)]
struct Counters {
    rhs: Cell<usize>,
    jac: Cell<usize>,
    jac_evals: Cell<usize>,
}

/// A running integration: step it, interpolate inside the last step, and
/// restart it after a discontinuity.
pub trait Integrator {
    /// The integrator's own time (the end of its last step).
    fn t(&self) -> f64;
    /// The state at [`Self::t`].
    fn y(&self) -> &[f64];
    fn step(&mut self) -> Result<StepOutcome, SolveError>;
    /// Stop exactly at `t` on the way (cleared once reached). Returns true
    /// if the integrator is already at `t` (within round-off): no step is
    /// needed to reach it. Set it again after a root: diffsol shortens the
    /// step towards the stop time only after steps without a root.
    fn set_stop_time(&mut self, t: f64) -> Result<bool, SolveError>;
    /// The solution at `t`, which must lie within the last step.
    fn interpolate(&self, t: f64, out: &mut [f64]) -> Result<(), SolveError>;
    /// Moves the integrator back to `t` inside its last step (e.g. to a root).
    fn rewind_to(&mut self, t: f64) -> Result<(), SolveError>;
    /// Restarts at `(t, y)` after a discontinuity: the history is dropped
    /// and the method starts again at first order.
    fn restart(&mut self, t: f64, y: &[f64]);
    fn stats(&self) -> Stats;
}

/// Integrates `sys` from `(t0, y0)` with a BDF method (variable order 1-5,
/// stiff), handing the running [`Integrator`] to `body`.
///
/// The integrator lives only inside `body` because diffsol's solver borrows
/// its problem; this keeps both on the stack with no self-reference.
pub fn integrate<S: System, R>(
    sys: &S,
    t0: f64,
    y0: &[f64],
    options: &Options,
    body: impl FnOnce(&mut dyn Integrator) -> R,
) -> Result<R, SolveError> {
    let n = sys.len();
    if y0.len() != n {
        return Err(SolveError::Dimension { expected: n, found: y0.len() });
    }
    let sparse = match options.linear_solver {
        LinearSolver::Dense => false,
        LinearSolver::Sparse => true,
        LinearSolver::Auto => n > SPARSE_FROM,
    };
    let structure = sys.jacobian_structure().filter(|s| s.n() == n);
    match (sparse, structure) {
        (true, Some(st)) => {
            let lu = KluLike { prepared: Some(st), state: None };
            integrate_eqns!(diffsol::FaerSparseMat<f64>, KluLike, lu, st, sys, t0, y0, options, body)
        }
        (false, Some(st)) => {
            integrate_eqns!(NalgebraMat<f64>, SmallLu, SmallLu::default(), st, sys, t0, y0, options, body)
        }
        (true, None) => integrate_with!(diffsol::FaerSparseMat<f64>, KluLike, sys, t0, y0, options, body),
        (false, None) => integrate_with!(NalgebraMat<f64>, SmallLu, sys, t0, y0, options, body),
    }
}

mod equations;
mod sparse_lu;

pub use equations::JacobianStructure;

/// diffsol's linear solver slot filled with our [`sparse_lu::SparseLu`]:
/// the pattern is analysed once per integration, and every Newton matrix
/// after the first reuses the pivot sequence.
#[derive(Default)]
struct KluLike<'s> {
    /// The pattern's analysis made once per model, copied instead of redone.
    prepared: Option<&'s JacobianStructure>,
    state: Option<KluState>,
}

struct KluState {
    a: diffsol::FaerSparseMat<f64>,
    lu: sparse_lu::SparseLu,
    ok: bool,
    work: RefCell<Vec<f64>>,
}

impl diffsol_la::LinearSolver<diffsol::FaerSparseMat<f64>> for KluLike<'_> {
    fn set_linearisation<C>(&mut self, op: &C)
    where
        C: diffsol_la::LinearOp<
            T = f64,
            V = diffsol::FaerVec<f64>,
            M = diffsol::FaerSparseMat<f64>,
            C = diffsol::FaerContext,
        >,
    {
        let Some(st) = self.state.as_mut() else { return };
        op.matrix_inplace(&mut st.a);
        st.ok = st.lu.factor(st.a.inner()[0].val()).is_ok();
    }

    fn set_sparsity<C>(&mut self, op: &C)
    where
        C: diffsol_la::LinearOp<
            T = f64,
            V = diffsol::FaerVec<f64>,
            M = diffsol::FaerSparseMat<f64>,
            C = diffsol::FaerContext,
        >,
    {
        use diffsol::Matrix;
        let n = op.nrows();
        let a = diffsol::FaerSparseMat::new_from_sparsity(n, op.ncols(), op.sparsity(), *op.context());
        let m = &a.inner()[0];
        let lu = match self.prepared {
            Some(st) if st.is_pattern(m.col_ptr(), m.row_idx()) => st.sparse_lu().clone(),
            _ => sparse_lu::SparseLu::analyse(n, m.col_ptr(), m.row_idx()),
        };
        self.state = Some(KluState { a, lu, ok: false, work: RefCell::new(vec![0.0; n]) });
    }

    fn solve_in_place(&self, x: &mut diffsol::FaerVec<f64>) -> Result<(), diffsol::LaError> {
        let st = self.ready()?;
        st.lu.solve(x.slice_mut(), &mut st.work.borrow_mut());
        Ok(())
    }

    fn solve_transpose_in_place(&self, x: &mut diffsol::FaerVec<f64>) -> Result<(), diffsol::LaError> {
        let st = self.ready()?;
        st.lu.solve_transpose(x.slice_mut(), &mut st.work.borrow_mut());
        Ok(())
    }
}

/// diffsol's dense linear solver slot filled with the dense kernels of
/// [`sparse_lu`] (partial pivoting, reciprocal diagonal): nalgebra's LU
/// solves through generic matrix views, which cost ~18% of a 6-state run
/// (the repressilator) in its triangular solves alone.
#[derive(Default)]
struct SmallLu {
    n: usize,
    /// The Newton matrix diffsol assembles into (kept between factorisations).
    a: Option<NalgebraMat<f64>>,
    /// Column-major LU factors, row swaps, reciprocal diagonal.
    lu: Vec<f64>,
    piv: Vec<usize>,
    inv: Vec<f64>,
    ok: bool,
}

impl diffsol_la::LinearSolver<NalgebraMat<f64>> for SmallLu {
    fn set_linearisation<C>(&mut self, op: &C)
    where
        C: diffsol_la::LinearOp<
            T = f64,
            V = diffsol::NalgebraVec<f64>,
            M = NalgebraMat<f64>,
            C = diffsol::NalgebraContext,
        >,
    {
        let n = self.n;
        let Some(a) = self.a.as_mut() else {
            self.ok = false;
            return;
        };
        op.matrix_inplace(a);
        self.lu.copy_from_slice(a.inner().as_slice());
        self.ok = sparse_lu::dense_lu(n, &mut self.lu, &mut self.piv);
        for (c, inv) in self.inv.iter_mut().enumerate() {
            *inv = 1.0 / self.lu[c * n + c];
        }
    }

    fn set_sparsity<C>(&mut self, op: &C)
    where
        C: diffsol_la::LinearOp<
            T = f64,
            V = diffsol::NalgebraVec<f64>,
            M = NalgebraMat<f64>,
            C = diffsol::NalgebraContext,
        >,
    {
        let n = op.nrows();
        let a = <NalgebraMat<f64> as diffsol::Matrix>::zeros(n, n, *op.context());
        *self = SmallLu { n, a: Some(a), lu: vec![0.0; n * n], piv: vec![0; n], inv: vec![0.0; n], ok: false };
    }

    fn solve_in_place(&self, x: &mut diffsol::NalgebraVec<f64>) -> Result<(), diffsol::LaError> {
        if !self.ok {
            return Err(diffsol::LaError::Other("the Newton matrix is singular".into()));
        }
        sparse_lu::dense_solve(self.n, &self.lu, &self.piv, &self.inv, x.slice_mut());
        Ok(())
    }

    fn solve_transpose_in_place(&self, x: &mut diffsol::NalgebraVec<f64>) -> Result<(), diffsol::LaError> {
        if !self.ok {
            return Err(diffsol::LaError::Other("the Newton matrix is singular".into()));
        }
        sparse_lu::dense_solve_transpose(self.n, &self.lu, &self.piv, x.slice_mut());
        Ok(())
    }
}

impl KluLike<'_> {
    /// The factorisation, or the error diffsol treats as a Newton failure
    /// (it then cuts the step and factorises again).
    fn ready(&self) -> Result<&KluState, diffsol::LaError> {
        match &self.state {
            Some(st) if st.ok => Ok(st),
            Some(_) => Err(diffsol::LaError::Other("the Newton matrix is singular".into())),
            None => Err(diffsol::LaError::Other("the linear solver has no matrix".into())),
        }
    }
}

/// Newton convergence failures allowed within one step (as CVODE's `maxncf`).
const NEWTON_FAILS_PER_STEP: usize = 10;

/// Above this many states the Jacobian is stored sparse and factorised by
/// our KLU-style sparse LU; below, nalgebra's dense LU is faster. Measured
/// with the pattern analysed once per model (`JacobianStructure`), CPU time
/// of one simulation, interleaved runs: sparse 15% faster on Bachmann 2011's
/// 25 states (0.45 -> 0.385 ms), 15-35% slower on Zheng 2012's 15 and 5% on
/// Elowitz 2000's 8. (With the per-run sparsity detection and ordering of
/// the product path the crossover was near 30.)
pub const SPARSE_FROM: usize = 20;

/// The body of [`integrate`] for one matrix type and linear solver: a macro
/// because diffsol's generic bounds for "any matrix" are long and churn
/// between versions, while the two concrete instantiations are all we need.
macro_rules! integrate_with {
    ($mat:ty, $lu:ty, $sys:expr, $t0:expr, $y0:expr, $options:expr, $body:expr) => {{
        let (sys, t0, y0, options, body) = ($sys, $t0, $y0, $options, $body);
        let n = sys.len();
        let counters = Counters::default();
        let fail = |e: diffsol::DiffsolError| SolveError::Failed { t: t0, reason: e.to_string() };
        let mut builder = OdeBuilder::<$mat>::new()
            .t0(t0)
            .rtol(options.rtol)
            .atol([options.atol])
            .rhs_implicit(
                |y: &[f64], _p: &[f64], t: f64, dy: &mut [f64]| {
                    counters.rhs.set(counters.rhs.get() + 1);
                    sys.rhs(t, y, dy)
                },
                |y: &[f64], _p: &[f64], t: f64, v: &[f64], out: &mut [f64]| {
                    counters.jac.set(counters.jac.get() + 1);
                    sys.jac_mul(t, y, v, out)
                },
            )
            .init(|_p: &[f64], _t: f64, y: &mut [f64]| y.copy_from_slice(y0), n)
            // diffsol needs at least one root function; a constant one never fires.
            .root(
                |y: &[f64], _p: &[f64], t: f64, g: &mut [f64]| {
                    if sys.n_roots() == 0 {
                        g[0] = 1.0
                    } else {
                        sys.roots(t, y, g)
                    }
                },
                sys.n_roots().max(1),
            );
        if let Some(h0) = options.h0 {
            builder = builder.h0(h0);
        }
        let mut problem = builder.build().map_err(fail)?;
        problem.ode_options.min_timestep = $options.min_step;
        let solver = problem.bdf::<$lu>().map_err(fail)?;
        run_body!(solver, sys, counters, options, body)
    }};
}
use integrate_with;

/// [`integrate_with`] for a system with a [`JacobianStructure`]: our own
/// equations (the Jacobian written straight into the matrix) and a linear
/// solver made here (the sparse one starts from the structure's analysis).
macro_rules! integrate_eqns {
    ($mat:ty, $lu_ty:ty, $lu:expr, $st:expr, $sys:expr, $t0:expr, $y0:expr, $options:expr, $body:expr) => {{
        let (sys, t0, y0, options, body) = ($sys, $t0, $y0, $options, $body);
        let counters = Counters::default();
        let fail = |e: diffsol::DiffsolError| SolveError::Failed { t: t0, reason: e.to_string() };
        let eqns = equations::Eqns::<_, $mat>::new(sys, &counters, y0, $st, Default::default());
        let mut builder = OdeBuilder::<$mat>::new().t0(t0).rtol(options.rtol).atol([options.atol]);
        if let Some(h0) = options.h0 {
            builder = builder.h0(h0);
        }
        let mut problem = builder.build_from_eqn(eqns).map_err(fail)?;
        problem.ode_options.min_timestep = $options.min_step;
        let state = problem.bdf_state::<$lu_ty>().map_err(fail)?;
        let solver = diffsol::Bdf::<_, $lu_ty, _, diffsol::NoAug<_>>::new(&problem, state, $lu).map_err(fail)?;
        run_body!(solver, sys, counters, options, body)
    }};
}
use integrate_eqns;

/// Wraps a diffsol BDF solver in our [`Integrator`] and runs the caller's body on it.
macro_rules! run_body {
    ($solver:expr, $sys:expr, $counters:expr, $options:expr, $body:expr) => {{
        let solver = $solver;
        let interp = RefCell::new(solver.state().y.clone());
        let growth = solver.config().maximum_timestep_growth;
        let mut it = Bdf {
            solver,
            sys: $sys,
            counters: &$counters,
            max_steps: $options.max_steps,
            fast_start: $options.fast_start && $sys.n_roots() == 0,
            growth,
            tmp: vec![0.0; $sys.len()],
            interp,
            _eqn: std::marker::PhantomData,
        };
        Ok($body(&mut it))
    }};
}
use run_body;

/// Plain slices of diffsol's vectors (the two kinds we instantiate).
pub(crate) trait Slices {
    fn slice(&self) -> &[f64];
    fn slice_mut(&mut self) -> &mut [f64];
}

impl Slices for diffsol::NalgebraVec<f64> {
    fn slice(&self) -> &[f64] {
        self.inner().as_slice()
    }
    fn slice_mut(&mut self) -> &mut [f64] {
        self.inner_mut().as_mut_slice()
    }
}

impl Slices for diffsol::FaerVec<f64> {
    fn slice(&self) -> &[f64] {
        self.inner().col_as_slice(0)
    }
    fn slice_mut(&mut self) -> &mut [f64] {
        self.inner_mut().col_as_slice_mut(0)
    }
}

struct Bdf<'a, 'c, Eqn: diffsol::Op, M, S> {
    solver: M,
    sys: &'c S,
    counters: &'c Counters,
    max_steps: usize,
    /// [`Options::fast_start`], still in effect; `growth` is diffsol's own cap.
    fast_start: bool,
    growth: f64,
    tmp: Vec<f64>,
    /// Where `interpolate` writes, kept between calls: outputs interpolate at every row.
    interp: RefCell<Eqn::V>,
    _eqn: std::marker::PhantomData<&'a Eqn>,
}

impl<'a, Eqn, M, S> Integrator for Bdf<'a, '_, Eqn, M, S>
where
    Eqn: diffsol::OdeEquations<T = f64> + 'a,
    Eqn::V: Slices,
    M: OdeSolverMethod<'a, Eqn, Config = diffsol::BdfConfig<f64>>,
    S: System,
{
    fn t(&self) -> f64 {
        self.solver.state().t
    }

    fn y(&self) -> &[f64] {
        self.solver.state().y.slice()
    }

    fn step(&mut self) -> Result<StepOutcome, SolveError> {
        let steps = self.solver.get_statistics().number_of_steps;
        if steps > self.max_steps {
            return Err(SolveError::TooManySteps { t: self.t(), steps });
        }
        // diffsol caps Newton convergence failures over the whole solve
        // (50), so a long oscillating run fails however well each step goes;
        // CVODE allows 10 per step, and so do we.
        let fails = self.solver.get_statistics().number_of_nonlinear_solver_fails;
        self.solver.config_mut().maximum_newton_fails = fails + NEWTON_FAILS_PER_STEP;
        if self.fast_start {
            // CVODE's etamax: ETAMX1 = 1e4 for the first change (diffsol
            // changes the step after two steps at order 1), ETAMX2 = 10 while
            // nst <= 10, and no more boost once an error test has failed.
            let failed = self.solver.get_statistics().number_of_error_test_failures > 0;
            let growth = match steps {
                _ if failed => None,
                0..3 => Some(1e4),
                3..10 => Some(10.0),
                _ => None,
            };
            self.fast_start = growth.is_some();
            self.solver.config_mut().maximum_timestep_growth = growth.unwrap_or(self.growth);
        }
        match self.solver.step() {
            Ok(OdeSolverStopReason::InternalTimestep) => Ok(StepOutcome::Step { t: self.t() }),
            Ok(OdeSolverStopReason::RootFound(t, _)) => Ok(StepOutcome::Root { t }),
            Ok(OdeSolverStopReason::TstopReached) => Ok(StepOutcome::Stop { t: self.t() }),
            Err(e) => Err(SolveError::Failed { t: self.t(), reason: e.to_string() }),
        }
    }

    fn set_stop_time(&mut self, t: f64) -> Result<bool, SolveError> {
        let now = self.t();
        let h = self.solver.state().h;
        if (t - now).abs() <= 100.0 * f64::EPSILON * (now.abs() + h.abs()) {
            return Ok(true);
        }
        if t < now {
            return Err(SolveError::Failed { t: now, reason: format!("stop time {t} is before the current time") });
        }
        self.solver.set_stop_time(t).map_err(|e| SolveError::Failed { t: now, reason: e.to_string() })?;
        Ok(false)
    }

    fn interpolate(&self, t: f64, out: &mut [f64]) -> Result<(), SolveError> {
        let v = &mut *self.interp.borrow_mut();
        self.solver.interpolate_inplace(t, v).map_err(|e| SolveError::Failed { t, reason: e.to_string() })?;
        out.copy_from_slice(v.slice());
        Ok(())
    }

    fn rewind_to(&mut self, t: f64) -> Result<(), SolveError> {
        if t == self.t() {
            return Ok(());
        }
        self.solver.state_mut_back(t).map_err(|e| SolveError::Failed { t, reason: e.to_string() })
    }

    fn restart(&mut self, t: f64, y: &[f64]) {
        self.sys.rhs(t, y, &mut self.tmp);
        let state = self.solver.state_mut();
        *state.t = t;
        state.y.slice_mut().copy_from_slice(y);
        state.dy.slice_mut().copy_from_slice(&self.tmp);
    }

    fn stats(&self) -> Stats {
        let s = self.solver.get_statistics();
        Stats {
            steps: s.number_of_steps,
            rhs_evals: self.counters.rhs.get(),
            jac_mul_evals: self.counters.jac.get(),
            jac_evals: self.counters.jac_evals.get(),
            lu_factorisations: s.number_of_linear_solver_setups,
            error_test_failures: s.number_of_error_test_failures,
            newton_failures: s.number_of_nonlinear_solver_fails,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Oscillator;
    impl System for Oscillator {
        fn len(&self) -> usize {
            2
        }
        fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
            dy[0] = y[1];
            dy[1] = -y[0];
        }
        fn jac_mul(&self, _t: f64, _y: &[f64], v: &[f64], out: &mut [f64]) {
            out[0] = v[1];
            out[1] = -v[0];
        }
        fn n_roots(&self) -> usize {
            1
        }
        fn roots(&self, _t: f64, y: &[f64], g: &mut [f64]) {
            g[0] = y[0];
        }
    }

    #[test]
    fn finds_root_of_cosine_and_restarts() {
        for linear_solver in [LinearSolver::Dense, LinearSolver::Sparse] {
            root_and_restart(linear_solver);
        }
    }

    fn root_and_restart(linear_solver: LinearSolver) {
        let opts = Options { rtol: 1e-10, atol: 1e-12, linear_solver, ..Options::default() };
        let (t_root, y_end, stats) = integrate(&Oscillator, 0.0, &[1.0, 0.0], &opts, |it| {
            let t_root = loop {
                if let StepOutcome::Root { t } = it.step().unwrap() {
                    break t;
                }
            };
            it.rewind_to(t_root).unwrap();
            // A discontinuity: jump to (2, 0) and integrate for one more unit of time.
            it.restart(t_root, &[2.0, 0.0]);
            assert!(!it.set_stop_time(t_root + 1.0).unwrap());
            while !matches!(it.step().unwrap(), StepOutcome::Stop { .. }) {}
            (t_root, it.y().to_vec(), it.stats())
        })
        .unwrap();
        assert!((t_root - std::f64::consts::FRAC_PI_2).abs() < 1e-8, "root at {t_root}");
        assert!((y_end[0] - 2.0 * 1.0f64.cos()).abs() < 1e-7, "{y_end:?}");
        assert!(stats.steps > 10 && stats.rhs_evals > stats.steps, "{stats:?}");
    }

    /// A stiff linear chain `y0' = -1000 y0, y_i' = y_{i-1} - y_i` (exact solution known),
    /// with its Jacobian given as values on a pattern, and as products only.
    struct Chain {
        structure: Option<JacobianStructure>,
    }
    const CHAIN: usize = 40;
    impl System for Chain {
        fn len(&self) -> usize {
            CHAIN
        }
        fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
            dy[0] = -1000.0 * y[0];
            for i in 1..CHAIN {
                dy[i] = y[i - 1] - y[i];
            }
        }
        fn jac_mul(&self, t: f64, _y: &[f64], v: &[f64], out: &mut [f64]) {
            self.rhs(t, v, out);
        }
        fn jacobian_structure(&self) -> Option<&JacobianStructure> {
            self.structure.as_ref()
        }
        fn jacobian(&self, _t: f64, _y: &[f64], values: &mut [f64]) {
            // Entries in the order of `chain_entries`.
            values[0] = -1000.0;
            for i in 1..CHAIN {
                values[2 * i - 1] = 1.0;
                values[2 * i] = -1.0;
            }
        }
    }
    fn chain_entries() -> Vec<(usize, usize)> {
        let mut e = vec![(0, 0)];
        for i in 1..CHAIN {
            e.push((i, i - 1));
            e.push((i, i));
        }
        e
    }

    #[test]
    fn a_jacobian_given_as_values_matches_the_one_from_products() {
        let structure = JacobianStructure::new(CHAIN, &chain_entries()).unwrap();
        let with = Chain { structure: Some(structure) };
        let without = Chain { structure: None };
        let y0: Vec<f64> = (0..CHAIN).map(|i| if i == 1 { 1.0 } else { 0.0 }).collect();
        for linear_solver in [LinearSolver::Dense, LinearSolver::Sparse] {
            let opts = Options { rtol: 1e-8, atol: 1e-12, linear_solver, ..Options::default() };
            let run = |sys: &Chain| {
                integrate(sys, 0.0, &y0, &opts, |it| {
                    it.set_stop_time(2.0).unwrap();
                    while !matches!(it.step().unwrap(), StepOutcome::Stop { .. }) {}
                    (it.y().to_vec(), it.stats())
                })
                .unwrap()
            };
            let (y_with, s_with) = run(&with);
            let (y_without, s_without) = run(&without);
            // y_1 = e^-t, y_2 = t e^-t: the chain from y_1 on is a Poisson process.
            let exact = [2.0f64.exp().recip(), 2.0 * 2.0f64.exp().recip()];
            assert!((y_with[1] - exact[0]).abs() < 1e-6 && (y_with[2] - exact[1]).abs() < 1e-6, "{y_with:?}");
            for (a, b) in y_with.iter().zip(&y_without) {
                assert!((a - b).abs() < 1e-9, "{linear_solver:?}: {a} vs {b}");
            }
            assert!(s_with.jac_evals > 0 && s_with.jac_mul_evals == 0, "{linear_solver:?}: {s_with:?}");
            assert!(s_without.jac_evals == 0 && s_without.jac_mul_evals > 0, "{linear_solver:?}: {s_without:?}");
        }
    }

    #[test]
    fn a_fast_start_reaches_the_time_scale_in_fewer_steps_and_only_without_roots() {
        // The chain from one species at 1 and the rest at 0, with atol 1e-12:
        // the first step is tiny, and the solution then decays over t ~ 40.
        let sys = Chain { structure: Some(JacobianStructure::new(CHAIN, &chain_entries()).unwrap()) };
        let y0: Vec<f64> = (0..CHAIN).map(|i| if i == 1 { 1.0 } else { 0.0 }).collect();
        let run = |fast_start: bool, sys: &dyn Fn(&Options) -> (Vec<f64>, Stats)| {
            sys(&Options { rtol: 1e-6, atol: 1e-12, fast_start, ..Options::default() })
        };
        let chain = |o: &Options| {
            integrate(&sys, 0.0, &y0, o, |it| {
                it.set_stop_time(100.0).unwrap();
                while !matches!(it.step().unwrap(), StepOutcome::Stop { .. }) {}
                (it.y().to_vec(), it.stats())
            })
            .unwrap()
        };
        let (y_slow, slow) = run(false, &chain);
        let (y_fast, fast) = run(true, &chain);
        assert!(fast.steps < slow.steps && fast.lu_factorisations < slow.lu_factorisations, "{fast:?} vs {slow:?}");
        for (a, b) in y_fast.iter().zip(&y_slow) {
            assert!((a - b).abs() < 1e-6 * a.abs().max(1e-6), "{a} vs {b}");
        }
        // With root functions (events), the option is ignored.
        let osc = |o: &Options| {
            integrate(&Oscillator, 0.0, &[1.0, 0.0], o, |it| {
                it.set_stop_time(3.0).unwrap();
                while !matches!(it.step().unwrap(), StepOutcome::Stop { .. }) {}
                (it.y().to_vec(), it.stats())
            })
            .unwrap()
        };
        assert_eq!(run(true, &osc), run(false, &osc));
    }

    #[test]
    fn a_pattern_entry_outside_the_system_is_an_error() {
        let err = JacobianStructure::new(3, &[(0, 0), (1, 3)]).unwrap_err();
        assert_eq!(err, SolveError::Pattern { row: 1, col: 3, n: 3 });
    }

    #[test]
    fn dimension_mismatch_is_an_error() {
        let err = integrate(&Oscillator, 0.0, &[1.0], &Options::default(), |_| ()).unwrap_err();
        assert_eq!(err.to_string(), "the system has 2 states but 1 values were given");
    }
}
