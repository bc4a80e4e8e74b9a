//! Unit tests (one `check` helper, snapshots of the flattened model) and the
//! structural conformance walk over the SBML Test Suite's comp cases.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use expect_test::{expect, Expect};

use super::{flatten, CompError};

const HEAD: &str = r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" xmlns:comp="http://www.sbml.org/sbml/level3/version1/comp/version1" level="3" version="1" comp:required="true">"#;

/// Wraps `body` (the inside of <sbml>) in a comp document, flattens it and
/// compares the resulting <model> with the snapshot.
fn check(body: &str, expect: Expect) {
    let xml = format!("{HEAD}{body}</sbml>");
    let flat = match flatten(&xml, None) {
        Ok(f) => f,
        Err(e) => panic!("flatten failed: {e}"),
    };
    // The <model> element, dedented to the left margin.
    let model_start = flat.find("<model").unwrap_or(0);
    let model = flat[model_start..].trim_end().trim_end_matches("</sbml>").trim_end();
    let lines: Vec<&str> = model.lines().map(|l| l.strip_prefix("  ").unwrap_or(l)).collect();
    expect.assert_eq(&lines.join("\n"));
}

fn check_err(body: &str, expect: Expect) {
    let xml = format!("{HEAD}{body}</sbml>");
    match flatten(&xml, None) {
        Ok(f) => panic!("expected an error, got\n{f}"),
        Err(e) => expect.assert_eq(&e.to_string()),
    }
}

const MATH: &str = r#"xmlns="http://www.w3.org/1998/Math/MathML""#;

#[test]
fn prefixes_ids_and_references() {
    check(
        &format!(
            r#"<model id="m"><comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="inner"/></comp:listOfSubmodels></model>
<comp:listOfModelDefinitions><comp:modelDefinition id="inner">
  <listOfCompartments><compartment id="c" size="1" constant="true"/></listOfCompartments>
  <listOfSpecies><species id="s" compartment="c" initialAmount="1" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/></listOfSpecies>
  <listOfParameters><parameter id="k" value="2" constant="true"/></listOfParameters>
  <listOfReactions><reaction id="r" reversible="false"><listOfReactants><speciesReference species="s" stoichiometry="1" constant="true"/></listOfReactants>
    <kineticLaw><math {MATH}><apply><times/><ci> k </ci><ci>s</ci><ci>kl</ci></apply></math>
    <listOfLocalParameters><localParameter id="kl" value="1"/></listOfLocalParameters></kineticLaw></reaction></listOfReactions>
</comp:modelDefinition></comp:listOfModelDefinitions>"#
        ),
        expect![[r#"
            <model id="m">
              <listOfCompartments>
                <compartment id="A__c" size="1" constant="true"/>
              </listOfCompartments>
              <listOfSpecies>
                <species id="A__s" compartment="A__c" initialAmount="1" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
              </listOfSpecies>
              <listOfParameters>
                <parameter id="A__k" value="2" constant="true"/>
              </listOfParameters>
              <listOfReactions>
                <reaction id="A__r" reversible="false">
                  <listOfReactants>
                    <speciesReference species="A__s" stoichiometry="1" constant="true"/>
                  </listOfReactants>
                  <kineticLaw>
                    <math xmlns="http://www.w3.org/1998/Math/MathML">
                      <apply>
                        <times/>
                        <ci>A__k</ci>
                        <ci>A__s</ci>
                        <ci>kl</ci>
                      </apply>
                    </math>
                    <listOfLocalParameters>
                      <localParameter id="kl" value="1"/>
                    </listOfLocalParameters>
                  </kineticLaw>
                </reaction>
              </listOfReactions>
            </model>"#]],
    );
}

#[test]
fn replaced_element_with_conversion_factor_divides_reads_and_multiplies_writes() {
    check(
        &format!(
            r#"<model id="m">
  <listOfParameters>
    <parameter id="x" value="1" constant="false"><comp:listOfReplacedElements><comp:replacedElement comp:submodelRef="A" comp:idRef="y" comp:conversionFactor="f"/></comp:listOfReplacedElements></parameter>
    <parameter id="f" value="10" constant="true"/>
  </listOfParameters>
  <comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="inner"/></comp:listOfSubmodels></model>
<comp:listOfModelDefinitions><comp:modelDefinition id="inner">
  <listOfParameters><parameter id="y" value="3" constant="false"/><parameter id="z" constant="false"/></listOfParameters>
  <listOfRules>
    <rateRule variable="y"><math {MATH}><cn>1</cn></math></rateRule>
    <assignmentRule variable="z"><math {MATH}><apply><plus/><ci>y</ci><cn>1</cn></apply></math></assignmentRule>
  </listOfRules>
</comp:modelDefinition></comp:listOfModelDefinitions>"#
        ),
        expect![[r#"
            <model id="m">
              <listOfParameters>
                <parameter id="x" value="1" constant="false"/>
                <parameter id="f" value="10" constant="true"/>
                <parameter id="A__z" constant="false"/>
              </listOfParameters>
              <listOfRules>
                <rateRule variable="x">
                  <math xmlns="http://www.w3.org/1998/Math/MathML">
                    <apply>
                      <times/>
                      <cn>1</cn>
                      <ci>f</ci>
                    </apply>
                  </math>
                </rateRule>
                <assignmentRule variable="A__z">
                  <math xmlns="http://www.w3.org/1998/Math/MathML">
                    <apply>
                      <plus/>
                      <apply>
                        <divide/>
                        <ci>x</ci>
                        <ci>f</ci>
                      </apply>
                      <cn>1</cn>
                    </apply>
                  </math>
                </assignmentRule>
              </listOfRules>
            </model>"#]],
    );
}

#[test]
fn replaced_by_gives_the_parent_id_to_the_submodel_element() {
    check(
        r#"<model id="m">
  <listOfParameters>
    <parameter id="p" value="1" constant="true"><comp:replacedBy comp:submodelRef="A" comp:portRef="q_port"/></parameter>
  </listOfParameters>
  <comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="inner"/></comp:listOfSubmodels></model>
<comp:listOfModelDefinitions><comp:modelDefinition id="inner">
  <listOfParameters><parameter id="q" value="7" constant="true"/></listOfParameters>
  <comp:listOfPorts><comp:port comp:id="q_port" comp:idRef="q"/></comp:listOfPorts>
</comp:modelDefinition></comp:listOfModelDefinitions>"#,
        expect![[r#"
            <model id="m">
              <listOfParameters>
                <parameter id="p" value="7" constant="true"/>
              </listOfParameters>
            </model>"#]],
    );
}

#[test]
fn deletion_through_nested_submodels_and_time_conversion() {
    check(
        &format!(
            r#"<model id="m">
  <listOfParameters><parameter id="tc" value="60" constant="true"/></listOfParameters>
  <comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="mid" comp:timeConversionFactor="tc">
    <comp:listOfDeletions><comp:deletion comp:idRef="B"><comp:sBaseRef comp:metaIdRef="gone"/></comp:deletion></comp:listOfDeletions>
  </comp:submodel></comp:listOfSubmodels></model>
<comp:listOfModelDefinitions>
<comp:modelDefinition id="mid">
  <comp:listOfSubmodels><comp:submodel comp:id="B" comp:modelRef="leaf"/></comp:listOfSubmodels>
</comp:modelDefinition>
<comp:modelDefinition id="leaf">
  <listOfParameters><parameter id="v" value="0" constant="false"/><parameter id="w" value="0" constant="false"/></listOfParameters>
  <listOfRules>
    <rateRule variable="v"><math {MATH}><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol></math></rateRule>
    <rateRule metaid="gone" variable="w"><math {MATH}><cn>1</cn></math></rateRule>
  </listOfRules>
</comp:modelDefinition>
</comp:listOfModelDefinitions>"#
        ),
        expect![[r#"
            <model id="m">
              <listOfParameters>
                <parameter id="tc" value="60" constant="true"/>
                <parameter id="A__B__v" value="0" constant="false"/>
                <parameter id="A__B__w" value="0" constant="false"/>
              </listOfParameters>
              <listOfRules>
                <rateRule variable="A__B__v">
                  <math xmlns="http://www.w3.org/1998/Math/MathML">
                    <apply>
                      <divide/>
                      <apply>
                        <divide/>
                        <csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol>
                        <ci>tc</ci>
                      </apply>
                      <ci>tc</ci>
                    </apply>
                  </math>
                </rateRule>
              </listOfRules>
            </model>"#]],
    );
}

#[test]
fn unknown_comp_element_is_an_error_with_its_line() {
    check_err(
        r#"<model id="m">
  <comp:listOfFrobs/>
</model>"#,
        expect!["<input>:2: comp element <listOfFrobs> is not understood"],
    );
}

#[test]
fn unresolved_reference_is_an_error() {
    check_err(
        r#"<model id="m">
  <listOfParameters><parameter id="p" value="1" constant="true">
    <comp:listOfReplacedElements><comp:replacedElement comp:submodelRef="A" comp:idRef="nope"/></comp:listOfReplacedElements>
  </parameter></listOfParameters>
  <comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="inner"/></comp:listOfSubmodels></model>
<comp:listOfModelDefinitions><comp:modelDefinition id="inner"/></comp:listOfModelDefinitions>"#,
        expect!["<input>:3: <replacedElement> refers to id 'nope', which does not exist in the referenced model"],
    );
}

#[test]
fn self_instantiation_is_a_cycle_error() {
    let err = flatten(
        &format!(
            r#"{HEAD}<model id="m"><comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="loop"/></comp:listOfSubmodels></model>
<comp:listOfModelDefinitions><comp:modelDefinition id="loop">
<comp:listOfSubmodels><comp:submodel comp:id="B" comp:modelRef="loop"/></comp:listOfSubmodels>
</comp:modelDefinition></comp:listOfModelDefinitions></sbml>"#
        ),
        None,
    );
    assert!(matches!(err, Err(CompError::Cycle { ref submodel, .. }) if submodel == "B"), "{err:?}");
}

// ---------------------------------------------------------------------------
// The SBML Test Suite's comp cases, checked structurally: each flattens, the
// result is comp-free XML, every output variable exists as an id, and no id
// is defined twice. Numbers are checked end to end by the simulator's
// conformance run.

const COMP_EXPECTED_FAILURES: &str = include_str!("expected_failures.txt");

fn suite_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SBML_TEST_SUITE") {
        return PathBuf::from(d);
    }
    let shared = Path::new("/work/shared/sbml-test-suite/semantic");
    if shared.is_dir() {
        return shared.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/comp")
}

/// The "flattened version contains" lines of a case's model.m, e.g.
/// `* 2 species (s1, sub1__s1)`, as (element name, expected ids).
fn flattened_contents(model_m: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for line in model_m.lines() {
        let Some(rest) = line.strip_prefix("* ") else { continue };
        let Some((head, ids)) = rest.split_once('(') else { continue };
        let kind = head.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
        let element = match kind {
            "species" => "species",
            "parameter" | "parameters" => "parameter",
            "compartment" | "compartments" => "compartment",
            "species reference" | "species references" => "speciesReference",
            _ => continue,
        };
        let ids = ids.trim_end().trim_end_matches(')').split(',').map(|s| s.trim().to_string()).collect();
        out.push((element, ids));
    }
    out
}

/// Checks one flattened file; `Err` says what is wrong.
fn check_case(xml_path: &Path, variables: &[String], contents: &[(&str, Vec<String>)]) -> Result<(), String> {
    let xml = std::fs::read_to_string(xml_path).map_err(|e| format!("read: {e}"))?;
    let flat = flatten(&xml, xml_path.parent()).map_err(|e| format!("flatten: {e}"))?;
    let doc = roxmltree::Document::parse(&flat).map_err(|e| format!("output is not XML: {e}"))?;
    let mut ids = HashSet::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        let in_comp = |ns: Option<&str>| ns.is_some_and(|ns| ns.contains("/comp/"));
        if in_comp(n.tag_name().namespace()) || n.attributes().any(|a| in_comp(a.namespace())) {
            return Err(format!("comp construct left in output: <{}>", n.tag_name().name()));
        }
        let core = n.tag_name().namespace().is_some_and(|ns| ns.ends_with("/core"));
        let name = n.tag_name().name();
        if core && name != "localParameter" && name != "unitDefinition" && name != "model" {
            if let Some(id) = n.attribute("id") {
                if !ids.insert(id.to_string()) {
                    return Err(format!("id '{id}' defined twice"));
                }
            }
        }
    }
    dangling_references(&doc, &ids)?;
    for v in variables {
        if !ids.contains(v) {
            return Err(format!("output variable '{v}' is not an id of the flat model"));
        }
    }
    for (element, expected) in contents {
        let mut found: Vec<String> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == *element)
            .filter_map(|n| n.attribute("id").map(str::to_string))
            .collect();
        let mut expected = expected.clone();
        found.sort();
        expected.sort();
        // Species references need no id, so only the listed ones are checked.
        if *element == "speciesReference" {
            found.retain(|f| expected.contains(f));
        }
        if found != expected {
            return Err(format!("{element} ids: model.m lists {expected:?}, flat model has {found:?}"));
        }
    }
    Ok(())
}

/// Every SId reference of the flat model (attributes and MathML `ci`) must
/// name an id it defines, a local parameter of the enclosing kinetic law, or
/// a bound variable of the enclosing function definition.
fn dangling_references(doc: &roxmltree::Document<'_>, ids: &HashSet<String>) -> Result<(), String> {
    for n in doc.descendants().filter(|n| n.is_element()) {
        for attr in ["compartment", "species", "variable", "symbol", "conversionFactor"] {
            if let Some(v) = n.attribute(attr) {
                if !ids.contains(v) {
                    return Err(format!("<{} {attr}=\"{v}\"> names no element", n.tag_name().name()));
                }
            }
        }
        if n.tag_name().name() != "ci" {
            continue;
        }
        let name = n.text().unwrap_or("").trim();
        let scoped = n.ancestors().any(|a| {
            let local = a.tag_name().name() == "kineticLaw"
                && a.descendants().any(|p| p.tag_name().name() == "localParameter" && p.attribute("id") == Some(name));
            let bound = a.tag_name().name() == "lambda"
                && a.children().any(|b| {
                    b.tag_name().name() == "bvar" && b.descendants().any(|c| c.text().map(str::trim) == Some(name))
                });
            local || bound
        });
        if !scoped && !ids.contains(name) {
            return Err(format!("<ci>{name}</ci> (line {}) names no element", doc.text_pos_at(n.range().start).row));
        }
    }
    Ok(())
}

fn settings_variables(settings: &str) -> Vec<String> {
    settings
        .lines()
        .find_map(|l| l.strip_prefix("variables:"))
        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

#[test]
fn sbml_test_suite_comp_cases_flatten_structurally() {
    let dir = suite_dir();
    let expected: BTreeMap<&str, &str> = COMP_EXPECTED_FAILURES
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    cases.sort();
    let (mut files, mut passed) = (0, 0);
    let mut problems = Vec::new();
    for case in cases {
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(model_m) = std::fs::read_to_string(case.join(format!("{name}-model.m"))) else { continue };
        let is_comp = model_m
            .lines()
            .filter(|l| l.starts_with("componentTags:") || l.starts_with("testTags:"))
            .any(|l| l.contains("comp:"));
        if !is_comp {
            continue;
        }
        let settings = std::fs::read_to_string(case.join(format!("{name}-settings.txt"))).unwrap_or_default();
        let vars = settings_variables(&settings);
        let contents = flattened_contents(&model_m);
        for level in ["l3v1", "l3v2"] {
            let file = format!("{name}-sbml-{level}.xml");
            let path = case.join(&file);
            if !path.exists() {
                continue;
            }
            files += 1;
            let result = check_case(&path, &vars, &contents);
            match (result, expected.get(file.as_str())) {
                (Ok(()), None) => passed += 1,
                (Ok(()), Some(_)) => {
                    problems.push(format!("{file}: listed as an expected failure but passes: remove it"))
                }
                (Err(_), Some(_)) => {}
                (Err(e), None) => problems.push(format!("{file}: {e}")),
            }
        }
    }
    eprintln!("comp suite ({}): {passed}/{files} files pass, {} expected failures", dir.display(), expected.len());
    assert!(files > 0, "no comp cases found under {}", dir.display());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// Bad input must give an error or a model, never a panic: every single comp
/// attribute of the checked-in cases is removed in turn, and every comp
/// reference is pointed at a name that does not exist.
#[test]
fn mutilated_comp_attributes_never_panic() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/comp");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    files.sort();
    let (mut variants, mut errors) = (0, 0);
    for case in files {
        let Ok(entries) = std::fs::read_dir(&case) else { continue };
        for xml_path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let is_case = xml_path.file_name().is_some_and(|n| n.to_string_lossy().contains("-sbml-l3v"));
            let Ok(xml) = std::fs::read_to_string(&xml_path) else { continue };
            if !is_case {
                continue;
            }
            let mut at = 0;
            while let Some(off) = xml[at..].find(" comp:") {
                let start = at + off;
                // The attribute runs to the closing quote of its value.
                let Some(q1) = xml[start..].find('"') else { break };
                let Some(q2) = xml[start + q1 + 1..].find('"') else { break };
                let end = start + q1 + 1 + q2 + 1;
                for variant in
                    [format!("{}{}", &xml[..start], &xml[end..]), format!("{}x9{}", &xml[..end - 1], &xml[end - 1..])]
                {
                    variants += 1;
                    let result = std::panic::catch_unwind(|| flatten(&variant, xml_path.parent()));
                    match result {
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => errors += 1,
                        Err(_) => panic!(
                            "flatten panicked on {} with the attribute at byte {start} mutilated",
                            xml_path.display()
                        ),
                    }
                }
                at = end;
            }
        }
    }
    eprintln!("{variants} mutilated documents, {errors} rejected with an error");
    assert!(variants > 50 && errors > 20, "{variants} variants, {errors} errors");
}
