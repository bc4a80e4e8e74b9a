//! Bad PEtab input gets a message naming the file, the line and the column.
//! Each case edits one file of the checked-in Boehm problem.

use std::path::{Path, PathBuf};

use expect_test::{expect, Expect};

const PROBLEM: &str = "Boehm_JProteomeRes2014";

/// Copies the Boehm problem to a fresh folder, replaces the first `from` by
/// `to` in the file whose name starts with `file`, and compares the error.
fn check(case: &str, file: &str, from: &str, to: &str, want: Expect) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(PROBLEM);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fit-errors").join(case);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut edited = false;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with(file) {
            assert!(text.contains(from), "{name} has no '{from}'");
            text = text.replacen(from, to, 1);
            edited = true;
        }
        std::fs::write(dir.join(&name), text).unwrap();
    }
    assert!(edited, "no file starts with {file}");
    let outcome = vht_fit::read(&dir.join(format!("{PROBLEM}.yaml"))).and_then(|p| {
        let nominal = p.nominal();
        vht_fit::Objective::new(p, vht_fit::Settings::default())?.evaluate(&nominal)
    });
    let message = match outcome {
        Ok(v) => format!("no error (objective {})", v.total()),
        Err(e) => e.to_string().replace(&format!("{}/", dir.display()), ""),
    };
    want.assert_eq(&message);
}

#[test]
fn unknown_observable_in_measurements() {
    check(
        "unknown_observable",
        "measurementData",
        "pSTAT5A_rel\t\tmodel1_data1\t66.36",
        "pSTAT5X_rel\t\tmodel1_data1\t66.36",
        expect![
            "measurementData_Boehm_JProteomeRes2014.tsv:3, column 'observableId': unknown observable 'pSTAT5X_rel'"
        ],
    );
}

#[test]
fn measurement_that_is_not_a_number() {
    check(
        "bad_number",
        "measurementData",
        "66.3634939682528",
        "66,36",
        expect!["measurementData_Boehm_JProteomeRes2014.tsv:3, column 'measurement': expected a number, found '66,36'"],
    );
}

#[test]
fn measurement_that_is_nan() {
    check(
        "nan_measurement",
        "measurementData",
        "66.3634939682528",
        "NaN",
        expect![
            "measurementData_Boehm_JProteomeRes2014.tsv:3, column 'measurement': expected a finite number, found 'NaN'"
        ],
    );
}

#[test]
fn negative_time() {
    check(
        "negative_time",
        "measurementData",
        "66.3634939682528\t2.5",
        "66.3634939682528\t-2.5",
        expect![
            "measurementData_Boehm_JProteomeRes2014.tsv:3, column 'time': expected a time >= 0 or inf, found '-2.5'"
        ],
    );
}

#[test]
fn formula_syntax() {
    check(
        "formula_syntax",
        "observables",
        "(100 * pApB + 200",
        "(100 * pApB + * 200",
        expect![[
            r#"observables_Boehm_JProteomeRes2014.tsv:2, column 'observableFormula': in '(100 * pApB + * 200 * pApA * specC17) / (pApB + STAT5A * specC17 + 2 * pApA * specC17)' at character 14: unexpected '*'"#
        ]],
    );
}

#[test]
fn formula_unknown_identifier() {
    check(
        "formula_identifier",
        "observables",
        "noiseParameter1_pSTAT5B_rel",
        "noiseParameter1_pSTAT5B_rel * k_unknown",
        expect![[
            r#"observables_Boehm_JProteomeRes2014.tsv:3, column 'noiseFormula': in 'noiseParameter1_pSTAT5B_rel * k_unknown' at character 30: unknown identifier 'k_unknown'"#
        ]],
    );
}

#[test]
fn unsupported_noise_distribution() {
    check(
        "noise_distribution",
        "observables",
        "lin\tnormal",
        "lin\tpoisson",
        expect![
            "observables_Boehm_JProteomeRes2014.tsv:2, column 'noiseDistribution': expected normal or laplace, found 'poisson'"
        ],
    );
}

#[test]
fn wrong_number_of_noise_parameters() {
    check(
        "override_count",
        "measurementData",
        "\tsd_pSTAT5A_rel\t",
        "\tsd_pSTAT5A_rel;1\t",
        expect!["measurementData_Boehm_JProteomeRes2014.tsv:2, column 'noiseParameters': expected 1 override values, found 2"],
    );
}

#[test]
fn override_with_an_unknown_parameter() {
    check(
        "unknown_parameter",
        "measurementData",
        "\tsd_pSTAT5A_rel\t",
        "\tsd_unknown\t",
        expect![
            "measurementData_Boehm_JProteomeRes2014.tsv:2, column 'noiseParameters': unknown parameter (not in the parameter table) 'sd_unknown'"
        ],
    );
}

#[test]
fn condition_column_that_is_not_in_the_model() {
    check(
        "condition_column",
        "experimentalCondition",
        "conditionName\nmodel1_data1\tcondition1",
        "conditionName\tk_nowhere\nmodel1_data1\tcondition1\t2",
        expect![
            "experimentalCondition_Boehm_JProteomeRes2014.tsv:2, column 'k_nowhere': unknown model entity (condition table column) 'k_nowhere'"
        ],
    );
}

#[test]
fn parameter_scale() {
    check(
        "parameter_scale",
        "parameters",
        "log10\t1E-05\t100000\t0.026982514033029",
        "ln\t1E-05\t100000\t0.026982514033029",
        expect![
            "parameters_Boehm_JProteomeRes2014.tsv:2, column 'parameterScale': expected lin, log or log10, found 'ln'"
        ],
    );
}

#[test]
fn two_models_in_the_yaml() {
    check(
        "two_models",
        PROBLEM,
        "  - model_Boehm_JProteomeRes2014.xml\n",
        "  - model_Boehm_JProteomeRes2014.xml\n  - other.xml\n",
        expect!["Boehm_JProteomeRes2014.yaml:4: exactly one SBML file is supported, found 2"],
    );
}

#[test]
fn missing_required_column() {
    check(
        "missing_column",
        "parameters",
        "nominalValue",
        "nominal",
        expect!["parameters_Boehm_JProteomeRes2014.tsv:1, column 'nominalValue': missing required column"],
    );
}
