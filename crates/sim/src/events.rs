//! The SBML event queue: scheduling, cancelling and choosing which event
//! executes next (SBML Level 3 Version 2, section 4.12).

/// An event that has triggered and waits to execute.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub event: usize,
    /// When it executes (trigger time + delay).
    pub time: f64,
    /// Assignment values computed at trigger time, if the event asks for that.
    pub values: Option<Vec<f64>>,
}

/// What the events of one run remember between steps.
pub(crate) struct Queue {
    /// Each trigger's value at the last evaluation.
    pub prev: Vec<bool>,
    pub pending: Vec<Pending>,
    rng: u64,
}

impl Queue {
    pub fn new(initial_values: Vec<bool>, seed: u64) -> Queue {
        // splitmix64 seeding keeps seed 0 usable.
        Queue { prev: initial_values, pending: Vec::new(), rng: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// The earliest time a pending event executes.
    pub fn next_time(&self) -> Option<f64> {
        self.pending.iter().map(|p| p.time).fold(None, |m, t| Some(m.map_or(t, |m: f64| m.min(t))))
    }

    /// A uniform draw in [0, 1), for choosing among events of equal priority.
    pub fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Index into `pending` of the event to execute now among those due at
    /// `t`: highest priority first; ties broken at random.
    pub fn choose(&mut self, due: &[(usize, f64)]) -> Option<usize> {
        let best = due.iter().map(|&(_, p)| p).fold(f64::NEG_INFINITY, f64::max);
        let tied: Vec<usize> =
            due.iter().filter(|&&(_, p)| p == best || (p.is_nan() && best.is_nan())).map(|&(i, _)| i).collect();
        match tied.len() {
            0 => due.first().map(|&(i, _)| i),
            1 => Some(tied[0]),
            n => {
                let k = ((self.random() * n as f64) as usize).min(n - 1);
                Some(tied[k])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_broken_by_the_seed_and_evenly() {
        let mut q = Queue::new(vec![], 42);
        let mut counts = [0usize; 2];
        for _ in 0..10_000 {
            counts[q.choose(&[(0, 1.0), (1, 1.0)]).unwrap()] += 1;
        }
        assert!(counts[0] > 4_700 && counts[1] > 4_700, "{counts:?}");
        assert_eq!(q.choose(&[(0, 1.0), (1, 2.0)]), Some(1));
    }
}
