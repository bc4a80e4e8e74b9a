//! OpenVHT's side of the speed benchmark against libroadrunner and COPASI
//! (`bench/run` drives all three tools; this crate measures OpenVHT).
//!
//! Design: the benchmark's definitions live here, once, so that every tool
//! is measured on the same thing: which parameters a cohort varies
//! ([`kinetic_parameters`]), which seeded factors each cohort member gets
//! ([`member_factors`]), and which columns a time course reports
//! ([`species_columns`]). The binary writes the cohort's parameter values to a
//! file that the Python side reads, so libroadrunner and COPASI simulate
//! exactly the same virtual patients.
//!
//! ```
//! use vht_bench::{member_factors, Rng};
//! let a = member_factors(42, 7, 3, 0.1);
//! assert_eq!(a, member_factors(42, 7, 3, 0.1)); // seeded: the same member gets the same factors
//! assert!(a.iter().all(|f| *f > 0.5 && *f < 2.0));
//! let mut r = Rng::new(1);
//! assert!(r.uniform() < 1.0);
//! ```

use std::fmt::Write as _;

use vht_ir::{Expr, Model, Role, Sym, SymbolKind};
use vht_sim::Column;

/// The parameters a cohort varies: constant parameters (IR
/// `SymbolKind::Parameter` with role `Parameter`, local ones included) with a
/// nonzero numeric value, that no event assigns.
///
/// Why these and not every parameter: compartments are geometry, not
/// kinetics; a zero value is usually a switch (a stimulus that is off) and
/// scaling it changes nothing; a parameter defined by an initial assignment
/// has no value of its own to scale (and the tools disagree on whether
/// setting it overrides the assignment); and an event target is reset by the
/// event anyway. `overrides` (e.g. a stimulus) replace the model's value
/// first, so a stimulus parameter is scaled from its stimulated value.
pub fn kinetic_parameters(model: &Model, overrides: &[(Sym, f64)]) -> Vec<(Sym, f64)> {
    let event_targets: Vec<Sym> = model.events.iter().flat_map(|e| e.assignments.iter().map(|a| a.target)).collect();
    let mut out = Vec::new();
    for (i, sym) in model.symbols.iter().enumerate() {
        let s = Sym(i as u32);
        if !matches!(sym.kind, SymbolKind::Parameter) || sym.role != Role::Parameter || event_targets.contains(&s) {
            continue;
        }
        let value = match overrides.iter().find(|(o, _)| *o == s) {
            Some(&(_, v)) => v,
            None => match sym.initial {
                Expr::Num(v) => v,
                _ => continue,
            },
        };
        if value != 0.0 && value.is_finite() {
            out.push((s, value));
        }
    }
    out
}

/// The columns every tool reports: each species' concentration, named by its
/// id (libroadrunner's default `[S]` selections). A model without species
/// (e.g. rules only) reports its non-constant parameters and compartments.
pub fn species_columns(model: &Model) -> Vec<Column> {
    let cols: Vec<Column> = model
        .species
        .iter()
        .map(|v| Column { name: model.name(v.sym).to_string(), expr: v.concentration.clone() })
        .collect();
    if !cols.is_empty() {
        return cols;
    }
    model
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            matches!(s.role, Role::Parameter | Role::Compartment) && !matches!(s.kind, SymbolKind::Parameter)
        })
        .map(|(i, s)| Column { name: s.name.clone(), expr: Expr::Sym(Sym(i as u32)) })
        .collect()
}

/// A small seeded generator (SplitMix64): the benchmark needs reproducible
/// factors, not cryptographic randomness, and no dependency.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal deviate (Box-Muller; one of the pair is dropped so
    /// that every call consumes the same amount of the stream).
    pub fn normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The `k` log-normal factors `exp(sigma * z)` of cohort member `member`.
/// Each member has its own stream (seed and member mixed), so member `i`
/// gets the same factors whatever the cohort size: a quick run simulates the
/// first members of a full run.
pub fn member_factors(seed: u64, member: u64, k: usize, sigma: f64) -> Vec<f64> {
    let mut mix = Rng::new(seed ^ member.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut rng = Rng::new(mix.next_u64());
    (0..k).map(|_| (sigma * rng.normal()).exp()).collect()
}

/// The median of a non-empty sample (NaN for an empty one).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// A JSON value, written by hand: the report is small and flat, and the
/// workspace has no serialisation dependency (only the outermost binary
/// knows the wire format).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj<K: Into<String>>(fields: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            // JSON has no NaN or infinity: those are null.
            Json::Num(x) if !x.is_finite() => out.push_str("null"),
            Json::Num(x) => {
                let _ = write!(out, "{x:?}");
            }
            Json::Str(s) => write_str(s, out),
            Json::Arr(xs) => {
                out.push('[');
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(xml_body: &str) -> Model {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
<model id="m">{xml_body}</model></sbml>"#
        );
        let (m, _) = vht_lower::load_str(&xml, None).expect("test model loads");
        m
    }

    const BODY: &str = r#"
<listOfCompartments><compartment id="c" size="2" constant="true"/></listOfCompartments>
<listOfSpecies><species id="A" compartment="c" initialConcentration="1" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/></listOfSpecies>
<listOfParameters>
  <parameter id="k" value="0.5" constant="true"/>
  <parameter id="off" value="0" constant="true"/>
  <parameter id="derived" constant="true"/>
  <parameter id="switched" value="3" constant="false"/>
  <parameter id="rule" value="1" constant="false"/>
</listOfParameters>
<listOfInitialAssignments><initialAssignment symbol="derived"><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><cn>2</cn><ci>k</ci></apply></math></initialAssignment></listOfInitialAssignments>
<listOfRules><assignmentRule variable="rule"><math xmlns="http://www.w3.org/1998/Math/MathML"><ci>A</ci></math></assignmentRule></listOfRules>
<listOfReactions><reaction id="R" reversible="false">
  <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/></listOfReactants>
  <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>k</ci><ci>kl</ci><ci>A</ci></apply></math>
  <listOfLocalParameters><localParameter id="kl" value="4"/></listOfLocalParameters></kineticLaw>
</reaction></listOfReactions>
<listOfEvents><event id="e" useValuesFromTriggerTime="true"><trigger initialValue="false" persistent="true"><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><gt/><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol><cn>1</cn></apply></math></trigger>
<listOfEventAssignments><eventAssignment variable="switched"><math xmlns="http://www.w3.org/1998/Math/MathML"><cn>1</cn></math></eventAssignment></listOfEventAssignments></event></listOfEvents>
"#;

    #[test]
    fn kinetic_parameters_are_nonzero_numeric_constants_not_event_targets() {
        let m = model(BODY);
        let names: Vec<(&str, f64)> = kinetic_parameters(&m, &[]).iter().map(|&(s, v)| (m.name(s), v)).collect();
        // Not: the compartment, the zero switch, the initial assignment, the
        // event target, the assignment rule.
        assert_eq!(names, vec![("k", 0.5), ("R.kl", 4.0)]);
    }

    #[test]
    fn an_override_sets_the_base_value_and_can_switch_a_parameter_on() {
        let m = model(BODY);
        let (k, off) = (m.lookup("k").unwrap(), m.lookup("off").unwrap());
        let got = kinetic_parameters(&m, &[(k, 2.0), (off, 7.0)]);
        let names: Vec<(&str, f64)> = got.iter().map(|&(s, v)| (m.name(s), v)).collect();
        assert_eq!(names, vec![("k", 2.0), ("off", 7.0), ("R.kl", 4.0)]);
    }

    #[test]
    fn columns_are_species_concentrations() {
        let m = model(BODY);
        let cols = species_columns(&m);
        assert_eq!(cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["A"]);
        // A concentration, not the amount (which is 2 in a compartment of size 2).
        let sim = vht_sim::Simulator::new(m, &vht_codegen::Options::default()).unwrap();
        let out = sim.outputs(&cols).unwrap();
        let tc = vht_sim::TimeCourse { end: 1.0, points: 2, ..Default::default() };
        let traj = vht_sim::simulate(&sim, &tc, &out, &[]).unwrap();
        assert!((traj.row(0)[0] - 1.0).abs() < 1e-12, "{:?}", traj.row(0));
    }

    #[test]
    fn factors_are_log_normal_with_the_requested_sigma() {
        let sigma = 0.1;
        let logs: Vec<f64> = (0..2000).flat_map(|m| member_factors(3, m, 5, sigma)).map(f64::ln).collect();
        let n = logs.len() as f64;
        let mean = logs.iter().sum::<f64>() / n;
        let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        // 10,000 samples: the standard error of the mean is 0.001.
        assert!(mean.abs() < 0.005, "mean of log factors {mean}");
        assert!((sd - sigma).abs() < 0.005, "sd of log factors {sd}");
    }

    #[test]
    fn members_differ_and_do_not_depend_on_each_other() {
        assert_ne!(member_factors(1, 0, 4, 0.1), member_factors(1, 1, 4, 0.1));
        assert_ne!(member_factors(1, 0, 4, 0.1), member_factors(2, 0, 4, 0.1));
        // The first factors of a member are the same whatever k is.
        assert_eq!(member_factors(1, 5, 4, 0.1)[..2], member_factors(1, 5, 2, 0.1)[..]);
    }

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn json_escapes_strings_and_writes_nan_as_null() {
        let j = Json::obj([
            ("a\"b", Json::Str("x\ny\\".into())),
            ("n", Json::Num(f64::NAN)),
            ("v", Json::Arr(vec![Json::Num(1.5), Json::Bool(true), Json::Null])),
        ]);
        assert_eq!(j.to_string(), r#"{"a\"b":"x\ny\\","n":null,"v":[1.5,true,null]}"#);
    }
}
