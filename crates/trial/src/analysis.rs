//! Per-arm summaries and paired comparisons between arms.
//!
//! Every patient goes through every arm (a crossover), so an arm is compared
//! with the control patient by patient: the difference of an endpoint is
//! taken within each patient, and its mean gets a percentile bootstrap
//! confidence interval. Resample `b` draws from its own seeded stream, so
//! the interval does not depend on the number of threads.

use rayon::prelude::*;
use serde::Serialize;

use crate::error::ScreeningStats;
use crate::run::Table;
use crate::sample::Rng;
use crate::spec::Spec;

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub trial: String,
    pub model: String,
    pub population: PopulationSummary,
    /// The sampled values over the population (each patient once).
    pub parameters: Vec<EndpointStats>,
    pub arms: Vec<ArmSummary>,
    pub comparisons: Vec<Comparison>,
    /// Sobol indices (`[analysis.sobol]`), filled in by the run (they need simulations).
    pub sensitivity: Vec<crate::sensitivity::Sensitivity>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PopulationSummary {
    pub size: u64,
    pub sampler: String,
    pub seed: u64,
    pub candidates_tried: u64,
    pub candidates_accepted: u64,
    pub candidates_failed: u64,
    /// Per constraint: how many candidates it rejected.
    pub rejected_by: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ArmSummary {
    pub name: String,
    pub patients: u64,
    pub ok: u64,
    pub failed: u64,
    /// The most frequent failure reasons with their counts.
    pub failures: Vec<(String, u64)>,
    pub endpoints: Vec<EndpointStats>,
    pub responders: Vec<ResponderRate>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EndpointStats {
    pub name: String,
    /// Patients with a defined value.
    pub n: u64,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `(q, value)` pairs (linear interpolation between order statistics).
    pub quantiles: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResponderRate {
    pub definition: String,
    pub n: u64,
    pub responders: u64,
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub arm: String,
    pub control: String,
    /// Within patients (crossover), or between the arms' groups (randomised).
    pub paired: bool,
    pub endpoints: Vec<Difference>,
}

/// `arm - control`: within patients (paired), or the difference of the
/// groups' means (unpaired).
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    pub name: String,
    /// Paired: patients with the endpoint defined in both arms. Unpaired:
    /// patients of the arm with the endpoint defined.
    pub n: u64,
    /// Unpaired: patients of the control with the endpoint defined.
    pub n_control: Option<u64>,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub confidence: f64,
    pub bootstrap: usize,
}

fn mean_sd(x: &[f64]) -> (Option<f64>, Option<f64>) {
    if x.is_empty() {
        return (None, None);
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = (x.len() > 1).then(|| (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), sd)
}

/// Quantile of sorted data, linear between order statistics (R's type 7).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn stats(name: &str, mut x: Vec<f64>, quantiles: &[f64]) -> EndpointStats {
    let (mean, sd) = mean_sd(&x);
    x.sort_by(|a, b| a.total_cmp(b));
    EndpointStats {
        name: name.to_string(),
        n: x.len() as u64,
        mean,
        sd,
        min: x.first().copied(),
        max: x.last().copied(),
        quantiles: if x.is_empty() { vec![] } else { quantiles.iter().map(|&q| (q, quantile(&x, q))).collect() },
    }
}

/// Percentile bootstrap interval of the mean of `d`.
fn bootstrap_ci(d: &[f64], b: usize, confidence: f64, seed: u64, stream: u64) -> (Option<f64>, Option<f64>) {
    if d.len() < 2 || b == 0 {
        return (None, None);
    }
    let n = d.len() as u64;
    let mut means: Vec<f64> = (0..b as u64)
        .into_par_iter()
        .map(|k| {
            let mut rng = Rng::stream(seed, stream, k);
            let mut s = 0.0;
            for _ in 0..n {
                s += d[rng.below(n) as usize];
            }
            s / n as f64
        })
        .collect();
    means.sort_by(|a, b| a.total_cmp(b));
    let alpha = (1.0 - confidence) / 2.0;
    (Some(quantile(&means, alpha)), Some(quantile(&means, 1.0 - alpha)))
}

/// Percentile bootstrap interval of `mean(a) - mean(c)`, resampling each group alone.
fn bootstrap_ci_unpaired(
    a: &[f64],
    c: &[f64],
    b: usize,
    confidence: f64,
    seed: u64,
    stream: u64,
) -> (Option<f64>, Option<f64>) {
    if a.len() < 2 || c.len() < 2 || b == 0 {
        return (None, None);
    }
    let mean_of = |x: &[f64], rng: &mut Rng| {
        let n = x.len() as u64;
        (0..n).map(|_| x[rng.below(n) as usize]).sum::<f64>() / n as f64
    };
    let mut diffs: Vec<f64> = (0..b as u64)
        .into_par_iter()
        .map(|k| {
            let mut rng = Rng::stream(seed, stream, k);
            mean_of(a, &mut rng) - mean_of(c, &mut rng)
        })
        .collect();
    diffs.sort_by(|x, y| x.total_cmp(y));
    let alpha = (1.0 - confidence) / 2.0;
    (Some(quantile(&diffs, alpha)), Some(quantile(&diffs, 1.0 - alpha)))
}

/// Summarises a trial's table.
pub fn summarize(spec: &Spec, t: &Table, screening: &ScreeningStats) -> Summary {
    let a = &spec.analysis;
    // Each arm's rows, found once for the arm summaries and the comparisons.
    let mut arm_rows: Vec<Vec<usize>> = vec![Vec::new(); spec.arms.len()];
    for r in 0..t.len() {
        if let Some(rows) = arm_rows.get_mut(t.arm[r] as usize) {
            rows.push(r);
        }
    }
    let mut arms = Vec::new();
    for (ai, arm) in spec.arms.iter().enumerate() {
        let rows = &arm_rows[ai];
        let failed_rows: Vec<&str> = rows.iter().filter_map(|&r| t.reason[r].as_deref()).collect();
        let mut failures: Vec<(String, u64)> = Vec::new();
        for reason in &failed_rows {
            match failures.iter_mut().find(|(r, _)| r == reason) {
                Some(f) => f.1 += 1,
                None => failures.push((reason.to_string(), 1)),
            }
        }
        failures.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        failures.truncate(5);
        let endpoints = spec
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, ep)| {
                let x: Vec<f64> = rows.iter().map(|&r| t.endpoints[e][r]).filter(|v| !v.is_nan()).collect();
                stats(&ep.name, x, &a.quantiles)
            })
            .collect();
        let responders = a
            .responders
            .iter()
            .map(|resp| {
                let x: Vec<f64> = rows.iter().map(|&r| t.endpoints[resp.endpoint][r]).filter(|v| !v.is_nan()).collect();
                let yes =
                    x.iter().filter(|&&v| if resp.above { v > resp.threshold } else { v < resp.threshold }).count();
                ResponderRate {
                    definition: resp.label(&spec.endpoints),
                    n: x.len() as u64,
                    responders: yes as u64,
                    rate: (!x.is_empty()).then(|| yes as f64 / x.len() as f64),
                }
            })
            .collect();
        arms.push(ArmSummary {
            name: arm.name.clone(),
            patients: rows.len() as u64,
            ok: (rows.len() - failed_rows.len()) as u64,
            failed: failed_rows.len() as u64,
            failures,
            endpoints,
            responders,
        });
    }

    // Crossover: paired differences; rows are patient-major with every arm
    // per patient, so a patient's row in arm `k` is found through an index
    // by patient. Randomised: the difference of the groups' means.
    let control = a.control;
    let paired = spec.assignment == crate::spec::Assignment::Crossover;
    let mut by_patient: std::collections::HashMap<(u64, u32), usize> = std::collections::HashMap::new();
    if paired {
        for r in 0..t.len() {
            by_patient.insert((t.patient[r], t.arm[r]), r);
        }
    }
    let control_rows = &arm_rows[control];
    let mut comparisons = Vec::new();
    for (ai, arm) in spec.arms.iter().enumerate() {
        if ai == control {
            continue;
        }
        let rows = &arm_rows[ai];
        let endpoints = spec
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, ep)| {
                let stream = (ai as u64) << 32 | e as u64;
                let (n, n_control, (mean, sd), (ci_low, ci_high)) = if paired {
                    let d: Vec<f64> = rows
                        .iter()
                        .filter_map(|&r| {
                            let c = *by_patient.get(&(t.patient[r], control as u32))?;
                            let v = t.endpoints[e][r] - t.endpoints[e][c];
                            (!v.is_nan()).then_some(v)
                        })
                        .collect();
                    (d.len(), None, mean_sd(&d), bootstrap_ci(&d, a.bootstrap, a.confidence, a.seed, stream))
                } else {
                    let values = |rows: &[usize]| -> Vec<f64> {
                        rows.iter().map(|&r| t.endpoints[e][r]).filter(|v| !v.is_nan()).collect()
                    };
                    let (xa, xc) = (values(rows), values(control_rows));
                    let mean = match (mean_sd(&xa).0, mean_sd(&xc).0) {
                        (Some(ma), Some(mc)) => Some(ma - mc),
                        _ => None,
                    };
                    let ci = bootstrap_ci_unpaired(&xa, &xc, a.bootstrap, a.confidence, a.seed, stream);
                    (xa.len(), Some(xc.len() as u64), (mean, None), ci)
                };
                Difference {
                    name: ep.name.clone(),
                    n: n as u64,
                    n_control,
                    mean,
                    sd,
                    ci_low,
                    ci_high,
                    confidence: a.confidence,
                    bootstrap: a.bootstrap,
                }
            })
            .collect();
        comparisons.push(Comparison {
            arm: arm.name.clone(),
            control: spec.arms[control].name.clone(),
            paired,
            endpoints,
        });
    }
    // Each patient once: its first row (every arm's rows hold the same values).
    let first_arm: Vec<usize> = (0..t.len()).filter(|&r| r == 0 || t.patient[r] != t.patient[r - 1]).collect();
    let parameters = t
        .param_names
        .iter()
        .enumerate()
        .map(|(k, id)| stats(id, first_arm.iter().map(|&r| t.params[k][r]).collect(), &a.quantiles))
        .collect();
    Summary {
        trial: spec.name.clone(),
        parameters,
        model: spec.model.display().to_string(),
        population: PopulationSummary {
            size: screening.accepted,
            sampler: format!("{:?}", spec.population.sampler).to_lowercase(),
            seed: spec.population.seed,
            candidates_tried: screening.tried,
            candidates_accepted: screening.accepted,
            candidates_failed: screening.failed,
            rejected_by: screening.rejected_by.clone(),
        },
        arms,
        comparisons,
        sensitivity: vec![],
    }
}
