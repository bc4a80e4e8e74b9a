//! FHIR resources + a mapping file -> one patient's PEtab v1 problem.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, FixedOffset};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::map::{BirthDate, MapFile, TimeOrigin};
use crate::resource::{self, Ctx, Dose, Observation, Patient, LOINC};
use crate::sbml::{num, DoseKind, ModelDose, SbmlText};
use crate::ucum::{self, Equivalences};
use crate::{FhirError, Loc};

/// The environment variable that may hold the pseudonymisation key.
pub const KEY_ENV: &str = "VHT_PSEUDONYM_KEY";

/// The pseudonymisation key: the contents of `file` (without a trailing
/// newline), else `$VHT_PSEUDONYM_KEY`. There is no default key: a
/// built-in key would make every pseudonym reversible by anyone with the code.
pub fn key(file: Option<&Path>) -> Result<Vec<u8>, FhirError> {
    let key = match file {
        Some(f) => {
            let bytes = std::fs::read(f).map_err(|error| FhirError::Io { path: f.to_path_buf(), error })?;
            let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
            if trimmed.is_empty() {
                return Err(FhirError::EmptyKey { file: f.to_path_buf() });
            }
            trimmed.to_vec()
        }
        None => match std::env::var_os(KEY_ENV) {
            Some(v) if !v.is_empty() => v.into_encoded_bytes(),
            _ => return Err(FhirError::NoKey),
        },
    };
    Ok(key)
}

/// HMAC-SHA256(key, "system|value"), hex. The same patient gets the same
/// pseudonym under the same key, and nobody without the key can link it
/// back (nor test a guessed identifier against it).
pub fn pseudonym(key: &[u8], system: &str, value: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(system.as_bytes());
    mac.update(b"|");
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One measurement row, in model units and model time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeasurementRow {
    /// Which input file it came from (index into the inputs of [`extract_many`]).
    pub source: usize,
    pub observable: String,
    pub loinc: String,
    pub time: f64,
    pub value: f64,
}

/// A covariate as used (or only recorded).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Covariate {
    pub loinc: String,
    pub parameter: Option<String>,
    pub value: f64,
    pub unit: String,
    /// Model time of the observation it came from.
    pub time: f64,
}

/// What an import found, before anything is written. Holds no direct
/// identifier: only the pseudonym and relative times.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    pub pseudonym: String,
    /// How time zero was chosen (no absolute date is kept).
    pub time_origin: String,
    pub time_unit: String,
    pub measurements: Vec<MeasurementRow>,
    pub doses: Vec<ModelDose>,
    pub covariates: Vec<Covariate>,
    pub birth_year: Option<i32>,
    pub age_years: Option<i32>,
    /// What was skipped, by input number, line, JSON path and resource id
    /// (not by file name, which may name the patient).
    pub warnings: Vec<String>,
}

/// Reads the resources of `input` and applies the map.
pub fn extract(input: &Path, map: &MapFile, key: &[u8]) -> Result<Imported, FhirError> {
    extract_many(&[input], map, key)
}

/// Reads the resources of several files about one patient (e.g. a bundle
/// and later bulk data) and applies the map; times share one origin. A
/// Patient resource repeated with the same id and identifier counts once.
pub fn extract_many(inputs: &[&Path], map: &MapFile, key: &[u8]) -> Result<Imported, FhirError> {
    let m = &map.map;
    let input = *inputs.first().ok_or_else(|| FhirError::Map {
        file: map.path.clone(),
        line: 0,
        problem: "no input files".into(),
    })?;
    let mut resources = Vec::new();
    for (k, f) in inputs.iter().enumerate() {
        resources.extend(resource::read(f)?.into_iter().map(|r| (k, *f, r)));
    }
    let mut warnings = Vec::new();
    let mut patients: Vec<Patient> = Vec::new();
    let mut observations: Vec<(usize, Observation)> = Vec::new();
    let mut doses: Vec<Dose> = Vec::new();
    for (k, file, r) in &resources {
        let ctx = Ctx { file, r };
        match ctx.resource_type() {
            "Patient" => {
                let p = resource::patient(&ctx)?;
                if !patients.iter().any(|q| (&q.id, &q.identifier) == (&p.id, &p.identifier)) {
                    patients.push(p);
                }
            }
            "Observation" => match resource::observation(&ctx)? {
                Ok(o) => observations.push((*k, o)),
                Err(why) => warnings.push(format!("{}: skipped: {why}", ctx.loc("").without_file())),
            },
            "MedicationAdministration" | "MedicationStatement" => match resource::dose(&ctx)? {
                Ok(d) => doses.push(d),
                Err(why) => warnings.push(format!("{}: skipped: {why}", ctx.loc("").without_file())),
            },
            "" => return Err(ctx.err("resourceType", "a resource type")),
            // Other resources (Encounter, Condition, ...) carry nothing the map uses.
            _ => {}
        }
    }
    let patient = match patients.len() {
        1 => patients.remove(0),
        0 => {
            let at = Loc { file: input.to_path_buf(), line: 0, path: String::new(), resource: String::new() };
            return Err(FhirError::Resource { at: Box::new(at), problem: "no Patient resource".into() });
        }
        n => {
            return Err(FhirError::Resource {
                at: Box::new(patients[1].at.clone()),
                problem: format!("{n} Patient resources: an import is for one patient"),
            })
        }
    };
    // Every clinical resource must be about this patient.
    let refs: Vec<String> =
        [Some(format!("Patient/{}", patient.id)), patient.full_url.clone()].into_iter().flatten().collect();
    let check_subject = |subject: &Option<String>, at: &Loc| -> Result<(), FhirError> {
        match subject {
            Some(s) if refs.iter().any(|r| r == s) => Ok(()),
            Some(s) => Err(FhirError::Resource {
                at: Box::new(at.clone()),
                problem: format!("subject.reference '{s}' does not resolve to the bundle's Patient"),
            }),
            None => Err(FhirError::Field {
                at: Box::new(at.clone()),
                field: "subject.reference".into(),
                expected: "a reference to the Patient".into(),
            }),
        }
    };
    for (_, o) in &observations {
        check_subject(&o.subject, &o.at)?;
    }
    for d in &doses {
        check_subject(&d.subject, &d.at)?;
    }

    // Classify observations by LOINC code.
    enum Use<'a> {
        Measure(&'a crate::map::ObservationMap),
        Covariate(&'a crate::map::CovariateMap),
    }
    let mut measured: Vec<(usize, &Observation, Use, String)> = Vec::new();
    for (k, o) in &observations {
        let loinc: Vec<&str> = o.codes.iter().filter(|(s, _)| s == LOINC).map(|(_, c)| c.as_str()).collect();
        let found = loinc.iter().find_map(|code| {
            m.observations
                .iter()
                .find(|x| x.loinc.get_ref() == code)
                .map(|x| (Use::Measure(x), code.to_string()))
                .or_else(|| {
                    m.covariates
                        .iter()
                        .find(|x| x.loinc.get_ref() == code)
                        .map(|x| (Use::Covariate(x), code.to_string()))
                })
        });
        match found {
            Some((u, code)) => measured.push((*k, o, u, code)),
            None => {
                let code = loinc.first().map_or_else(|| "(none)".to_string(), |c| c.to_string());
                if m.strict {
                    return Err(FhirError::UnknownCode { at: Box::new(o.at.clone()), code });
                }
                warnings.push(format!("{}: skipped: LOINC code {code} is not in the map", o.at.without_file()));
            }
        }
    }
    let mut used_doses: Vec<(&Dose, &crate::map::MedicationMap)> = Vec::new();
    for d in &doses {
        let hit = m.medications.iter().find(|x| {
            d.codes.iter().any(|(s, c)| c == x.code.get_ref() && x.system.as_ref().is_none_or(|sys| sys == s))
        });
        match hit {
            Some(x) => used_doses.push((d, x)),
            None => {
                let code = d.codes.iter().map(|(s, c)| format!("{s}|{c}")).collect::<Vec<_>>().join(", ");
                if m.strict {
                    return Err(FhirError::UnknownCode { at: Box::new(d.at.clone()), code });
                }
                warnings.push(format!("{}: skipped: medication {code} is not in the map", d.at.without_file()));
            }
        }
    }

    let origin: DateTime<FixedOffset> = match &m.time_origin {
        TimeOrigin::FirstDose => used_doses.iter().map(|(d, _)| d.time).min().ok_or_else(|| FhirError::Map {
            file: map.path.clone(),
            line: 0,
            problem: format!("time_origin is first_dose, but {} has no mapped dose", input.display()),
        })?,
        TimeOrigin::FirstObservation => measured
            .iter()
            .filter(|(_, _, u, _)| matches!(u, Use::Measure(_)))
            .map(|(_, o, _, _)| o.time)
            .min()
            .ok_or_else(|| FhirError::Map {
                file: map.path.clone(),
                line: 0,
                problem: format!("time_origin is first_observation, but {} has no mapped observation", input.display()),
            })?,
        TimeOrigin::Fixed { at } => DateTime::parse_from_rfc3339(at).map_err(|e| FhirError::Map {
            file: map.path.clone(),
            line: 0,
            problem: format!("time_origin.at '{at}': {e}"),
        })?,
    };
    let per_second =
        ucum::factor("s", m.time_unit.get_ref(), Equivalences::default()).map_err(|e| map.err(&m.time_unit, e))?;
    let model_time = |t: DateTime<FixedOffset>| (t - origin).num_milliseconds() as f64 / 1000.0 * per_second;

    let mut rows = Vec::new();
    let mut covariates: Vec<Covariate> = Vec::new();
    for (src, o, u, code) in measured {
        let t = model_time(o.time);
        let unit_err = |to: &str, problem: String| FhirError::Unit {
            at: Box::new(Loc { path: join(&o.at.path, "valueQuantity"), ..o.at.clone() }),
            from: o.value.unit.clone(),
            to: to.to_string(),
            problem,
        };
        match u {
            Use::Measure(x) => {
                let eq = map.equivalences(&x.loinc, x.molar_mass.as_deref(), x.iu_equivalent.as_deref())?;
                let k = ucum::factor(&o.value.unit, &x.unit, eq).map_err(|e| unit_err(&x.unit, e))?;
                if t < 0.0 {
                    warnings
                        .push(format!("{}: skipped: observed before the time origin (t = {t})", o.at.without_file()));
                    continue;
                }
                rows.push(MeasurementRow {
                    source: src,
                    observable: x.observable.clone(),
                    loinc: code,
                    time: t,
                    value: o.value.value * k,
                });
            }
            Use::Covariate(x) => {
                let value = if x.analyte.as_deref() == Some("hba1c") {
                    ucum::hba1c(o.value.value, &o.value.unit, &x.unit).map_err(|e| unit_err(&x.unit, e))?
                } else {
                    let eq = map.equivalences(&x.loinc, x.molar_mass.as_deref(), None)?;
                    o.value.value * ucum::factor(&o.value.unit, &x.unit, eq).map_err(|e| unit_err(&x.unit, e))?
                };
                // The most recent value at or before the origin wins (else the earliest after it).
                let c = Covariate { loinc: code, parameter: x.parameter.clone(), value, unit: x.unit.clone(), time: t };
                match covariates.iter_mut().find(|c| c.loinc == *x.loinc.get_ref()) {
                    Some(old) if better(t, old.time) => *old = c,
                    Some(_) => {}
                    None => covariates.push(c),
                }
            }
        }
    }
    rows.sort_by(|a, b| a.time.total_cmp(&b.time).then_with(|| a.observable.cmp(&b.observable)));

    let mut model_doses = Vec::new();
    for (d, x) in used_doses {
        let eq = map.equivalences(&x.code, x.molar_mass.as_deref(), None)?;
        let k = ucum::factor(&d.dose.unit, &x.unit, eq).map_err(|e| FhirError::Unit {
            at: Box::new(d.at.clone()),
            from: d.dose.unit.clone(),
            to: x.unit.clone(),
            problem: e,
        })?;
        model_doses.push(ModelDose {
            time: model_time(d.time),
            target: x.target.clone(),
            kind: if x.kind == "set" { DoseKind::Set } else { DoseKind::Bolus },
            amount: d.dose.value * k,
            also_set: x.also_set.clone(),
        });
    }
    model_doses.sort_by(|a, b| a.time.total_cmp(&b.time));

    let (birth_year, age_years) = match (m.birth_date, patient.birth_date) {
        (BirthDate::Year, Some(b)) => (Some(b.year()), None),
        (BirthDate::Age, Some(b)) => {
            let at = origin.date_naive();
            (None, at.years_since(b).map(|y| y as i32))
        }
        _ => (None, None),
    };
    let time_origin = match &m.time_origin {
        TimeOrigin::FirstDose => "first_dose",
        TimeOrigin::FirstObservation => "first_observation",
        TimeOrigin::Fixed { .. } => "fixed",
    };
    Ok(Imported {
        pseudonym: pseudonym(key, &patient.identifier.0, &patient.identifier.1),
        time_origin: time_origin.into(),
        time_unit: m.time_unit.get_ref().clone(),
        measurements: rows,
        doses: model_doses,
        covariates,
        birth_year,
        age_years,
        warnings,
    })
}

fn better(t: f64, old: f64) -> bool {
    match (t <= 0.0, old <= 0.0) {
        (true, true) => t > old,
        (true, false) => true,
        (false, true) => false,
        (false, false) => t < old,
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// The files of a written problem.
#[derive(Clone, Debug)]
pub struct Written {
    pub yaml: PathBuf,
    pub model: PathBuf,
}

/// Writes the PEtab problem for an import into `out` (created if needed):
/// problem.yaml, model.xml (the model with the doses as events),
/// conditions.tsv (one condition, `patient`, fixing the covariates),
/// observables.tsv, measurements.tsv, parameters.tsv, and import.json (the
/// pseudonym, covariates, doses and warnings).
pub fn write_petab(imported: &Imported, map: &MapFile, out: &Path) -> Result<Written, FhirError> {
    let m = &map.map;
    let model_path = map.model_path();
    let sbml = SbmlText::read(&model_path)?;
    std::fs::create_dir_all(out).map_err(|error| FhirError::Write { path: out.to_path_buf(), error })?;
    let write = |name: &str, text: &str| -> Result<PathBuf, FhirError> {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|error| FhirError::Write { path: p.clone(), error })?;
        Ok(p)
    };
    let model_xml = sbml.with_doses(&m.initial, &imported.doses)?;
    let model = write("model.xml", &model_xml)?;

    // Conditions: the covariates that fix parameters.
    let fixed: Vec<&Covariate> = imported.covariates.iter().filter(|c| c.parameter.is_some()).collect();
    for c in &fixed {
        let p = c.parameter.as_deref().unwrap_or_default();
        if !sbml.has(p)? {
            return Err(FhirError::Map {
                file: map.path.clone(),
                line: m.covariates.iter().find(|x| *x.loinc.get_ref() == c.loinc).map_or(0, |x| map.line(&x.loinc)),
                problem: format!("covariate {} sets '{p}', which is not in {}", c.loinc, model_path.display()),
            });
        }
    }
    let mut t = String::from("conditionId");
    for c in &fixed {
        t += &format!("\t{}", c.parameter.as_deref().unwrap_or_default());
    }
    t += "\npatient";
    for c in &fixed {
        t += &format!("\t{}", num(c.value));
    }
    t += "\n";
    write("conditions.tsv", &t)?;

    // Observables: one row per observable id, in map order.
    let mut t =
        String::from("observableId\tobservableFormula\tobservableTransformation\tnoiseFormula\tnoiseDistribution\n");
    let mut seen: BTreeMap<&str, &crate::map::ObservationMap> = BTreeMap::new();
    for o in &m.observations {
        if let Some(first) = seen.get(o.observable.as_str()) {
            if (&first.formula, &first.unit, &first.noise_formula) != (&o.formula, &o.unit, &o.noise_formula) {
                return Err(map.err(
                    &o.loinc,
                    format!("observable '{}' is mapped twice with different formula, unit or noise", o.observable),
                ));
            }
            continue;
        }
        seen.insert(&o.observable, o);
        let _ = writeln!(t, "{}\t{}\t{}\t{}\t{}", o.observable, o.formula, o.transformation, o.noise_formula, o.noise);
    }
    write("observables.tsv", &t)?;

    let mut t = String::from("observableId\tsimulationConditionId\tmeasurement\ttime\n");
    for r in &imported.measurements {
        let _ = writeln!(t, "{}\tpatient\t{}\t{}", r.observable, num(r.value), num(r.time));
    }
    write("measurements.tsv", &t)?;

    let mut t = String::from("parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n");
    for e in &m.estimate {
        let id = e.id.get_ref();
        let nominal = match e.nominal {
            Some(v) => v,
            None => sbml
                .value(id)?
                .ok_or_else(|| map.err(&e.id, format!("'{id}' has no value in the model: give a nominal")))?,
        };
        let _ = writeln!(t, "{id}\t{}\t{}\t{}\t{}\t1", e.scale, num(e.lower), num(e.upper), num(nominal));
    }
    write("parameters.tsv", &t)?;

    write(
        "problem.yaml",
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files:\n  - conditions.tsv\n  measurement_files:\n  - measurements.tsv\n  observable_files:\n  - observables.tsv\n  sbml_files:\n  - model.xml\n",
    )?;
    let json = serde_json::to_string_pretty(imported)
        .map_err(|e| FhirError::Write { path: out.join("import.json"), error: std::io::Error::other(e) })?;
    write("import.json", &(json + "\n"))?;
    Ok(Written { yaml: out.join("problem.yaml"), model })
}

/// `extract` then `write_petab`.
pub fn import(input: &Path, map: &MapFile, key: &[u8], out: &Path) -> Result<(Imported, Written), FhirError> {
    let imported = extract(input, map, key)?;
    let written = write_petab(&imported, map, out)?;
    Ok((imported, written))
}
