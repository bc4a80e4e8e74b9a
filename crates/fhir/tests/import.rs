//! The synthetic patient end to end through the importer: the bundle is
//! valid FHIR R4, the PEtab problem loads and evaluates, nothing that
//! identifies the patient reaches an output file, and bad input is named.

use std::path::{Path, PathBuf};

use vht_fhir::synth::{self, SynthConfig};
use vht_fhir::{FhirError, MapFile};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vht-fhir-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn map() -> MapFile {
    MapFile::read(&root().join("examples/twins/map.toml")).unwrap()
}

fn patient(dir: &Path) -> (PathBuf, PathBuf, synth::Synthetic) {
    let cfg = SynthConfig::patient_001(root().join("examples/models/dallaman2007_meal.xml"));
    let s = synth::generate(&cfg).unwrap();
    let (b, h) = (dir.join("patient.json"), dir.join("heldback.ndjson"));
    synth::write(&s, &b, &h, &dir.join("truth.tsv")).unwrap();
    (b, h, s)
}

#[test]
fn synthetic_bundle_is_valid_fhir_r4() {
    let dir = temp("valid");
    let (_, _, s) = patient(&dir);
    let problems = vht_fhir::validate::bundle(&s.bundle);
    assert!(problems.is_empty(), "{problems:#?}");
    for (i, r) in s.held_back.iter().enumerate() {
        let mut p = Vec::new();
        vht_fhir::validate::resource(r, &format!("line {}", i + 1), &mut p);
        assert!(p.is_empty(), "{p:#?}");
    }
    // The validator does find what it checks for.
    let mut broken = s.bundle.clone();
    broken["entry"][1]["resource"]["subject"]["reference"] = "Patient/nobody".into();
    broken["entry"][1]["resource"]["code"]["coding"][0]["system"] = "http://loinc.org/".into();
    broken["entry"][1]["resource"]["valueQuantity"]["system"] = "http://unitsofmeasure.org/ucum".into();
    broken["entry"][1]["resource"].as_object_mut().unwrap().remove("status");
    let p = vht_fhir::validate::bundle(&broken);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(p.iter().any(|m| m.contains("does not resolve")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("LOINC is")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("UCUM is")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("status: required")), "{p:#?}");
}

#[test]
fn import_writes_a_petab_problem_without_identifiers() {
    let dir = temp("import");
    let (bundle, _, s) = patient(&dir);
    let out = dir.join("petab");
    let (imported, written) = vht_fhir::import(&bundle, &map(), b"test key", &out).unwrap();

    // Before the held-back lunch: 12 glucose and 7 insulin samples, one drink at 10 min.
    let n = |o: &str| imported.measurements.iter().filter(|m| m.observable == o).count();
    assert_eq!((n("glucose"), n("insulin")), (12, 7));
    assert_eq!(imported.doses.len(), 1);
    assert_eq!((imported.doses[0].time, imported.doses[0].amount), (0.0, 75000.0));
    let bw = imported.covariates.iter().find(|c| c.loinc == "29463-7").unwrap();
    assert!((bw.value - 92.0).abs() < 0.05, "body weight {} kg from pounds", bw.value);
    let a1c = imported.covariates.iter().find(|c| c.loinc == "4548-4").unwrap();
    assert!((a1c.value - (6.1 - 2.152) / 0.09148).abs() < 1e-9, "HbA1c {} mmol/mol", a1c.value);
    assert!(imported.warnings.iter().any(|w| w.contains("6809")), "{:?}", imported.warnings);
    assert_eq!(imported.age_years, Some(54));
    // mmol/L readings come back in mg/dL close to the truth.
    for m in imported.measurements.iter().filter(|m| m.loinc == "14749-6") {
        let t = s.truth.iter().find(|(o, t, _)| o == "glucose" && *t == m.time).unwrap().2;
        assert!((m.value - t).abs() < 6.0 * (2.0 + 0.03 * t), "{} mg/dL against {t}", m.value);
    }

    // The problem loads and evaluates.
    let problem = vht_fit::read(&written.yaml).unwrap();
    assert_eq!(problem.measurements.len(), 19);
    let nominal = problem.nominal();
    let objective = vht_fit::Objective::new(problem, vht_fit::Settings::default()).unwrap();
    let v = objective.evaluate(&nominal).unwrap().total();
    assert!(v.is_finite(), "{v}");

    // No direct identifier of the Patient reaches any output file.
    let p = &s.bundle["entry"][0]["resource"];
    let mut secrets: Vec<String> = vec![
        p["id"].as_str().unwrap().into(),
        p["identifier"][0]["value"].as_str().unwrap().into(),
        p["birthDate"].as_str().unwrap().into(),
        p["telecom"][0]["value"].as_str().unwrap().into(),
        "dizzy".into(),
        "2026-03-02".into(),
    ];
    for n in p["name"][0]["given"].as_array().unwrap() {
        secrets.push(n.as_str().unwrap().into());
    }
    secrets.push(p["name"][0]["family"].as_str().unwrap().into());
    for f in ["city", "postalCode"] {
        secrets.push(p["address"][0][f].as_str().unwrap().into());
    }
    secrets.push(p["address"][0]["line"][0].as_str().unwrap().into());
    let mut files = 0;
    for e in std::fs::read_dir(&out).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        files += 1;
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{} contains '{s}'", path.display());
        }
    }
    assert_eq!(files, 7);
    // The pseudonym is the keyed hash, and depends on the key.
    assert_eq!(
        imported.pseudonym,
        vht_fhir::pseudonym(b"test key", "http://hospital.example.org/mrn", "MRN-4821-7730")
    );
    assert_ne!(
        imported.pseudonym,
        vht_fhir::pseudonym(b"other key", "http://hospital.example.org/mrn", "MRN-4821-7730")
    );
}

#[test]
fn held_back_ndjson_reads_with_the_bundle_patient() {
    let dir = temp("ndjson");
    let (bundle, held, _) = patient(&dir);
    // NDJSON on its own has no Patient: the importer says so.
    let e = vht_fhir::extract(&held, &map(), b"k").unwrap_err();
    assert!(e.to_string().contains("no Patient resource"), "{e}");
    // With the patient line prepended, the held-back data import.
    let bundle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let patient = bundle["entry"][0]["resource"].to_string();
    let both = dir.join("both.ndjson");
    std::fs::write(&both, format!("{patient}\n{}", std::fs::read_to_string(&held).unwrap())).unwrap();
    let imported = vht_fhir::extract(&both, &map(), b"k").unwrap();
    assert_eq!(imported.measurements.len(), 20);
    assert_eq!(imported.doses.len(), 1);
}

#[test]
fn bad_input_is_named() {
    let dir = temp("bad");
    let p = r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"s","value":"v"}]}"#;
    let obs = |code: &str, unit: &str| {
        format!(
            r#"{{"resourceType":"Observation","id":"o1","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"{code}"}}]}},"subject":{{"reference":"Patient/p1"}},"effectiveDateTime":"2026-01-01T08:00:00Z","valueQuantity":{{"value":5,"system":"http://unitsofmeasure.org","code":"{unit}"}}}}"#
        )
    };
    let mut map = map();
    map.map.time_origin = vht_fhir::map::TimeOrigin::FirstObservation;
    let map = || map.clone();
    // A line that is not JSON: file and line.
    let f = dir.join("a.ndjson");
    std::fs::write(&f, format!("{p}\n{{oops\n")).unwrap();
    let e = vht_fhir::extract(&f, &map(), b"k").unwrap_err();
    assert!(matches!(e, FhirError::Json { line: 2, .. }), "{e}");

    // A unit that cannot become the model's: both units named, with the resource.
    std::fs::write(&f, format!("{p}\n{}\n", obs("2339-0", "kg"))).unwrap();
    let e = vht_fhir::extract(&f, &map(), b"k").unwrap_err().to_string();
    assert!(
        e.contains("a.ndjson:2") && e.contains("'kg'") && e.contains("'mg/dL'") && e.contains("Observation/o1"),
        "{e}"
    );

    // An unknown LOINC code: a warning, or an error when strict.
    std::fs::write(&f, format!("{p}\n{}\n{}\n", obs("8867-4", "/min"), obs("2339-0", "mg/dL"))).unwrap();
    let w = vht_fhir::extract(&f, &map(), b"k").unwrap().warnings;
    assert!(w.len() == 1 && w[0].contains("8867-4"), "{w:?}");
    let mut strict = map();
    strict.map.strict = true;
    let e = vht_fhir::extract(&f, &strict, b"k").unwrap_err();
    assert!(matches!(&e, FhirError::UnknownCode { code, at } if code == "8867-4" && at.line == 2), "{e}");

    // A missing field: the JSON path and the resource.
    std::fs::write(&f, format!("{p}\n{}\n", obs("2339-0", "mg/dL").replace(r#""value":5,"#, ""))).unwrap();
    let e = vht_fhir::extract(&f, &map(), b"k").unwrap_err().to_string();
    assert!(e.contains("valueQuantity.value") && e.contains("Observation/o1"), "{e}");

    // An empty key file is refused.
    let k = dir.join("key");
    std::fs::write(&k, "\n").unwrap();
    assert!(matches!(vht_fhir::key(Some(&k)), Err(FhirError::EmptyKey { .. })));
}

#[test]
fn fixed_time_origin_and_birth_year() {
    let dir = temp("origin");
    let (bundle, _, _) = patient(&dir);
    let mut m = map();
    m.map.time_origin = vht_fhir::map::TimeOrigin::Fixed { at: "2026-03-02T06:00:00Z".into() };
    m.map.birth_date = vht_fhir::map::BirthDate::Year;
    let imported = vht_fhir::extract(&bundle, &m, b"k").unwrap();
    // 08:00 at +01:00 is 07:00 UTC: one hour after the origin, in minutes.
    assert_eq!(imported.doses[0].time, 60.0);
    assert_eq!(imported.measurements[0].time, 60.0);
    assert_eq!((imported.birth_year, imported.age_years), (Some(1971), None));
    m.map.birth_date = vht_fhir::map::BirthDate::None;
    let imported = vht_fhir::extract(&bundle, &m, b"k").unwrap();
    assert_eq!((imported.birth_year, imported.age_years), (None, None));
}
