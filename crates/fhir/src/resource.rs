//! Reading FHIR R4 JSON: a Bundle, a single resource, or bulk-data NDJSON
//! (one resource per line), and extracting the few resources and fields an
//! import needs into plain records that remember where they came from.
//!
//! Only fields that feed the model are extracted. Names, addresses, telecom,
//! narrative text, notes and display strings are never copied into a record,
//! so nothing downstream can write them out by accident.

use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::Value;

use crate::{FhirError, Loc};

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// One resource and where it is: line (NDJSON; 0 in a bundle) and the JSON
/// path of the resource inside its document.
#[derive(Clone, Debug)]
pub struct Located {
    pub json: Value,
    pub line: usize,
    pub path: String,
    /// The bundle entry's `fullUrl`, which references may use.
    pub full_url: Option<String>,
}

/// Reads every resource of a Bundle, of one resource, or of an NDJSON file.
pub fn read(file: &Path) -> Result<Vec<Located>, FhirError> {
    let text = std::fs::read_to_string(file).map_err(|error| FhirError::Io { path: file.to_path_buf(), error })?;
    // One JSON document (a bundle is usually pretty-printed over many lines)
    // or, failing that, one document per line.
    if let Ok(doc) = serde_json::from_str::<Value>(&text) {
        if doc.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            let entries = match doc.get("entry") {
                None => return Ok(Vec::new()),
                Some(Value::Array(a)) => a,
                Some(_) => {
                    let at = Loc { file: file.to_path_buf(), line: 0, path: "Bundle".into(), resource: String::new() };
                    return Err(FhirError::field(&at, "entry", "an array"));
                }
            };
            return entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let path = format!("entry[{i}].resource");
                    let at =
                        Loc { file: file.to_path_buf(), line: 0, path: format!("entry[{i}]"), resource: String::new() };
                    let json =
                        e.get("resource").cloned().ok_or_else(|| FhirError::field(&at, "resource", "an object"))?;
                    let full_url = e.get("fullUrl").and_then(Value::as_str).map(str::to_string);
                    Ok(Located { json, line: 0, path, full_url })
                })
                .collect();
        }
        return Ok(vec![Located { json: doc, line: 0, path: String::new(), full_url: None }]);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let json: Value = serde_json::from_str(line).map_err(|e| FhirError::Json {
            file: file.to_path_buf(),
            line: i + 1,
            error: e.to_string(),
        })?;
        out.push(Located { json, line: i + 1, path: String::new(), full_url: None });
    }
    Ok(out)
}

/// A field reader over one resource that names the file, line, JSON path
/// and resource id in every error.
pub struct Ctx<'a> {
    pub file: &'a Path,
    pub r: &'a Located,
}

impl Ctx<'_> {
    pub fn resource_type(&self) -> &str {
        self.r.json.get("resourceType").and_then(Value::as_str).unwrap_or("")
    }
    pub fn id(&self) -> String {
        let id = self.r.json.get("id").and_then(Value::as_str).unwrap_or("?");
        format!("{}/{id}", self.resource_type())
    }
    pub fn loc(&self, field: &str) -> Loc {
        let path = match (self.r.path.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => self.r.path.clone(),
            (false, false) => format!("{}.{field}", self.r.path),
        };
        Loc { file: self.file.to_path_buf(), line: self.r.line, path, resource: self.id() }
    }
    pub fn err(&self, field: &str, expected: &str) -> FhirError {
        FhirError::field(&self.loc(field), field, expected)
    }
}

/// A FHIR Quantity: value and UCUM code.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
}

/// Reads a Quantity at `field` of `v`. The unit is the UCUM `code` when the
/// system is UCUM; a quantity without system and code falls back to `unit`
/// (which many producers fill with the UCUM code anyway).
pub fn quantity(ctx: &Ctx, v: &Value, field: &str) -> Result<Quantity, FhirError> {
    let q = v.get(field).ok_or_else(|| ctx.err(field, "a Quantity"))?;
    let value = q.get("value").and_then(Value::as_f64).ok_or_else(|| ctx.err(&format!("{field}.value"), "a number"))?;
    if !value.is_finite() {
        return Err(ctx.err(&format!("{field}.value"), "a finite number"));
    }
    let system = q.get("system").and_then(Value::as_str);
    let code = q.get("code").and_then(Value::as_str);
    // The UCUM code when the system is UCUM; without a system, the code or
    // the human-readable unit (which producers usually fill with the code).
    let unit = match system {
        Some(s) if s != UCUM => {
            return Err(ctx.err(&format!("{field}.system"), &format!("'{UCUM}' (UCUM), found '{s}'")));
        }
        Some(_) => code.map(str::to_string).ok_or_else(|| ctx.err(&format!("{field}.code"), "a UCUM unit code"))?,
        None => code
            .or_else(|| q.get("unit").and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| ctx.err(&format!("{field}.code"), "a UCUM unit code"))?,
    };
    Ok(Quantity { value, unit })
}

/// Parses a FHIR dateTime (or instant) that has a time of day and offset.
pub fn date_time(ctx: &Ctx, field: &str, s: &str) -> Result<DateTime<FixedOffset>, FhirError> {
    DateTime::parse_from_rfc3339(s).map_err(|_| {
        ctx.err(field, &format!("a dateTime with time and time zone (e.g. 2026-01-05T08:00:00+01:00), found '{s}'"))
    })
}

/// `effectiveDateTime`, or the start of `effectivePeriod`.
pub fn effective(ctx: &Ctx) -> Result<DateTime<FixedOffset>, FhirError> {
    let j = &ctx.r.json;
    if let Some(v) = j.get("effectiveDateTime") {
        let s = v.as_str().ok_or_else(|| ctx.err("effectiveDateTime", "a string"))?;
        return date_time(ctx, "effectiveDateTime", s);
    }
    if let Some(p) = j.get("effectivePeriod") {
        let s = p.get("start").and_then(Value::as_str).ok_or_else(|| ctx.err("effectivePeriod.start", "a dateTime"))?;
        return date_time(ctx, "effectivePeriod.start", s);
    }
    if let Some(v) = j.get("effectiveInstant") {
        let s = v.as_str().ok_or_else(|| ctx.err("effectiveInstant", "a string"))?;
        return date_time(ctx, "effectiveInstant", s);
    }
    Err(ctx.err("effectiveDateTime", "a time (effectiveDateTime or effectivePeriod.start)"))
}

/// `(system, code)` pairs of a CodeableConcept.
pub fn codings(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(list) = v.and_then(|c| c.get("coding")).and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            Some((c.get("system").and_then(Value::as_str).unwrap_or("").to_string(), code.to_string()))
        })
        .collect()
}

/// The patient of an import, with only what may be used: the identifier
/// (to be pseudonymised) and the birth date (reduced to year or age).
#[derive(Clone, Debug)]
pub struct Patient {
    pub id: String,
    pub full_url: Option<String>,
    pub identifier: (String, String),
    pub birth_date: Option<NaiveDate>,
    pub at: Loc,
}

pub fn patient(ctx: &Ctx) -> Result<Patient, FhirError> {
    let j = &ctx.r.json;
    let id = j.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    // The official identifier if there is one, else the first; a patient
    // without identifiers is keyed by its resource id.
    let identifier = match j.get("identifier").and_then(Value::as_array) {
        Some(ids) if !ids.is_empty() => {
            let pick = ids.iter().position(|i| i.get("use").and_then(Value::as_str) == Some("official")).unwrap_or(0);
            let i = &ids[pick];
            let value = i
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ctx.err(&format!("identifier[{pick}].value"), "a string"))?;
            (i.get("system").and_then(Value::as_str).unwrap_or("").to_string(), value.to_string())
        }
        _ if !id.is_empty() => ("urn:fhir:Patient.id".to_string(), id.clone()),
        _ => return Err(ctx.err("identifier", "an identifier or a resource id")),
    };
    let birth_date = match j.get("birthDate") {
        None => None,
        Some(v) => {
            let s = v.as_str().ok_or_else(|| ctx.err("birthDate", "a date"))?;
            // FHIR dates may be partial (year, year-month): keep what is given.
            let full = match s.len() {
                4 => format!("{s}-01-01"),
                7 => format!("{s}-01"),
                _ => s.to_string(),
            };
            Some(
                NaiveDate::parse_from_str(&full, "%Y-%m-%d")
                    .map_err(|_| ctx.err("birthDate", &format!("a date YYYY[-MM[-DD]], found '{s}'")))?,
            )
        }
    };
    Ok(Patient { id, full_url: ctx.r.full_url.clone(), identifier, birth_date, at: ctx.loc("") })
}

/// An Observation with a quantity value.
#[derive(Clone, Debug)]
pub struct Observation {
    pub codes: Vec<(String, String)>,
    pub value: Quantity,
    pub time: DateTime<FixedOffset>,
    pub subject: Option<String>,
    pub at: Loc,
}

/// `None` when the observation carries no value to use (status
/// entered-in-error or cancelled, or a data-absent reason), with the reason.
pub fn observation(ctx: &Ctx) -> Result<Result<Observation, String>, FhirError> {
    let j = &ctx.r.json;
    let status = j.get("status").and_then(Value::as_str).ok_or_else(|| ctx.err("status", "a status code"))?;
    if matches!(status, "entered-in-error" | "cancelled") {
        return Ok(Err(format!("status '{status}'")));
    }
    if j.get("valueQuantity").is_none() {
        if j.get("dataAbsentReason").is_some() {
            return Ok(Err("no value (dataAbsentReason)".into()));
        }
        return Err(ctx.err("valueQuantity", "a Quantity (other value types are not used)"));
    }
    let codes = codings(j.get("code"));
    if codes.is_empty() {
        return Err(ctx.err("code.coding", "at least one coding"));
    }
    Ok(Ok(Observation {
        codes,
        value: quantity(ctx, j, "valueQuantity")?,
        time: effective(ctx)?,
        subject: reference(j.get("subject")),
        at: ctx.loc(""),
    }))
}

/// A MedicationAdministration or MedicationStatement with a dose.
#[derive(Clone, Debug)]
pub struct Dose {
    pub codes: Vec<(String, String)>,
    pub dose: Quantity,
    pub time: DateTime<FixedOffset>,
    pub subject: Option<String>,
    pub at: Loc,
}

pub fn dose(ctx: &Ctx) -> Result<Result<Dose, String>, FhirError> {
    let j = &ctx.r.json;
    let status = j.get("status").and_then(Value::as_str).ok_or_else(|| ctx.err("status", "a status code"))?;
    if matches!(status, "entered-in-error" | "not-done" | "not-taken" | "stopped" | "intended") {
        return Ok(Err(format!("status '{status}'")));
    }
    if j.get("medicationReference").is_some() && j.get("medicationCodeableConcept").is_none() {
        return Err(
            ctx.err("medicationCodeableConcept", "a code (medicationReference is not resolved by this importer)")
        );
    }
    let codes = codings(j.get("medicationCodeableConcept"));
    if codes.is_empty() {
        return Err(ctx.err("medicationCodeableConcept.coding", "at least one coding"));
    }
    let dose = if ctx.resource_type() == "MedicationAdministration" {
        let field = "dosage.dose";
        let d = j.get("dosage").ok_or_else(|| ctx.err(field, "a dose Quantity"))?;
        quantity(ctx, d, "dose").map_err(|_| ctx.err(field, "a dose Quantity with value and UCUM unit"))?
    } else {
        let field = "dosage[0].doseAndRate[0].doseQuantity";
        let d = j
            .get("dosage")
            .and_then(|d| d.get(0))
            .and_then(|d| d.get("doseAndRate"))
            .and_then(|d| d.get(0))
            .ok_or_else(|| ctx.err(field, "a dose Quantity"))?;
        quantity(ctx, d, "doseQuantity").map_err(|_| ctx.err(field, "a dose Quantity with value and UCUM unit"))?
    };
    Ok(Ok(Dose { codes, dose, time: effective(ctx)?, subject: reference(j.get("subject")), at: ctx.loc("") }))
}

fn reference(v: Option<&Value>) -> Option<String> {
    v?.get("reference")?.as_str().map(str::to_string)
}
