//! The tape interpreter: the correctness reference and the fallback backend.

use std::cell::RefCell;

use crate::tape::Tape;
use crate::DelayHost;

thread_local! {
    /// Scratch buffers for tape evaluation, one per evaluation in progress on
    /// this thread. A stack rather than a single buffer because evaluation
    /// re-enters itself: a `DelayHost` may evaluate the `delayed` function
    /// while the right-hand side is being evaluated.
    static SCRATCH: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch slice of length `n`. After the first few calls on
/// a thread this does not allocate.
pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    let mut buf = SCRATCH.try_with(|s| s.borrow_mut().pop()).ok().flatten().unwrap_or_default();
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    let r = f(&mut buf[..n]);
    // During thread teardown the pool may be gone; the buffer is then just dropped.
    let _ = SCRATCH.try_with(|s| s.borrow_mut().push(buf));
    r
}

pub(crate) fn eval(tape: &Tape, t: f64, y: &[f64], p: &[f64], out: &mut [f64], host: &dyn DelayHost) {
    with_scratch(tape.instrs.len(), |s| {
        for (i, &ins) in tape.instrs.iter().enumerate() {
            // Slots before i are all written: the tape is in SSA order.
            s[i] = Tape::step(ins, s, t, y, p, host);
        }
        for (o, &r) in out.iter_mut().zip(&tape.outputs) {
            *o = s[r as usize];
        }
    })
}
