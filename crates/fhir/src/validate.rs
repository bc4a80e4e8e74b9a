//! Structural checks of a FHIR R4 Bundle against the base specification, for
//! the resources this crate reads and writes: required elements and their
//! cardinality, required code sets (status, gender, bundle type), LOINC and
//! UCUM system URIs, date formats, and that every reference in the bundle
//! resolves to an entry. Not a full profile validator: it checks what an
//! import relies on, and what a generated example must get right.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::resource::{LOINC, UCUM};

/// The problems found, each naming the JSON path; empty when valid.
pub fn bundle(b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if b.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        out.push("resourceType: expected 'Bundle'".into());
        return out;
    }
    const TYPES: &[&str] = &[
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    ];
    match b.get("type").and_then(Value::as_str) {
        Some(t) if TYPES.contains(&t) => {}
        other => out.push(format!("Bundle.type: expected one of {TYPES:?}, found {other:?}")),
    }
    let entries = b.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
    // What references may point at: fullUrls and Type/id.
    let mut targets = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(u) = e.get("fullUrl").and_then(Value::as_str) {
            if !targets.insert(u.to_string()) {
                out.push(format!("entry[{i}].fullUrl: '{u}' is not unique"));
            }
        }
        if let Some(r) = e.get("resource") {
            if let (Some(t), Some(id)) =
                (r.get("resourceType").and_then(Value::as_str), r.get("id").and_then(Value::as_str))
            {
                targets.insert(format!("{t}/{id}"));
            }
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let path = format!("entry[{i}].resource");
        match e.get("resource") {
            Some(r) => {
                resource(r, &path, &mut out);
                let mut refs = Vec::new();
                references(r, &path, &mut refs);
                for (p, r) in refs {
                    if !r.starts_with('#') && !targets.contains(&r) {
                        out.push(format!("{p}: reference '{r}' does not resolve to an entry of the bundle"));
                    }
                }
            }
            None => out.push(format!("entry[{i}]: no resource")),
        }
    }
    out
}

/// Checks one resource (without resolving its references).
pub fn resource(r: &Value, path: &str, out: &mut Vec<String>) {
    let Some(rt) = r.get("resourceType").and_then(Value::as_str) else {
        out.push(format!("{path}.resourceType: missing"));
        return;
    };
    match r.get("id").and_then(Value::as_str) {
        Some(id) if valid_id(id) => {}
        Some(id) => out.push(format!("{path}.id: '{id}' is not a FHIR id ([A-Za-z0-9-.]{{1,64}})")),
        None => out.push(format!("{path}.id: missing")),
    }
    let mut need = |field: &str| {
        if r.get(field).is_none() {
            out.push(format!("{path}.{field}: required ({rt})"));
        }
    };
    match rt {
        "Patient" => {}
        "Observation" => {
            need("status");
            need("code");
        }
        "MedicationAdministration" => {
            need("status");
            need("subject");
        }
        "MedicationStatement" => {
            need("status");
            need("subject");
        }
        _ => {}
    }
    let code_in = |field: &str, allowed: &[&str], out: &mut Vec<String>| {
        if let Some(v) = r.get(field) {
            match v.as_str() {
                Some(s) if allowed.contains(&s) => {}
                _ => out.push(format!("{path}.{field}: expected one of {allowed:?}, found {v}")),
            }
        }
    };
    let one_of = |fields: &[&str], out: &mut Vec<String>| {
        let n = fields.iter().filter(|f| r.get(**f).is_some()).count();
        if n != 1 {
            out.push(format!("{path}: exactly one of {fields:?} is required, found {n}"));
        }
    };
    match rt {
        "Patient" => {
            code_in("gender", &["male", "female", "other", "unknown"], out);
            if let Some(d) = r.get("birthDate") {
                if !d.as_str().is_some_and(valid_date) {
                    out.push(format!("{path}.birthDate: expected YYYY[-MM[-DD]], found {d}"));
                }
            }
        }
        "Observation" => {
            code_in(
                "status",
                &[
                    "registered",
                    "preliminary",
                    "final",
                    "amended",
                    "corrected",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ],
                out,
            );
            codeable(r.get("code"), &format!("{path}.code"), out);
            if let Some(q) = r.get("valueQuantity") {
                quantity(q, &format!("{path}.valueQuantity"), out);
            }
            effective(r, path, out);
        }
        "MedicationAdministration" | "MedicationStatement" => {
            let statuses: &[&str] = if rt == "MedicationAdministration" {
                &["in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped", "unknown"]
            } else {
                &["active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown", "not-taken"]
            };
            code_in("status", statuses, out);
            one_of(&["medicationCodeableConcept", "medicationReference"], out);
            if let Some(c) = r.get("medicationCodeableConcept") {
                codeable(Some(c), &format!("{path}.medicationCodeableConcept"), out);
            }
            if rt == "MedicationAdministration" {
                one_of(&["effectiveDateTime", "effectivePeriod"], out);
                if let Some(q) = r.get("dosage").and_then(|d| d.get("dose")) {
                    quantity(q, &format!("{path}.dosage.dose"), out);
                }
            } else {
                if let Some(ds) = r.get("dosage").and_then(Value::as_array) {
                    for (i, d) in ds.iter().enumerate() {
                        for (j, dr) in d.get("doseAndRate").and_then(Value::as_array).into_iter().flatten().enumerate()
                        {
                            if let Some(q) = dr.get("doseQuantity") {
                                quantity(q, &format!("{path}.dosage[{i}].doseAndRate[{j}].doseQuantity"), out);
                            }
                        }
                    }
                }
            }
            effective(r, path, out);
        }
        _ => {}
    }
}

fn effective(r: &Value, path: &str, out: &mut Vec<String>) {
    for f in ["effectiveDateTime", "effectiveInstant"] {
        if let Some(v) = r.get(f) {
            if !v.as_str().is_some_and(valid_date_time) {
                out.push(format!("{path}.{f}: expected a FHIR dateTime, found {v}"));
            }
        }
    }
    if let Some(p) = r.get("effectivePeriod") {
        for f in ["start", "end"] {
            if let Some(v) = p.get(f) {
                if !v.as_str().is_some_and(valid_date_time) {
                    out.push(format!("{path}.effectivePeriod.{f}: expected a FHIR dateTime, found {v}"));
                }
            }
        }
    }
}

fn codeable(c: Option<&Value>, path: &str, out: &mut Vec<String>) {
    let Some(c) = c else { return };
    let codings = c.get("coding").and_then(Value::as_array);
    if codings.is_none() && c.get("text").is_none() {
        out.push(format!("{path}: a CodeableConcept needs coding or text"));
    }
    for (i, cd) in codings.into_iter().flatten().enumerate() {
        let system = cd.get("system").and_then(Value::as_str);
        let code = cd.get("code").and_then(Value::as_str);
        if system.is_none() || code.is_none() {
            out.push(format!("{path}.coding[{i}]: system and code expected"));
        }
        if system.is_some_and(|s| s.to_ascii_lowercase().contains("loinc") && s != LOINC) {
            out.push(format!("{path}.coding[{i}].system: LOINC is '{LOINC}', found {system:?}"));
        }
        if system == Some(LOINC) && !code.is_some_and(valid_loinc) {
            out.push(format!("{path}.coding[{i}].code: {code:?} is not a LOINC code with a valid check digit"));
        }
    }
}

fn quantity(q: &Value, path: &str, out: &mut Vec<String>) {
    if !q.get("value").is_some_and(Value::is_number) {
        out.push(format!("{path}.value: expected a number"));
    }
    match (q.get("system").and_then(Value::as_str), q.get("code").and_then(Value::as_str)) {
        (Some(UCUM), Some(code)) if crate::ucum::parse(code).is_err() => {
            out.push(format!("{path}.code: '{code}' is not a UCUM unit this reader knows"));
        }
        (Some(UCUM), _) => {}
        (Some(s), _) if s != UCUM => out.push(format!("{path}.system: UCUM is '{UCUM}', found '{s}'")),
        // A code needs a system (FHIR qty-3).
        (None, Some(_)) => out.push(format!("{path}: a code without a system")),
        _ => {}
    }
}

fn references(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Some(s) = x.as_str() {
                        out.push((format!("{path}.reference"), s.to_string()));
                    }
                } else {
                    references(x, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                references(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn valid_date(s: &str) -> bool {
    let full = match s.len() {
        4 => format!("{s}-01-01"),
        7 => format!("{s}-01"),
        _ => s.to_string(),
    };
    chrono::NaiveDate::parse_from_str(&full, "%Y-%m-%d").is_ok()
}

fn valid_date_time(s: &str) -> bool {
    valid_date(s) || chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// LOINC codes are digits, a dash and a mod-10 check digit.
pub fn valid_loinc(code: &str) -> bool {
    let Some((body, check)) = code.split_once('-') else { return false };
    if body.is_empty() || check.len() != 1 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(check) = check.bytes().next().filter(u8::is_ascii_digit) else { return false };
    // Luhn over the body digits (LOINC's published check-digit algorithm).
    let digits: Vec<u32> = body.bytes().map(|b| (b - b'0') as u32).collect();
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let v = if i % 2 == 0 { d * 2 } else { *d };
        sum += v / 10 + v % 10;
    }
    (10 - sum % 10) % 10 == (check - b'0') as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn loinc_check_digits() {
        for c in ["2339-0", "14749-6", "20448-7", "4548-4", "29463-7"] {
            assert!(super::valid_loinc(c), "{c}");
        }
        assert!(!super::valid_loinc("2339-1"));
        assert!(!super::valid_loinc("2339"));
    }
}
