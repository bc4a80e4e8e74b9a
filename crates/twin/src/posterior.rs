//! The twin's posterior by Markov chain Monte Carlo, and prediction bands
//! from its draws.
//!
//! Why not only the Laplace approximation: a patient gives a few dozen
//! measurements of a nonlinear model, and the posterior of, e.g., an
//! absorption rate is skewed; a Gaussian at the optimum then makes the
//! bands too narrow (measured with examples/calibration.rs: 89% pooled
//! coverage of held-back data by nominal 95% bands). Random-walk Metropolis
//! samples the posterior itself: the target is `exp(-objective)` (the
//! negative log-likelihood plus the PEtab priors; flat on the parameter
//! scale within the bounds when there is none), proposals are Gaussian with
//! the Laplace covariance scaled by 2.38²/d (the optimal scaling for a
//! Gaussian target), chains start at the optimum, each chain is seeded, and
//! a draw whose simulation fails is rejected.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vht_fit::Objective;

use crate::TwinError;

/// Settings of [`sample`]. Plain data.
#[derive(Clone, Debug)]
pub struct McmcOptions {
    pub chains: usize,
    /// Steps per chain, burn-in included.
    pub steps: usize,
    /// Steps discarded at the start of each chain.
    pub burn_in: usize,
    /// Draws kept (evenly thinned over the chains after burn-in).
    pub keep: usize,
    pub seed: u64,
}

impl Default for McmcOptions {
    fn default() -> Self {
        McmcOptions { chains: 2, steps: 1500, burn_in: 300, keep: 400, seed: 0 }
    }
}

/// Posterior draws (scaled estimated parameters) and how they were made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Posterior {
    pub method: String,
    pub chains: usize,
    pub steps: usize,
    pub burn_in: usize,
    pub seed: u64,
    /// Accepted proposals / proposals, over all chains.
    pub acceptance: f64,
    pub draws: Vec<Vec<f64>>,
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A square root `L` of a covariance (`L L^T = cov`), through the
/// eigen-decomposition so a semi-definite matrix works too.
fn sqrt_cov(cov: &[Vec<f64>]) -> DMatrix<f64> {
    let n = cov.len();
    let m = DMatrix::from_fn(n, n, |a, b| 0.5 * (cov[a][b] + cov[b][a]));
    let eig = m.symmetric_eigen();
    let d = DMatrix::from_diagonal(&eig.eigenvalues.map(|l| l.max(0.0).sqrt()));
    &eig.eigenvectors * d
}

/// Random-walk Metropolis from `x_hat` with proposals scaled from `cov`.
pub fn sample(objective: &Objective, x_hat: &[f64], cov: &[Vec<f64>], o: &McmcOptions) -> Result<Posterior, TwinError> {
    let d = x_hat.len();
    if o.chains == 0 || o.steps <= o.burn_in || o.keep == 0 {
        return Err(TwinError::Options { problem: "MCMC needs chains > 0, steps > burn_in and keep > 0".into() });
    }
    let (lb, ub) = objective.scaled_bounds();
    let f0 = objective.evaluate_scaled(x_hat)?;
    let l = sqrt_cov(cov) * (2.38 / (d.max(1) as f64).sqrt());
    let chains: Vec<(Vec<Vec<f64>>, usize)> = (0..o.chains)
        .into_par_iter()
        .map(|c| {
            // Each chain's stream depends only on the seed and its index.
            let mut rng = ChaCha8Rng::seed_from_u64(o.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(c as u64));
            let (mut x, mut f) = (x_hat.to_vec(), f0);
            let mut kept = Vec::with_capacity(o.steps - o.burn_in);
            let mut accepted = 0;
            for step in 0..o.steps {
                let z = DVector::from_iterator(d, (0..d).map(|_| normal(&mut rng)));
                let dx = &l * z;
                let y: Vec<f64> = (0..d).map(|k| x[k] + dx[k]).collect();
                let inside = (0..d).all(|k| lb[k] <= y[k] && y[k] <= ub[k]);
                let u: f64 = rng.gen();
                if inside {
                    if let Ok(fy) = objective.evaluate_scaled(&y) {
                        if fy.is_finite() && u.ln() < f - fy {
                            x = y;
                            f = fy;
                            accepted += 1;
                        }
                    }
                }
                if step >= o.burn_in {
                    kept.push(x.clone());
                }
            }
            (kept, accepted)
        })
        .collect();
    let accepted: usize = chains.iter().map(|c| c.1).sum();
    let all: Vec<Vec<f64>> = chains.into_iter().flat_map(|c| c.0).collect();
    let stride = (all.len() as f64 / o.keep as f64).max(1.0);
    let draws =
        (0..o.keep.min(all.len())).map(|i| all[((i as f64 * stride) as usize).min(all.len() - 1)].clone()).collect();
    Ok(Posterior {
        method: "random-walk Metropolis (Laplace-scaled proposals)".into(),
        chains: o.chains,
        steps: o.steps,
        burn_in: o.burn_in,
        seed: o.seed,
        acceptance: accepted as f64 / (o.chains * o.steps) as f64,
        draws,
    })
}

/// One observable's band over times.
#[derive(Clone, Debug)]
pub struct DrawBand {
    pub observable: String,
    pub times: Vec<f64>,
    pub median: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// The sampler's stream as a source of measurement noise (the same draws
/// as before it was shared with `vht_fit`: Box-Muller normals, plain uniforms).
struct Noise(ChaCha8Rng);

impl vht_fit::NoiseSource for Noise {
    fn normal(&mut self) -> f64 {
        normal(&mut self.0)
    }
    fn uniform(&mut self) -> f64 {
        self.0.gen::<f64>()
    }
}

/// Bands from posterior draws: each draw simulated once (every observable of
/// the problem at `times`); the band of the observable, and the band of a
/// new measurement with noise from the noise model added to the same
/// simulations; quantiles at `(1 - level) / 2` and its complement.
/// Returns both bands and the number of draws whose simulation failed.
pub fn bands(
    objective: &Objective,
    draws: &[Vec<f64>],
    times: &[f64],
    level: f64,
    seed: u64,
) -> Result<(Vec<DrawBand>, Vec<DrawBand>, usize), TwinError> {
    // Per draw: the prediction without and with noise (None: the simulation failed).
    let sims: Vec<Option<[Vec<vht_fit::Prediction>; 2]>> = draws
        .par_iter()
        .enumerate()
        .map(|(i, x)| {
            let p = objective.predict(x, Some(times)).ok()?;
            let mut noisy = p.clone();
            let rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(i as u64));
            objective.add_noise(&mut noisy, &mut Noise(rng))?;
            Some([p, noisy])
        })
        .collect();
    let ok: Vec<&[Vec<vht_fit::Prediction>; 2]> = sims.iter().flatten().collect();
    let failed = sims.len() - ok.len();
    let Some(first) = ok.first() else {
        return Err(TwinError::Options { problem: format!("all {} posterior draws failed to simulate", draws.len()) });
    };
    let alpha = (1.0 - level) / 2.0;
    let bands_at = |which: usize| {
        first[0]
            .iter()
            .enumerate()
            .map(|(b, p)| {
                let (mut median, mut lower, mut upper) = (Vec::new(), Vec::new(), Vec::new());
                for i in 0..p.times.len() {
                    let mut v: Vec<f64> = ok.iter().map(|s| s[which][b].values[i]).filter(|v| v.is_finite()).collect();
                    v.sort_by(f64::total_cmp);
                    lower.push(vht_fit::quantile(&v, alpha));
                    median.push(vht_fit::quantile(&v, 0.5));
                    upper.push(vht_fit::quantile(&v, 1.0 - alpha));
                }
                DrawBand { observable: p.observable.clone(), times: p.times.clone(), median, lower, upper }
            })
            .collect()
    };
    Ok((bands_at(0), bands_at(1), failed))
}
