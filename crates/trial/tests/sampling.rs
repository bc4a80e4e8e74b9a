//! Sampler statistics for fixed seeds: marginal moments within sampling
//! error, correlation recovered through the Gaussian copula, Latin
//! hypercube strata each used once, and candidates that do not depend on
//! what else is sampled.

use std::path::Path;

use vht_trial::sample::PopulationSampler;
use vht_trial::spec::Spec;

const SEED: u64 = 20260124;

fn sampler(parameters: &str, extra: &str, sampler: &str, size: u64) -> PopulationSampler {
    let text = format!(
        "model = \"m.xml\"\n[simulation]\nend = 1\n[population]\nsize = {size}\nseed = {SEED}\nsampler = \"{sampler}\"\n{parameters}\n{extra}\n[[arms]]\nname = \"a\"\n[[endpoints]]\nname = \"e\"\nvariable = \"x\"\nkind = \"max\"\n"
    );
    let spec = Spec::parse(&text, Path::new("sampling.toml")).expect("a valid spec");
    PopulationSampler::new(&spec.population)
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (m, (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)).sqrt())
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (ma, sa) = mean_sd(a);
    let (mb, sb) = mean_sd(b);
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / ((a.len() as f64 - 1.0) * sa * sb)
}

const LOGNORMAL: &str = "[[population.parameters]]\nid = \"k\"\ndist = \"lognormal\"\nmedian = 2.0\nsigma = 0.4\n";

#[test]
fn lognormal_moments_within_sampling_error() {
    println!("seed {SEED}");
    let n = 40_000u64;
    let (median, sigma) = (2.0f64, 0.4f64);
    let mean = median * (sigma * sigma / 2.0).exp();
    let sd = mean * ((sigma * sigma).exp() - 1.0).sqrt();
    for kind in ["random", "lhs", "sobol"] {
        let s = sampler(LOGNORMAL, "", kind, n);
        let x: Vec<f64> = (0..n).map(|i| s.sample(i)[0]).collect();
        let (m, d) = mean_sd(&x);
        // Four standard errors of the mean; the sd within 3 %.
        assert!((m - mean).abs() < 4.0 * sd / (n as f64).sqrt(), "{kind}: mean {m}, expected {mean}");
        assert!((d / sd - 1.0).abs() < 0.03, "{kind}: sd {d}, expected {sd}");
        let logs: Vec<f64> = x.iter().map(|v| v.ln()).collect();
        let (lm, ls) = mean_sd(&logs);
        assert!((lm - median.ln()).abs() < 4.0 * sigma / (n as f64).sqrt(), "{kind}: log mean {lm}");
        assert!((ls / sigma - 1.0).abs() < 0.03, "{kind}: log sd {ls}");
    }
}

#[test]
fn gaussian_copula_recovers_the_correlation() {
    println!("seed {SEED}");
    let params = "[[population.parameters]]\nid = \"a\"\ndist = \"lognormal\"\nmedian = 1.0\nsigma = 0.5\n\
                  [[population.parameters]]\nid = \"b\"\ndist = \"normal\"\nmean = 10\nsd = 2\n\
                  [[population.parameters]]\nid = \"c\"\ndist = \"uniform\"\nlow = 0\nhigh = 1\n";
    let corr = "[population.correlation]\nids = [\"a\", \"b\"]\nmatrix = [[1, -0.7], [-0.7, 1]]\n";
    let n = 20_000u64;
    let s = sampler(params, corr, "random", n);
    let rows: Vec<Vec<f64>> = (0..n).map(|i| s.sample(i)).collect();
    let ln_a: Vec<f64> = rows.iter().map(|r| r[0].ln()).collect();
    let b: Vec<f64> = rows.iter().map(|r| r[1]).collect();
    let c: Vec<f64> = rows.iter().map(|r| r[2]).collect();
    // The copula correlates the underlying normals: ln(a) and b exactly so.
    let r = pearson(&ln_a, &b);
    let se = (1.0 - 0.49) / (n as f64).sqrt();
    assert!((r + 0.7).abs() < 4.0 * se, "correlation {r}, expected -0.7");
    assert!(pearson(&b, &c).abs() < 4.0 / (n as f64).sqrt(), "c is independent");
    let (mb, sb) = mean_sd(&b);
    assert!((mb - 10.0).abs() < 4.0 * 2.0 / (n as f64).sqrt() && (sb / 2.0 - 1.0).abs() < 0.03, "b: {mb} {sb}");
    assert!(c.iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
fn latin_hypercube_uses_every_stratum_once() {
    let params = "[[population.parameters]]\nid = \"u\"\ndist = \"uniform\"\nlow = 0\nhigh = 1\n\
                  [[population.parameters]]\nid = \"v\"\ndist = \"uniform\"\nlow = 0\nhigh = 1\n";
    let n = 997u64;
    let s = sampler(params, "", "lhs", n);
    for block in 0..2 {
        for dim in 0..2 {
            let mut strata: Vec<u64> = (0..n).map(|i| (s.sample(block * n + i)[dim] * n as f64) as u64).collect();
            strata.sort();
            assert_eq!(strata, (0..n).collect::<Vec<_>>(), "block {block}, dimension {dim}");
        }
    }
}

#[test]
fn truncated_normal_stays_in_bounds() {
    let params =
        "[[population.parameters]]\nid = \"w\"\ndist = \"truncnormal\"\nmean = 78\nsd = 12\nlow = 70\nhigh = 200\n";
    let s = sampler(params, "", "random", 10_000);
    let x: Vec<f64> = (0..10_000).map(|i| s.sample(i)[0]).collect();
    assert!(x.iter().all(|&v| (70.0..=200.0).contains(&v)));
    // Mean of a normal truncated below at a = -2/3 sd: mu + sd * phi(a) / (1 - Phi(a)).
    let a: f64 = (70.0 - 78.0) / 12.0;
    let phi = (-a * a / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let expected = 78.0 + 12.0 * phi / (1.0 - vht_trial::sample::norm_cdf(a));
    let (m, _) = mean_sd(&x);
    assert!((m - expected).abs() < 4.0 * 12.0 / 100.0, "mean {m}, expected {expected}");
}

#[test]
fn a_candidate_is_a_function_of_seed_and_index() {
    let s = sampler(LOGNORMAL, "", "random", 10);
    let big = sampler(LOGNORMAL, "", "random", 1_000_000);
    // The population size does not change a random candidate, and neither does order.
    assert_eq!(s.sample(7), big.sample(7));
    let forward: Vec<Vec<f64>> = (0..5).map(|i| s.sample(i)).collect();
    let backward: Vec<Vec<f64>> = (0..5).rev().map(|i| s.sample(i)).collect();
    assert_eq!(forward, backward.into_iter().rev().collect::<Vec<_>>());
}
