//! Our own implementation of diffsol's `OdeEquations` for systems that
//! give their Jacobian as values on a fixed pattern ([`JacobianStructure`]).
//!
//! Why: diffsol's builder only takes a Jacobian-vector product, from which
//! it detects the sparsity (one product per state) and colours the columns
//! at every integration, then assembles each Jacobian from one product per
//! colour. A compiled analytic Jacobian written straight into the matrix on a
//! pattern computed once per model does none of that.

use std::cell::RefCell;
use std::sync::OnceLock;

use diffsol::{
    ConstantOp, FaerSparseMat, Matrix, NalgebraMat, NonLinearOp, NonLinearOpJacobian, OdeEquations, OdeEquationsRef,
    Op, UnitCallable,
};

use crate::{sparse_lu, Counters, Slices, SolveError, System};

/// The sparsity of a system's Jacobian `∂f/∂y`, and what depends on it alone:
/// the column-compressed pattern of `I - c J` (the pattern with the diagonal)
/// and, made on first use, the fill-reducing order and symbolic analysis of
/// the sparse LU. Built once per model and shared by every integration
/// (`Send + Sync`).
#[derive(Debug)]
pub struct JacobianStructure {
    n: usize,
    /// The caller's entries `(row, column)`, in the order of [`System::jacobian`]'s values.
    entries: Vec<(usize, usize)>,
    /// Pattern ∪ diagonal, by columns, rows ascending in each column.
    col_ptr: Vec<usize>,
    row_idx: Vec<usize>,
    /// `pos[k]`: where entry `k` goes among the column-compressed values.
    pos: Vec<usize>,
    lu: OnceLock<sparse_lu::SparseLu>,
}

impl JacobianStructure {
    /// The structure of an `n × n` Jacobian with nonzeros at `entries`
    /// (`(row, column)`; repeated entries are summed).
    pub fn new(n: usize, entries: &[(usize, usize)]) -> Result<JacobianStructure, SolveError> {
        if let Some(&(row, col)) = entries.iter().find(|&&(r, c)| r >= n || c >= n) {
            return Err(SolveError::Pattern { row, col, n });
        }
        let mut cols: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (j, col) in cols.iter_mut().enumerate() {
            col.push(j);
        }
        for &(r, c) in entries {
            cols[c].push(r);
        }
        let mut col_ptr = Vec::with_capacity(n + 1);
        let mut row_idx = Vec::new();
        col_ptr.push(0);
        for col in &mut cols {
            col.sort_unstable();
            col.dedup();
            row_idx.extend_from_slice(col);
            col_ptr.push(row_idx.len());
        }
        let pos = entries
            .iter()
            .map(|&(r, c)| {
                let rows = &row_idx[col_ptr[c]..col_ptr[c + 1]];
                // Present by construction: every entry was added to its column.
                col_ptr[c] + rows.binary_search(&r).unwrap_or(0)
            })
            .collect();
        Ok(JacobianStructure { n, entries: entries.to_vec(), col_ptr, row_idx, pos, lu: OnceLock::new() })
    }

    /// Number of states.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of values [`System::jacobian`] writes.
    pub fn n_entries(&self) -> usize {
        self.entries.len()
    }

    /// The sparse LU analysed for this pattern (AMD order, `B = A(q, q)`),
    /// before any factorisation: each integration starts from a copy.
    pub(crate) fn sparse_lu(&self) -> &sparse_lu::SparseLu {
        self.lu.get_or_init(|| sparse_lu::SparseLu::analyse(self.n, &self.col_ptr, &self.row_idx))
    }

    /// True if `(col_ptr, row_idx)` is this structure's pattern (with the diagonal).
    pub(crate) fn is_pattern(&self, col_ptr: &[usize], row_idx: &[usize]) -> bool {
        col_ptr == self.col_ptr.as_slice() && row_idx == self.row_idx.as_slice()
    }
}

/// The two matrix types we integrate with, filled from entry values.
pub(crate) trait JacMatrix: Matrix<T = f64, V: Slices> {
    fn sparsity_of(s: &JacobianStructure) -> Option<Self::Sparsity>;
    fn write(s: &JacobianStructure, vals: &[f64], m: &mut Self);
}

impl JacMatrix for NalgebraMat<f64> {
    fn sparsity_of(_s: &JacobianStructure) -> Option<Self::Sparsity> {
        None
    }
    fn write(s: &JacobianStructure, vals: &[f64], m: &mut Self) {
        let a = m.inner_mut();
        a.fill(0.0);
        for (&(r, c), &v) in s.entries.iter().zip(vals) {
            a[(r, c)] += v;
        }
    }
}

impl JacMatrix for FaerSparseMat<f64> {
    fn sparsity_of(s: &JacobianStructure) -> Option<Self::Sparsity> {
        Some(faer::sparse::SymbolicSparseColMat::new_checked(s.n, s.n, s.col_ptr.clone(), None, s.row_idx.clone()))
    }
    fn write(s: &JacobianStructure, vals: &[f64], m: &mut Self) {
        for batch in m.inner_mut().iter_mut() {
            let out = batch.val_mut();
            out.fill(0.0);
            for (&p, &v) in s.pos.iter().zip(vals) {
                out[p] += v;
            }
        }
    }
}

/// A [`System`] with a [`JacobianStructure`], as diffsol equations.
pub(crate) struct Eqns<'s, S: System, M: JacMatrix> {
    sys: &'s S,
    counters: &'s Counters,
    y0: &'s [f64],
    structure: &'s JacobianStructure,
    ctx: M::C,
    /// The entries' values at the last Jacobian evaluation.
    vals: RefCell<Vec<f64>>,
}

impl<'s, S: System, M: JacMatrix> Eqns<'s, S, M> {
    pub(crate) fn new(
        sys: &'s S,
        counters: &'s Counters,
        y0: &'s [f64],
        structure: &'s JacobianStructure,
        ctx: M::C,
    ) -> Self {
        Eqns { sys, counters, y0, structure, ctx, vals: RefCell::new(vec![0.0; structure.n_entries()]) }
    }
    fn n(&self) -> usize {
        self.structure.n
    }
}

macro_rules! op_for {
    ($ty:ident, $nstates:expr, $nout:expr) => {
        impl<S: System, M: JacMatrix> Op for $ty<'_, '_, S, M> {
            type T = f64;
            type V = M::V;
            type M = M;
            type C = M::C;
            fn context(&self) -> &M::C {
                &self.0.ctx
            }
            fn nstates(&self) -> usize {
                #[allow(clippy::redundant_closure_call)]
                ($nstates)(self.0)
            }
            fn nout(&self) -> usize {
                #[allow(clippy::redundant_closure_call)]
                ($nout)(self.0)
            }
            fn nparams(&self) -> usize {
                0
            }
        }
    };
}

pub(crate) struct Rhs<'a, 's, S: System, M: JacMatrix>(&'a Eqns<'s, S, M>);
pub(crate) struct Root<'a, 's, S: System, M: JacMatrix>(&'a Eqns<'s, S, M>);
pub(crate) struct Init<'a, 's, S: System, M: JacMatrix>(&'a Eqns<'s, S, M>);

op_for!(Rhs, |e: &Eqns<S, M>| e.n(), |e: &Eqns<S, M>| e.n());
op_for!(Root, |e: &Eqns<S, M>| e.n(), |e: &Eqns<S, M>| e.sys.n_roots().max(1));
op_for!(Init, |_e: &Eqns<S, M>| 0, |e: &Eqns<S, M>| e.n());

impl<S: System, M: JacMatrix> NonLinearOp for Rhs<'_, '_, S, M> {
    fn call_inplace(&self, x: &M::V, t: f64, y: &mut M::V) {
        let c = &self.0.counters.rhs;
        c.set(c.get() + 1);
        self.0.sys.rhs(t, x.slice(), y.slice_mut());
    }
}

impl<S: System, M: JacMatrix> NonLinearOpJacobian for Rhs<'_, '_, S, M> {
    fn jac_mul_inplace(&self, x: &M::V, t: f64, v: &M::V, y: &mut M::V) {
        let c = &self.0.counters.jac;
        c.set(c.get() + 1);
        self.0.sys.jac_mul(t, x.slice(), v.slice(), y.slice_mut());
    }
    fn jacobian_inplace(&self, x: &M::V, t: f64, y: &mut M) {
        let e = self.0;
        e.counters.jac_evals.set(e.counters.jac_evals.get() + 1);
        let mut vals = e.vals.borrow_mut();
        e.sys.jacobian(t, x.slice(), &mut vals);
        M::write(e.structure, &vals, y);
    }
    fn jacobian_sparsity(&self) -> Option<M::Sparsity> {
        M::sparsity_of(self.0.structure)
    }
}

impl<S: System, M: JacMatrix> NonLinearOp for Root<'_, '_, S, M> {
    fn call_inplace(&self, x: &M::V, t: f64, y: &mut M::V) {
        let g = y.slice_mut();
        // diffsol needs at least one root function; a constant one never fires.
        if self.0.sys.n_roots() == 0 {
            g[0] = 1.0;
        } else {
            self.0.sys.roots(t, x.slice(), g);
        }
    }
}

impl<S: System, M: JacMatrix> ConstantOp for Init<'_, '_, S, M> {
    fn call_inplace(&self, _t: f64, y: &mut M::V) {
        y.slice_mut().copy_from_slice(self.0.y0);
    }
}

impl<S: System, M: JacMatrix> Op for Eqns<'_, S, M> {
    type T = f64;
    type V = M::V;
    type M = M;
    type C = M::C;
    fn context(&self) -> &M::C {
        &self.ctx
    }
    fn nstates(&self) -> usize {
        self.n()
    }
    fn nout(&self) -> usize {
        self.n()
    }
    fn nparams(&self) -> usize {
        0
    }
}

impl<'a, 's, S: System, M: JacMatrix> OdeEquationsRef<'a> for Eqns<'s, S, M> {
    type Mass = UnitCallable<M>;
    type Rhs = Rhs<'a, 's, S, M>;
    type Root = Root<'a, 's, S, M>;
    type Init = Init<'a, 's, S, M>;
    type Out = UnitCallable<M>;
    type Reset = UnitCallable<M>;
}

impl<S: System, M: JacMatrix> OdeEquations for Eqns<'_, S, M> {
    fn rhs(&self) -> <Self as OdeEquationsRef<'_>>::Rhs {
        Rhs(self)
    }
    fn mass(&self) -> Option<UnitCallable<M>> {
        None
    }
    fn root(&self) -> Option<<Self as OdeEquationsRef<'_>>::Root> {
        Some(Root(self))
    }
    fn init(&self) -> <Self as OdeEquationsRef<'_>>::Init {
        Init(self)
    }
    fn set_params(&mut self, _p: &M::V) {}
    fn get_params(&self, _p: &mut M::V) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffsol::MatrixCommon;

    #[test]
    fn values_land_on_their_entries_and_repeats_are_summed() {
        // J = [[-2, 0, 5], [1, 0, 0], [0, 0, -3]], with J(0, 0) given as two entries.
        let entries = [(0, 0), (1, 0), (0, 2), (0, 0), (2, 2)];
        let vals = [-1.0, 1.0, 5.0, -1.0, -3.0];
        let s = JacobianStructure::new(3, &entries).unwrap();
        let expect = [[-2.0, 0.0, 5.0], [1.0, 0.0, 0.0], [0.0, 0.0, -3.0]];

        let mut dense = <NalgebraMat<f64> as Matrix>::zeros(3, 3, Default::default());
        JacMatrix::write(&s, &vals, &mut dense);
        for (r, row) in expect.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                assert_eq!(dense.inner()[(r, c)], v, "dense ({r}, {c})");
            }
        }

        let sparsity = <FaerSparseMat<f64> as JacMatrix>::sparsity_of(&s);
        let mut sparse = FaerSparseMat::<f64>::new_from_sparsity(3, 3, sparsity, Default::default());
        JacMatrix::write(&s, &vals, &mut sparse);
        let m = &sparse.inner()[0];
        // The pattern holds the diagonal, (1, 1) included, for the Newton matrix I - cJ.
        assert_eq!(m.col_ptr(), &[0, 2, 3, 5]);
        assert_eq!(m.row_idx(), &[0, 1, 1, 0, 2]);
        assert_eq!(m.val(), &[-2.0, 1.0, 0.0, 5.0, -3.0]);
    }
}
