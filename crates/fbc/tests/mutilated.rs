//! Mutilated copies of suite models must give an answer or an error, never a panic.
//!
//! Deterministic: every attribute value of two models (fbc v1 and v2) is
//! replaced in turn by each of a few hostile values, and the documents are
//! truncated at regular offsets.

use std::path::Path;

const HOSTILE: [&str; 7] = ["", "x", "NaN", "INF", "-INF", "1e400", "-1e308"];

fn model(case: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{case}/{case}-sbml-l3v1.xml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Byte ranges of every attribute value (between the quotes after `="`).
fn attribute_values(xml: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = xml[from..].find("=\"") {
        let start = from + i + 2;
        let Some(len) = xml[start..].find('"') else {
            break;
        };
        out.push((start, start + len));
        from = start + len + 1;
    }
    out
}

#[test]
fn hostile_attribute_values_never_panic() {
    let mut errors = 0;
    let mut solved = 0;
    for case in ["01186", "01617", "01623"] {
        let xml = model(case);
        for (start, end) in attribute_values(&xml) {
            for value in HOSTILE {
                let mutated = format!("{}{value}{}", &xml[..start], &xml[end..]);
                match vht_fbc::solve_str(&mutated) {
                    Ok(_) => solved += 1,
                    Err(_) => errors += 1,
                }
            }
        }
    }
    // Most attributes (names, metaids, units) do not matter to FBA; a bound,
    // stoichiometry or reference that does must have been refused somewhere.
    println!("{solved} mutated documents solved, {errors} refused");
    assert!(errors > 100, "only {errors} mutations were refused");
    assert!(solved > 1000, "only {solved} mutations were solved");
}

#[test]
fn truncated_documents_are_errors() {
    let xml = model("01617");
    let mut offset = 0;
    while offset < xml.len() {
        if xml.is_char_boundary(offset) {
            let result = vht_fbc::solve_str(&xml[..offset]);
            assert!(result.is_err(), "a document cut at byte {offset} was solved");
        }
        offset += 97;
    }
}
