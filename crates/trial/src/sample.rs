//! Virtual populations: seeded random streams, samplers (pseudo-random,
//! Latin hypercube, Sobol), marginal distributions and a Gaussian copula.
//!
//! Every candidate's values are a pure function of `(seed, candidate index)`:
//! no sampler keeps state between candidates, so a population is the same
//! whatever the number of threads or shards, and one candidate can be
//! recomputed alone (a resumed run does exactly that).

use crate::spec::{Dist, Population, Sampler};

/// SplitMix64's output function: a good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256++, seeded through SplitMix64. Small, fast, and ours, so that
/// results cannot change with a dependency's version.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *v = mix(x);
        }
        Rng { s }
    }

    /// An independent stream for `(seed, a, b)`, e.g. (population seed, candidate, purpose).
    pub fn stream(seed: u64, a: u64, b: u64) -> Rng {
        Rng::new(mix(mix(mix(seed) ^ a) ^ b.wrapping_mul(0xd6e8_feb8_6659_fd93)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform on the open interval (0, 1): never exactly 0 or 1, so
    /// inverse CDFs stay finite.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)` (Lemire's multiply-shift; the bias is
    /// below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The standard normal quantile: Acklam's rational approximation (relative
/// error about 1e-9) refined by one Halley step on `erfc`, which brings it to
/// full double precision.
#[allow(clippy::excessive_precision)] // the coefficients as published
pub fn norm_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383577518672690e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    // Halley's step. In the upper tail the error is measured against 1 - p
    // (computed from erfc directly) so that it does not cancel.
    let e = if p > 0.5 { (1.0 - p) - 0.5 * libm::erfc(x / std::f64::consts::SQRT_2) } else { norm_cdf(x) - p };
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

/// The lower Cholesky factor of a symmetric matrix, or `None` if it is not
/// positive definite.
pub fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d.is_nan() || d <= 1e-12 {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

impl Dist {
    /// The value at probability `u` (the inverse CDF).
    pub fn quantile(&self, u: f64) -> f64 {
        match *self {
            Dist::Normal { mean, sd } => mean + sd * norm_quantile(u),
            Dist::LogNormal { median, sigma } => median * (sigma * norm_quantile(u)).exp(),
            Dist::Uniform { low, high } => low + (high - low) * u,
            Dist::TruncNormal { mean, sd, low, high } => {
                let (a, b) = ((low - mean) / sd, (high - mean) / sd);
                // Work in the lower tail, where the CDF keeps its precision.
                let z = if a > 0.0 { -trunc_std(-b, -a, 1.0 - u) } else { trunc_std(a, b, u) };
                (mean + sd * z).clamp(low, high)
            }
        }
    }

    /// The value for a standard normal deviate `z` (what the copula gives).
    fn at_normal(&self, z: f64) -> f64 {
        match *self {
            Dist::Normal { mean, sd } => mean + sd * z,
            Dist::LogNormal { median, sigma } => median * (sigma * z).exp(),
            _ => self.quantile(norm_cdf(z).clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0)),
        }
    }
}

/// Standard normal truncated to `[a, b]`, at probability `u`.
fn trunc_std(a: f64, b: f64, u: f64) -> f64 {
    let (pa, pb) = (norm_cdf(a), norm_cdf(b));
    norm_quantile(pa + u * (pb - pa)).clamp(a, b)
}

/// Draws candidates of a population: a pure function of the candidate index.
#[derive(Clone, Debug)]
pub struct PopulationSampler {
    dists: Vec<Dist>,
    chol: Option<Vec<Vec<f64>>>,
    sampler: Sampler,
    seed: u64,
    /// Latin hypercube block size: each block of this many candidates is one design.
    block: u64,
    /// Rows of real covariates, resampled whole (shared, it may be large).
    covariates: Option<std::sync::Arc<Vec<Vec<f64>>>>,
}

/// How many parameters the Sobol sampler supports (the direction numbers below).
pub const SOBOL_MAX_DIMS: usize = 13;

impl PopulationSampler {
    pub fn new(p: &Population) -> PopulationSampler {
        PopulationSampler {
            dists: p.parameters.iter().map(|x| x.dist).collect(),
            chol: p.correlation.as_ref().and_then(|c| cholesky(c)),
            sampler: p.sampler,
            seed: p.seed,
            block: p.size.max(1),
            covariates: p.covariates.as_ref().map(|c| std::sync::Arc::new(c.rows.clone())),
        }
    }

    /// The uniform point of candidate `i` in `(0, 1)^d`.
    pub fn unit(&self, i: u64) -> Vec<f64> {
        let d = self.dists.len();
        match self.sampler {
            Sampler::Random => {
                let mut rng = Rng::stream(self.seed, i, 0);
                (0..d).map(|_| rng.uniform()).collect()
            }
            Sampler::Lhs => {
                let (block, j) = (i / self.block, i % self.block);
                let mut rng = Rng::stream(self.seed, i, 1);
                (0..d)
                    .map(|k| {
                        let key = mix(mix(self.seed ^ 0x4c48_5300) ^ block) ^ (k as u64).wrapping_mul(0x9e37_79b9);
                        let stratum = permute(j, self.block, key);
                        (stratum as f64 + rng.uniform()) / self.block as f64
                    })
                    .collect()
            }
            Sampler::Sobol => (0..d).map(|k| sobol_unit(i, k, self.seed)).collect(),
        }
    }

    /// Parameter values for a unit point through each marginal alone
    /// (independent inputs, as Sobol indices need).
    pub fn independent(&self, u: &[f64]) -> Vec<f64> {
        u.iter().zip(&self.dists).map(|(&u, d)| d.quantile(u)).collect()
    }

    /// The parameter values of candidate `i`, in spec order, followed by
    /// its covariates (one row of the table, drawn from its own stream).
    pub fn sample(&self, i: u64) -> Vec<f64> {
        let mut values = self.marginals(i);
        if let (Some(rows), Some(r)) = (&self.covariates, self.covariate_row(i)) {
            values.extend_from_slice(&rows[r]);
        }
        values
    }

    /// The table row candidate `i` draws (None without covariates).
    pub fn covariate_row(&self, i: u64) -> Option<usize> {
        let rows = self.covariates.as_ref()?;
        Some(Rng::stream(self.seed, i, 0xc0a7).below(rows.len() as u64) as usize)
    }

    fn marginals(&self, i: u64) -> Vec<f64> {
        let u = self.unit(i);
        match &self.chol {
            None => u.iter().zip(&self.dists).map(|(&u, d)| d.quantile(u)).collect(),
            Some(l) => {
                // Gaussian copula: correlated standard normals, then each marginal.
                let z: Vec<f64> = u.iter().map(|&u| norm_quantile(u)).collect();
                (0..z.len())
                    .map(|r| {
                        let zr: f64 = (0..=r).map(|c| l[r][c] * z[c]).sum();
                        self.dists[r].at_normal(zr)
                    })
                    .collect()
            }
        }
    }
}

/// Coordinate `k` of point `i` of the Sobol sequence with a random digital
/// shift drawn from `seed`, in (0, 1). The shift keeps the net's
/// stratification and makes the points seed-dependent. `k` must be below
/// [`SOBOL_MAX_DIMS`].
pub fn sobol_unit(i: u64, k: usize, seed: u64) -> f64 {
    let shift = mix(seed ^ (k as u64 + 1).wrapping_mul(0x5851_f42d_4c95_7f2d)) as u32;
    let bits = sobol_bits(i, k) ^ shift;
    (bits as f64 + 0.5) / 4_294_967_296.0
}

/// A keyed bijection of `[0, n)`: a balanced Feistel network on the
/// smallest even-bit power of two above `n`, with cycle walking. Each Latin
/// hypercube stratum is then used once per block without storing a permutation.
pub fn permute(x: u64, n: u64, key: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let bits = 64 - (n - 1).leading_zeros();
    let half = bits.div_ceil(2).max(1);
    let mask = (1u64 << half) - 1;
    let mut v = x;
    loop {
        let (mut l, mut r) = (v >> half, v & mask);
        for round in 0..4u64 {
            let f = mix(r ^ mix(key ^ round)) & mask;
            (l, r) = (r, l ^ f);
        }
        v = (l << half) | r;
        if v < n {
            return v;
        }
    }
}

/// Joe and Kuo's primitive polynomials and initial direction numbers
/// (`new-joe-kuo-6`), for dimensions 2 to 13: (degree s, coefficients a, m_1..m_s).
const SOBOL_DIRECTIONS: [(u32, u32, &[u32]); SOBOL_MAX_DIMS - 1] = [
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
];

/// Point `i` of the Sobol sequence in dimension `k`, as 32 binary digits.
/// Random access: the XOR of the direction numbers of `i`'s set bits (the
/// sequence in natural rather than Gray-code order: every block of 2^m
/// points is the same net).
fn sobol_bits(i: u64, k: usize) -> u32 {
    let mut v = [0u32; 32];
    if k == 0 {
        for (j, vj) in v.iter_mut().enumerate() {
            *vj = 1 << (31 - j);
        }
    } else {
        let (s, a, m) = SOBOL_DIRECTIONS[k - 1];
        let s = s as usize;
        for j in 0..s.min(32) {
            v[j] = m[j] << (31 - j);
        }
        for j in s..32 {
            let mut x = v[j - s] ^ (v[j - s] >> s);
            for t in 1..s {
                if (a >> (s - 1 - t)) & 1 == 1 {
                    x ^= v[j - t];
                }
            }
            v[j] = x;
        }
    }
    let mut x = 0u32;
    let mut idx = i & 0xffff_ffff;
    let mut j = 0;
    while idx != 0 {
        if idx & 1 == 1 {
            x ^= v[j];
        }
        idx >>= 1;
        j += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_inverts_cdf() {
        for &p in &[1e-300, 1e-12, 1e-6, 0.01, 0.02425, 0.3, 0.5, 0.7, 0.975, 0.999999, 1.0 - 1e-12] {
            let x = norm_quantile(p);
            let back = if p > 0.5 { 1.0 - 0.5 * libm::erfc(x / std::f64::consts::SQRT_2) } else { norm_cdf(x) };
            assert!(
                ((back - p) / p.min(1.0 - p)).abs() < 1e-9 || (back - p).abs() < 1e-15,
                "p = {p}: x = {x}, back = {back}"
            );
        }
        assert!((norm_quantile(0.975) - 1.959963984540054).abs() < 1e-14);
    }

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 100, 1000] {
            let mut seen: Vec<u64> = (0..n).map(|i| permute(i, n, 42)).collect();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn sobol_first_points_stratify() {
        // The first 2^m points of every dimension hit each interval of width 2^-m once.
        for k in 0..SOBOL_MAX_DIMS {
            let mut hit = [false; 64];
            for i in 0..64u64 {
                let b = (sobol_bits(i, k) >> 26) as usize;
                assert!(!hit[b], "dimension {k}, point {i}");
                hit[b] = true;
            }
        }
    }
}
