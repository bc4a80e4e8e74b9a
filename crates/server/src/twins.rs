//! Twins: a patient's model version with fitted parameters, their
//! uncertainty (log-scale standard deviations) and the provenance of the
//! data they were fitted to; predictions with bands from seeded samples.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::sim::{self, Compiled, SimulateError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    #[serde(default)]
    pub start: f64,
    pub end: f64,
    #[serde(default = "points")]
    pub points: usize,
    #[serde(default)]
    pub select: Vec<String>,
    /// Parameter samples for the bands (0: the fitted values only).
    #[serde(default = "samples")]
    pub samples: usize,
    #[serde(default = "seed")]
    pub seed: u64,
    /// For twins made by vht-twin: interventions such as `oral-glucose=60 g@300`.
    #[serde(default)]
    pub interventions: Vec<String>,
    /// For twins made by vht-twin: the output step (default (end - start) / (points - 1)).
    pub step: Option<f64>,
}
fn points() -> usize {
    101
}
fn samples() -> usize {
    50
}
fn seed() -> u64 {
    1
}

/// SplitMix64: a small seeded generator, enough for sampling bands.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The fitted trajectory (median of samples when sampling) with 5-95 % bands:
/// each sample draws every uncertain parameter log-normally around its
/// fitted value with the stated log-scale standard deviation.
pub fn predict(
    c: &Compiled,
    parameters: &HashMap<String, f64>,
    uncertainty: &HashMap<String, f64>,
    req: &PredictRequest,
    max_points: usize,
    max_secs: f64,
) -> Result<Value, SimulateError> {
    if req.samples > 500 {
        return Err(SimulateError::Invalid { field: "samples", message: format!("at most 500 (got {})", req.samples) });
    }
    let base = sim::SimRequest {
        model: String::new(),
        version: String::new(),
        start: req.start,
        end: req.end,
        points: req.points,
        set: parameters.clone(),
        select: req.select.clone(),
    };
    let fitted = sim::simulate(c, &base, max_points, max_secs)?;
    let cols: Vec<String> = fitted["columns"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let grab = |t: &Value| -> Vec<Vec<f64>> {
        t["rows"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        r.as_array()
                            .map(|x| x.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let fitted_rows = grab(&fitted);
    let time: Vec<f64> = fitted_rows.iter().map(|r| r[0]).collect();
    let mut rng = Rng(req.seed);
    let mut samples: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut keys: Vec<&String> = uncertainty.keys().collect();
    keys.sort();
    let mut failed = 0;
    for _ in 0..req.samples {
        let mut r = base.clone();
        for k in &keys {
            let sd = uncertainty[*k];
            if let Some(v) = r.set.get_mut(*k) {
                *v *= (sd * rng.normal()).exp();
            }
        }
        match sim::simulate(c, &r, max_points, max_secs) {
            Ok(t) => samples.push(grab(&t)),
            Err(_) => failed += 1,
        }
    }
    let mut series = serde_json::Map::new();
    for (j, name) in cols.iter().enumerate().skip(1) {
        let fit: Vec<f64> = fitted_rows.iter().map(|r| r[j]).collect();
        let mut low = Vec::new();
        let mut high = Vec::new();
        for ti in 0..time.len() {
            let mut v: Vec<f64> =
                samples.iter().filter_map(|s| s.get(ti).map(|r| r[j])).filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let q = |p: f64| if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * p).round() as usize] };
            low.push(q(0.05));
            high.push(q(0.95));
        }
        series.insert(name.clone(), json!({"fitted": fit, "low": low, "high": high}));
    }
    Ok(
        json!({"time": time, "series": series, "samples": samples.len(), "failed_samples": failed, "seed": req.seed, "band": [0.05, 0.95]}),
    )
}

/// A prediction of a twin made by `vht-twin` (its folder holds the model,
/// the map, the posterior): `{time, series: {observable: {fitted, median,
/// low, high, measured_low, measured_high}}, units, samples, failed_samples,
/// seed, band}`.
pub fn predict_vht_twin(dir: &std::path::Path, req: &PredictRequest) -> Result<Value, String> {
    if req.samples > 2000 {
        return Err(format!("samples: at most 2000 (got {})", req.samples));
    }
    let interventions = req
        .interventions
        .iter()
        .map(|s| vht_twin::parse_intervention(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let step = req.step.unwrap_or((req.end - req.start) / (req.points.max(2) - 1) as f64);
    let options =
        vht_twin::PredictOptions { end: req.end, step, samples: req.samples.max(1), seed: req.seed, level: 0.95 };
    let p = vht_twin::predict(dir, &interventions, &options).map_err(|e| e.to_string())?;
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<String, Vec<&vht_twin::PredictionRow>> = HashMap::new();
    let mut units = serde_json::Map::new();
    for r in &p.rows {
        if !by.contains_key(&r.observable) {
            order.push(r.observable.clone());
            units.insert(r.observable.clone(), json!(r.unit));
        }
        by.entry(r.observable.clone()).or_default().push(r);
    }
    let time: Vec<f64> = order.first().map(|o| by[o].iter().map(|r| r.time).collect()).unwrap_or_default();
    let mut series = serde_json::Map::new();
    for o in &order {
        if !req.select.is_empty() && !req.select.contains(o) {
            continue;
        }
        let rows = &by[o];
        series.insert(
            o.clone(),
            json!({
                "fitted": rows.iter().map(|r| r.best).collect::<Vec<_>>(),
                "median": rows.iter().map(|r| r.median).collect::<Vec<_>>(),
                "low": rows.iter().map(|r| r.lower).collect::<Vec<_>>(),
                "high": rows.iter().map(|r| r.upper).collect::<Vec<_>>(),
                "measured_low": rows.iter().map(|r| r.measured_lower).collect::<Vec<_>>(),
                "measured_high": rows.iter().map(|r| r.measured_upper).collect::<Vec<_>>(),
            }),
        );
    }
    Ok(
        json!({"time": time, "series": series, "units": units, "samples": p.samples, "failed_samples": p.failed, "seed": req.seed, "band": [0.025, 0.975]}),
    )
}
