//! The analytic sparse Jacobian of the right-hand side.
//!
//! FIXME(codegen brief step 4): not written yet; the pattern is empty.

use vht_ir::{Expr, Model};

use crate::{CodegenError, Layout, Slot};

pub(crate) struct JacobianExprs {
    /// The model extended with one assigned symbol per nonzero derivative of an assigned symbol.
    pub model: Model,
    pub slots: Vec<Option<Slot>>,
    pub pattern: Vec<(usize, usize)>,
    pub values: Vec<Expr>,
}

pub(crate) fn jacobian(model: &Model, layout: &Layout, _rhs: &[Expr]) -> Result<JacobianExprs, CodegenError> {
    Ok(JacobianExprs { model: model.clone(), slots: layout.index(model)?, pattern: vec![], values: vec![] })
}
