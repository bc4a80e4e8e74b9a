//! The past of a run, for `delay(x, tau)`.

/// Solution samples at accepted steps: `(t, y, dy)` with cubic Hermite
/// interpolation between them (linear where `dy` is unknown, i.e. for the
/// algebraic unknowns), or quintic where second derivatives are kept too
/// (for adjoint runs: the backward integrator's high-order steps need the
/// solution smooth to its second derivative across samples). Two samples at the same time mark a discontinuity
/// (an event): a query at that time sees the later one.
#[derive(Default)]
pub(crate) struct History {
    n: usize,
    t: Vec<f64>,
    y: Vec<f64>,
    dy: Vec<f64>,
    /// Second derivatives, when every sample has them (else empty).
    d2y: Vec<f64>,
}

impl History {
    pub(crate) fn new(n: usize) -> History {
        History { n, ..History::default() }
    }

    pub(crate) fn push(&mut self, t: f64, y: &[f64], dy: &[f64]) {
        if let Some(&last) = self.t.last() {
            if t < last {
                return;
            }
        }
        self.t.push(t);
        self.y.extend_from_slice(y);
        self.dy.extend_from_slice(dy);
    }

    /// As [`Self::push`], with second derivatives (every sample must have them).
    pub(crate) fn push2(&mut self, t: f64, y: &[f64], dy: &[f64], d2y: &[f64]) {
        let before = self.t.len();
        self.push(t, y, dy);
        if self.t.len() > before {
            self.d2y.extend_from_slice(d2y);
        }
    }

    /// The times held twice (restarts), ascending.
    pub(crate) fn repeated_times(&self) -> Vec<f64> {
        let mut out: Vec<f64> = self.t.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        out.dedup();
        out
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// The state at `t`: the first sample before the history starts; after
    /// its last sample, linear towards `now` (the point being evaluated,
    /// which the history does not hold yet), or the last sample.
    pub(crate) fn at(&self, t: f64, now: (f64, &[f64]), out: &mut [f64]) {
        let n = self.n;
        let k = self.t.len();
        if k == 0 {
            return;
        }
        if t <= self.t[0] {
            // Before the start the model sits at its initial state.
            out.copy_from_slice(&self.y[..n]);
            return;
        }
        if t >= self.t[k - 1] {
            let (t_last, y_last) = (self.t[k - 1], &self.y[(k - 1) * n..k * n]);
            let (t_now, y_now) = now;
            if t_now > t_last && y_now.len() == n {
                let s = ((t - t_last) / (t_now - t_last)).min(1.0);
                for j in 0..n {
                    out[j] = y_last[j] + s * (y_now[j] - y_last[j]);
                }
            } else {
                out.copy_from_slice(y_last);
            }
            return;
        }
        // Last sample with time <= t (so a discontinuity at t reads the later sample).
        let i = self.t.partition_point(|&s| s <= t) - 1;
        let (t0, t1) = (self.t[i], self.t[i + 1]);
        let h = t1 - t0;
        if h <= 0.0 {
            out.copy_from_slice(&self.y[(i + 1) * n..(i + 2) * n]);
            return;
        }
        let s = (t - t0) / h;
        let (h00, h10, h01, h11) = (
            (1.0 + 2.0 * s) * (1.0 - s) * (1.0 - s),
            s * (1.0 - s) * (1.0 - s),
            s * s * (3.0 - 2.0 * s),
            s * s * (s - 1.0),
        );
        if self.d2y.len() == self.y.len() {
            let (s2, s3) = (s * s, s * s * s);
            let (s4, s5) = (s3 * s, s3 * s2);
            let q0 = 1.0 - 10.0 * s3 + 15.0 * s4 - 6.0 * s5;
            let q1 = s - 6.0 * s3 + 8.0 * s4 - 3.0 * s5;
            let q2 = 0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5;
            let q3 = 0.5 * s3 - s4 + 0.5 * s5;
            let q4 = -4.0 * s3 + 7.0 * s4 - 3.0 * s5;
            let q5 = 10.0 * s3 - 15.0 * s4 + 6.0 * s5;
            let mut all = true;
            for j in 0..n {
                let (a, b) = (i * n + j, (i + 1) * n + j);
                let v = q0 * self.y[a]
                    + q1 * h * self.dy[a]
                    + q2 * h * h * self.d2y[a]
                    + q3 * h * h * self.d2y[b]
                    + q4 * h * self.dy[b]
                    + q5 * self.y[b];
                all &= v.is_finite();
                out[j] = v;
            }
            if all {
                return;
            }
        }
        for j in 0..n {
            let (y0, y1) = (self.y[i * n + j], self.y[(i + 1) * n + j]);
            let (d0, d1) = (self.dy[i * n + j], self.dy[(i + 1) * n + j]);
            out[j] = if d0.is_finite() && d1.is_finite() {
                h00 * y0 + h10 * h * d0 + h01 * y1 + h11 * h * d1
            } else {
                y0 + s * (y1 - y0)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hermite_is_exact_for_cubics() {
        let f = |t: f64| t * t * t - 2.0 * t;
        let df = |t: f64| 3.0 * t * t - 2.0;
        let mut h = History::new(1);
        for t in [0.0, 0.5, 1.5, 2.0] {
            h.push(t, &[f(t)], &[df(t)]);
        }
        let mut out = [0.0];
        for t in [0.1, 0.7, 1.2, 1.99] {
            h.at(t, (f64::NEG_INFINITY, &[]), &mut out);
            assert!((out[0] - f(t)).abs() < 1e-12, "{t}: {} vs {}", out[0], f(t));
        }
        h.at(-1.0, (f64::NEG_INFINITY, &[]), &mut out);
        assert_eq!(out[0], f(0.0));
    }

    #[test]
    fn quintic_hermite_is_exact_for_quintics() {
        let f = |t: f64| t.powi(5) - 3.0 * t.powi(4) + t * t - 2.0;
        let df = |t: f64| 5.0 * t.powi(4) - 12.0 * t.powi(3) + 2.0 * t;
        let d2f = |t: f64| 20.0 * t.powi(3) - 36.0 * t * t + 2.0;
        let mut h = History::new(1);
        for t in [0.0, 0.5, 1.5, 2.0] {
            h.push2(t, &[f(t)], &[df(t)], &[d2f(t)]);
        }
        let mut out = [0.0];
        for t in [0.1, 0.7, 1.2, 1.99] {
            h.at(t, (f64::NEG_INFINITY, &[]), &mut out);
            assert!((out[0] - f(t)).abs() < 1e-12, "{t}: {} vs {}", out[0], f(t));
        }
    }
}
