//! Messages for bad input: each names the file, the line or element, and
//! what is wrong. Snapshots (`UPDATE_EXPECT=1 cargo test -p vht-lower`).

use std::path::Path;

use expect_test::{expect, Expect};

fn check(xml: &str, expect: Expect) {
    let got = match vht_lower::load_str(xml, Some(Path::new("dir/model.xml"))) {
        Ok((m, diags)) => {
            let d: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            format!("ok: {} symbols; {}", m.symbols.len(), d.join("; "))
        }
        Err(e) => e.to_string(),
    };
    expect.assert_eq(&got);
}

/// An L3V2 document around the given model content.
fn l3(body: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="m">
{body}
  </model>
</sbml>"#
    )
}

const MATH: &str = r#"xmlns="http://www.w3.org/1998/Math/MathML""#;

#[test]
fn not_xml() {
    check("<sbml><model>", expect!["model.xml:1: not well-formed XML: the root node was opened but never closed"]);
}

#[test]
fn not_sbml() {
    check("<html/>", expect!["model.xml: not an SBML document (the root element is <html>, expected <sbml>)"]);
}

#[test]
fn unsupported_required_package() {
    check(
        r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1"
  xmlns:spatial="http://www.sbml.org/sbml/level3/version1/spatial/version1" spatial:required="true"><model/></sbml>"#,
        expect!["package 'spatial' is not supported (model.xml line 1)"],
    );
}

#[test]
fn optional_package_is_a_warning() {
    check(
        r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1"
  xmlns:layout="http://www.sbml.org/sbml/level3/version1/layout/version1" layout:required="false"><model/></sbml>"#,
        expect![
            "ok: 0 symbols; model.xml:1: warning: package 'layout' is not used in simulation: its elements are ignored"
        ],
    );
}

#[test]
fn undefined_species_in_reaction() {
    check(
        &l3(r#"<listOfReactions><reaction id="R1" reversible="false">
  <listOfReactants><speciesReference species="S9" stoichiometry="1" constant="true"/></listOfReactants>
</reaction></listOfReactions>"#),
        expect!["model.xml: reaction 'R1' refers to undefined species 'S9'"],
    );
}

#[test]
fn undefined_identifier_in_math() {
    check(
        &l3(&format!(
            r#"<listOfParameters><parameter id="p" constant="false"/></listOfParameters>
<listOfRules><assignmentRule variable="p"><math {MATH}><ci> q </ci></math></assignmentRule></listOfRules>"#
        )),
        expect!["model.xml: assignment rule for 'p' refers to undefined identifier 'q'"],
    );
}

#[test]
fn assignment_cycle() {
    check(
        &l3(&format!(
            r#"<listOfParameters><parameter id="a" constant="false"/><parameter id="b" constant="false"/></listOfParameters>
<listOfRules>
  <assignmentRule variable="a"><math {MATH}><ci> b </ci></math></assignmentRule>
  <assignmentRule variable="b"><math {MATH}><apply><plus/><ci> a </ci><cn> 1 </cn></apply></math></assignmentRule>
</listOfRules>"#
        )),
        expect!["model.xml: assignments form a cycle: a -> b -> a"],
    );
}

#[test]
fn two_rules_for_one_variable() {
    check(
        &l3(&format!(
            r#"<listOfParameters><parameter id="a" value="1" constant="false"/></listOfParameters>
<listOfRules>
  <assignmentRule variable="a"><math {MATH}><cn> 1 </cn></math></assignmentRule>
  <rateRule variable="a"><math {MATH}><cn> 1 </cn></math></rateRule>
</listOfRules>"#
        )),
        expect!["model.xml: 'a' is determined twice: by an assignment rule (line 6) and by a rate rule (line 7)"],
    );
}

#[test]
fn algebraic_rule_without_unknown() {
    check(
        &l3(&format!(
            r#"<listOfParameters><parameter id="a" value="1" constant="true"/></listOfParameters>
<listOfRules><algebraicRule><math {MATH}><ci> a </ci></math></algebraicRule></listOfRules>"#
        )),
        expect!["model.xml: algebraic rule 1 (line 5) has no unknown left to determine (the model is overdetermined)"],
    );
}

#[test]
fn apply_without_operator() {
    check(
        &l3(&format!(
            r#"<listOfParameters><parameter id="a" constant="false"/></listOfParameters>
<listOfInitialAssignments><initialAssignment symbol="a"><math {MATH}><apply/></math></initialAssignment></listOfInitialAssignments>"#
        )),
        expect!["model.xml:5: <apply> has no operator"],
    );
}

#[test]
fn missing_required_attribute() {
    check(
        &l3(r#"<listOfSpecies><species id="S" initialAmount="1"/></listOfSpecies>"#),
        expect!["model.xml:4: <species> 'S' is missing required attribute 'compartment'"],
    );
}

#[test]
fn bad_number() {
    check(
        &l3(r#"<listOfParameters><parameter id="k" value="1.2.3" constant="true"/></listOfParameters>"#),
        expect!["model.xml:4: <parameter> 'k' attribute 'value': '1.2.3' is not a number"],
    );
}

#[test]
fn function_calls() {
    let f = format!(
        r#"<listOfFunctionDefinitions>
  <functionDefinition id="f"><math {MATH}><lambda><bvar><ci>x</ci></bvar><apply><ci> g </ci><ci> x </ci></apply></lambda></math></functionDefinition>
  <functionDefinition id="g"><math {MATH}><lambda><bvar><ci>x</ci></bvar><apply><ci> f </ci><ci> x </ci></apply></lambda></math></functionDefinition>
</listOfFunctionDefinitions>
<listOfParameters><parameter id="p" constant="false"/></listOfParameters>"#
    );
    let with_rule = |call: &str| {
        l3(&format!(
            r#"{f}<listOfRules><assignmentRule variable="p"><math {MATH}>{call}</math></assignmentRule></listOfRules>"#
        ))
    };
    check(
        &with_rule("<apply><ci> f </ci><cn>1</cn></apply>"),
        expect!["model.xml: function 'f' calls itself (directly or through others)"],
    );
    check(
        &with_rule("<apply><ci> f </ci><cn>1</cn><cn>2</cn></apply>"),
        expect!["model.xml: assignment rule for 'p' calls 'f' with 2 arguments, expected 1"],
    );
    check(
        &with_rule("<apply><ci> h </ci><cn>1</cn></apply>"),
        expect!["model.xml: assignment rule for 'p' calls undefined function 'h'"],
    );
}

#[test]
fn event_cannot_assign_a_reaction() {
    check(
        &l3(&format!(
            r#"<listOfReactions><reaction id="R" reversible="false"/></listOfReactions>
<listOfEvents><event id="E" useValuesFromTriggerTime="true">
  <trigger initialValue="true" persistent="true"><math {MATH}><true/></math></trigger>
  <listOfEventAssignments><eventAssignment variable="R"><math {MATH}><cn>1</cn></math></eventAssignment></listOfEventAssignments>
</event></listOfEvents>"#
        )),
        expect!["model.xml: event 'E' cannot set 'R', which is a reaction"],
    );
}

#[test]
fn missing_file() {
    let err = vht_lower::load(Path::new("/nonexistent/model.xml")).map(|_| ()).unwrap_err();
    expect!["/nonexistent/model.xml: No such file or directory (os error 2)"].assert_eq(&err.to_string());
}

/// Truncated and corrupted versions of the sample cases give errors or
/// models, never panics.
#[test]
fn mangled_input_never_panics() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "sample cases missing from {}", data.display());
    let mut outcomes = (0, 0);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut variants: Vec<String> = Vec::new();
        // Cut at many points (on char boundaries).
        for cut in (0..text.len()).step_by(89).filter(|&c| text.is_char_boundary(c)) {
            variants.push(text[..cut].to_string());
        }
        // Replace each attribute value in turn by something of the wrong kind.
        let mut start = 0;
        while let Some(pos) = text[start..].find("=\"") {
            let at = start + pos + 2;
            if let Some(len) = text[at..].find('"') {
                for junk in ["", "x", "-1", "NaN", "1e999"] {
                    variants.push(format!("{}{}{}", &text[..at], junk, &text[at + len..]));
                }
            }
            start = at;
        }
        // Drop each element's name (so <ci> becomes <x>, <apply> becomes <x>...).
        for (i, _) in text.match_indices("<c").take(40) {
            variants.push(format!("{}<x{}", &text[..i], &text[i + 2..]).replacen("</c", "</x", 1));
        }
        for v in &variants {
            match vht_lower::load_str(v, Some(f)) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    outcomes.1 += 1
                }
            }
        }
    }
    // Both outcomes occur: the corruptions are not all harmless or all fatal.
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

/// Deep nesting is an error, not a stack overflow, in the reader and once
/// function bodies are inlined (this test runs on a 2 MB test thread).
#[test]
fn deep_nesting() {
    let nest = |depth: usize, inner: &str| {
        let mut m = inner.to_string();
        for _ in 0..depth {
            m = format!("<apply><minus/>{m}</apply>");
        }
        m
    };
    let model = |body: &str, call: &str| {
        l3(&format!(
            r#"<listOfFunctionDefinitions><functionDefinition id="f"><math {MATH}><lambda><bvar><ci>x</ci></bvar>{body}</lambda></math></functionDefinition></listOfFunctionDefinitions>
<listOfParameters><parameter id="p" constant="true"/></listOfParameters>
<listOfInitialAssignments><initialAssignment symbol="p"><math {MATH}>{call}</math></initialAssignment></listOfInitialAssignments>"#
        ))
    };
    let calls = |n: usize| {
        let mut c = "<cn>1</cn>".to_string();
        for _ in 0..n {
            c = format!("<apply><ci>f</ci>{c}</apply>");
        }
        c
    };
    check(
        &model("<ci>x</ci>", &nest(300, "<cn>1</cn>")),
        expect!["model.xml:6: <apply> is nested more than 256 levels deep"],
    );
    check(&model(&nest(200, "<ci>x</ci>"), &calls(1)), expect!["ok: 1 symbols; "]);
    check(&model("<ci>x</ci>", &calls(200)), expect!["ok: 1 symbols; "]);
    check(
        &model(&nest(200, "<ci>x</ci>"), &calls(2)),
        expect!["model.xml: initial assignment for 'p': the expression is nested more than 256 levels deep once functions are inlined"],
    );
}

#[test]
fn duplicate_ids() {
    check(
        &l3(r#"<listOfCompartments><compartment id="x" size="1" constant="true"/></listOfCompartments>
<listOfParameters><parameter id="x" value="1" constant="true"/></listOfParameters>"#),
        expect!["model.xml: the id 'x' is defined twice"],
    );
    check(
        &l3(&format!(
            r#"<listOfFunctionDefinitions><functionDefinition id="k"><math {MATH}><lambda><cn>1</cn></lambda></math></functionDefinition></listOfFunctionDefinitions>
<listOfParameters><parameter id="k" value="1" constant="true"/></listOfParameters>"#
        )),
        expect!["model.xml: the id 'k' is defined twice"],
    );
}
