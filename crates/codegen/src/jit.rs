//! Cranelift backend.
//!
//! FIXME(codegen brief step 3): not written yet; until it is, `Backend::Jit`
//! runs the interpreter so that callers can already use the default options.

use crate::tape::Tape;
use crate::{CodegenError, DelayHost};

pub(crate) struct JitFunction {
    tape: Tape,
}

pub(crate) fn compile(tape: &Tape, _name: &str) -> Result<JitFunction, CodegenError> {
    Ok(JitFunction { tape: tape.clone() })
}

impl JitFunction {
    pub(crate) fn call(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64], host: &dyn DelayHost) {
        crate::interp::eval(&self.tape, t, y, p, out, host)
    }
}
