//! Behaviour of the reader and solver on small hand-written models. Solutions
//! and error messages are compared as `expect-test` snapshots
//! (`UPDATE_EXPECT=1 cargo test -p vht-fbc` rewrites them).

use expect_test::{expect, Expect};

use crate::{solve, solve_str, Direction, FbaProblem, FbcError, Objective, Reaction, Status};

/// Wraps model content in an L3V1 document with fbc v2; the content starts on line 4.
fn doc(fbc_version: u8, strict: bool, content: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <sbml xmlns=\"http://www.sbml.org/sbml/level3/version1/core\" xmlns:fbc=\"http://www.sbml.org/sbml/level3/version1/fbc/version{fbc_version}\" level=\"3\" version=\"1\">\n\
         <model fbc:strict=\"{strict}\">\n{content}\n</model>\n</sbml>\n"
    )
}

/// A -> (via R1 from outside) A -> B -> outside, objective on R3.
const CHAIN_SPECIES: &str = r#"<listOfSpecies>
  <species id="A" compartment="c" boundaryCondition="false" constant="false" hasOnlySubstanceUnits="false"/>
  <species id="B" compartment="c" boundaryCondition="false" constant="false" hasOnlySubstanceUnits="false"/>
  <species id="X" compartment="c" boundaryCondition="true" constant="false" hasOnlySubstanceUnits="false"/>
</listOfSpecies>"#;

fn chain_reactions(r1: &str, r2: &str, r3: &str) -> String {
    format!(
        r#"<listOfReactions>
  <reaction id="R1" reversible="false" {r1}><listOfReactants><speciesReference species="X" stoichiometry="1" constant="true"/></listOfReactants>
    <listOfProducts><speciesReference species="A" stoichiometry="1" constant="true"/></listOfProducts></reaction>
  <reaction id="R2" reversible="false" {r2}><listOfReactants><speciesReference id="R2_A" species="A" stoichiometry="2" constant="true"/></listOfReactants>
    <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts></reaction>
  <reaction id="R3" reversible="false" {r3}><listOfReactants><speciesReference species="B" stoichiometry="1" constant="true"/></listOfReactants></reaction>
</listOfReactions>"#
    )
}

fn objective(kind: &str, reaction: &str) -> String {
    format!(
        r#"<fbc:listOfObjectives fbc:activeObjective="obj">
  <fbc:objective fbc:id="obj" fbc:type="{kind}"><fbc:listOfFluxObjectives>
    <fbc:fluxObjective fbc:reaction="{reaction}" fbc:coefficient="1"/>
  </fbc:listOfFluxObjectives></fbc:objective>
</fbc:listOfObjectives>"#
    )
}

const PARAMETERS: &str = r#"<listOfParameters>
  <parameter id="zero" value="0" constant="true"/>
  <parameter id="ten" value="10" constant="true"/>
  <parameter id="inf" value="INF" constant="true"/>
</listOfParameters>"#;

fn v2_chain(extra: &str, kind: &str) -> String {
    let bounds = r#"fbc:lowerFluxBound="zero" fbc:upperFluxBound="ten""#;
    let open = r#"fbc:lowerFluxBound="zero" fbc:upperFluxBound="inf""#;
    let content = format!(
        "{CHAIN_SPECIES}\n{PARAMETERS}\n{extra}\n{}\n{}",
        chain_reactions(bounds, open, open),
        objective(kind, "R3")
    );
    doc(2, false, &content)
}

fn check(xml: &str, expect: Expect) {
    let actual = match solve_str(xml) {
        Ok(s) => {
            // The simplex meets the balances within its 1e-7 feasibility tolerance:
            // six decimals keep solver round-off out of the snapshots.
            let round = |v: f64| (v * 1e6).round() / 1e6 + 0.0;
            let mut out = format!("{:?} {} = {}\n", s.status, s.objective_id, round(s.objective_value));
            for (r, v) in &s.fluxes {
                out += &format!("{r} = {}\n", round(*v));
            }
            out
        }
        Err(e) => format!("error: {e}\n"),
    };
    expect.assert_eq(&actual);
}

#[test]
fn v2_maximize_follows_stoichiometry() {
    // R1 <= 10 feeds A; R2 takes two A per B, so R3 = R2 = 5.
    check(
        &v2_chain("", "maximize"),
        expect![[r#"
            Optimal obj = 5
            R1 = 10
            R2 = 5
            R3 = 5
        "#]],
    );
}

#[test]
fn v2_minimize_goes_to_the_lower_bounds() {
    check(
        &v2_chain("", "minimize"),
        expect![[r#"
            Optimal obj = 0
            R1 = 0
            R2 = 0
            R3 = 0
        "#]],
    );
}

#[test]
fn initial_assignments_set_bounds_and_stoichiometry() {
    // ten := 2 * 3 through a chain of assignments; R2 consumes one A instead of two.
    let extra = r#"<listOfInitialAssignments>
  <initialAssignment symbol="ten"><math xmlns="http://www.w3.org/1998/Math/MathML">
    <apply><times/><ci> three </ci><cn type="integer"> 2 </cn></apply></math></initialAssignment>
  <initialAssignment symbol="R2_A"><math xmlns="http://www.w3.org/1998/Math/MathML"><cn type="e-notation"> 1 <sep/> 0 </cn></math></initialAssignment>
</listOfInitialAssignments>
<listOfRules>
  <assignmentRule variable="three"><math xmlns="http://www.w3.org/1998/Math/MathML">
    <apply><minus/><cn> 4 </cn><cn type="rational"> 2 <sep/> 2 </cn></apply></math></assignmentRule>
  <assignmentRule variable="zero"/>
</listOfRules>"#;
    let xml = v2_chain(extra, "maximize")
        .replace("<parameter id=\"zero\"", "<parameter id=\"three\" constant=\"false\"/>\n  <parameter id=\"zero\"");
    check(
        &xml,
        expect![[r#"
            Optimal obj = 6
            R1 = 6
            R2 = 6
            R3 = 6
        "#]],
    );
}

#[test]
fn v1_bounds_intersect() {
    let bounds = r#"<fbc:listOfFluxBounds>
  <fbc:fluxBound fbc:id="b1" fbc:reaction="R1" fbc:operation="lessEqual" fbc:value="10"/>
  <fbc:fluxBound fbc:id="b2" fbc:reaction="R1" fbc:operation="lessEqual" fbc:value="8"/>
  <fbc:fluxBound fbc:id="b3" fbc:reaction="R1" fbc:operation="greaterEqual" fbc:value="0"/>
  <fbc:fluxBound fbc:id="b4" fbc:reaction="R2" fbc:operation="greaterEqual" fbc:value="0"/>
  <fbc:fluxBound fbc:id="b5" fbc:reaction="R3" fbc:operation="equal" fbc:value="3"/>
</fbc:listOfFluxBounds>"#;
    let content =
        format!("{CHAIN_SPECIES}\n{}\n{bounds}\n{}", chain_reactions("", "", ""), objective("maximize", "R1"));
    // R3 is pinned at 3, so R2 = 3 and R1 = 6 although R1 may reach 8.
    check(
        &doc(1, false, &content),
        expect![[r#"
            Optimal obj = 6
            R1 = 6
            R2 = 3
            R3 = 3
        "#]],
    );
}

#[test]
fn crossed_bounds_are_infeasible_not_an_error() {
    let xml = v2_chain("", "maximize").replace(
        r#"fbc:lowerFluxBound="zero" fbc:upperFluxBound="ten""#,
        r#"fbc:lowerFluxBound="ten" fbc:upperFluxBound="zero""#,
    );
    check(
        &xml,
        expect![[r#"
            Infeasible obj = NaN
            R1 = NaN
            R2 = NaN
            R3 = NaN
        "#]],
    );
}

#[test]
fn unbalanceable_network_is_infeasible() {
    // R3 must carry 1 but B can only come from R2, which is closed.
    let xml = v2_chain("", "maximize")
        .replace(
            "<parameter id=\"zero\"",
            "<parameter id=\"one\" value=\"1\" constant=\"true\"/>\n  <parameter id=\"zero\"",
        )
        .replace(
            r#"<reaction id="R2" reversible="false" fbc:lowerFluxBound="zero" fbc:upperFluxBound="inf""#,
            r#"<reaction id="R2" reversible="false" fbc:lowerFluxBound="zero" fbc:upperFluxBound="zero""#,
        )
        .replace(
            r#"<reaction id="R3" reversible="false" fbc:lowerFluxBound="zero""#,
            r#"<reaction id="R3" reversible="false" fbc:lowerFluxBound="one""#,
        );
    let solution = solve_str(&xml).expect("the model is well-formed");
    assert_eq!(solution.status, Status::Infeasible);
    assert!(solution.objective_value.is_nan());
}

#[test]
fn unbounded_objective_is_a_status() {
    let content = format!("{CHAIN_SPECIES}\n{}\n{}", chain_reactions("", "", ""), objective("maximize", "R3"));
    check(
        &doc(2, false, &content),
        expect![[r#"
            Unbounded obj = inf
            R1 = NaN
            R2 = NaN
            R3 = NaN
        "#]],
    );
}

#[test]
fn errors_name_the_element_and_line() {
    let cases = [
        ("not xml", "<sbml><model>".to_string()),
        ("wrong root", "<html/>".to_string()),
        ("no model", "<sbml xmlns=\"http://www.sbml.org/sbml/level3/version1/core\"/>".to_string()),
        ("no objective", doc(2, false, CHAIN_SPECIES)),
        (
            "unknown bound parameter",
            v2_chain("", "maximize").replace(r#"fbc:upperFluxBound="ten""#, r#"fbc:upperFluxBound="eleven""#),
        ),
        (
            "unknown species",
            v2_chain("", "maximize").replace(r#"species="B" stoichiometry="1""#, r#"species="Z" stoichiometry="1""#),
        ),
        (
            "bad stoichiometry",
            v2_chain("", "maximize").replace(r#"stoichiometry="2""#, r#"stoichiometry="two""#),
        ),
        (
            "duplicate reaction",
            v2_chain("", "maximize").replace(r#"<reaction id="R3""#, r#"<reaction id="R2""#),
        ),
        ("unknown objective reaction", v2_chain("", "maximize").replace(r#"fbc:reaction="R3""#, r#"fbc:reaction="R9""#)),
        ("bad objective type", v2_chain("", "maximum")),
        (
            "unknown active objective",
            v2_chain("", "maximize").replace(r#"fbc:activeObjective="obj""#, r#"fbc:activeObjective="other""#),
        ),
        (
            "circular assignment",
            v2_chain(
                r#"<listOfInitialAssignments>
  <initialAssignment symbol="ten"><math xmlns="http://www.w3.org/1998/Math/MathML"><ci>inf</ci></math></initialAssignment>
  <initialAssignment symbol="inf"><math xmlns="http://www.w3.org/1998/Math/MathML"><ci>ten</ci></math></initialAssignment>
</listOfInitialAssignments>"#,
                "maximize",
            ),
        ),
        (
            "species in bound math",
            v2_chain(
                r#"<listOfInitialAssignments>
  <initialAssignment symbol="ten"><math xmlns="http://www.w3.org/1998/Math/MathML"><ci> A </ci></math></initialAssignment>
</listOfInitialAssignments>"#,
                "maximize",
            ),
        ),
        (
            "function call in bound math",
            v2_chain(
                r#"<listOfInitialAssignments>
  <initialAssignment symbol="ten"><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><ci> f </ci><cn>1</cn></apply></math></initialAssignment>
</listOfInitialAssignments>"#,
                "maximize",
            ),
        ),
        (
            "bad v1 operation",
            doc(
                1,
                false,
                &format!(
                    "{CHAIN_SPECIES}\n{}\n<fbc:listOfFluxBounds>\n<fbc:fluxBound fbc:reaction=\"R1\" fbc:operation=\"atMost\" fbc:value=\"1\"/>\n</fbc:listOfFluxBounds>",
                    chain_reactions("", "", "")
                ),
            ),
        ),
        (
            "v3 user constraints",
            v2_chain("<fbc:listOfUserDefinedConstraints/>", "maximize"),
        ),
    ];
    let messages: Vec<String> = cases
        .iter()
        .map(|(what, xml)| match solve_str(xml) {
            Ok(s) => format!("{what}: unexpectedly solved: {s:?}"),
            Err(e) => format!("{what}: {e}"),
        })
        .collect();
    expect![[r#"
        not xml: not well-formed XML: the root node was opened but never closed
        wrong root: line 1: expected <sbml>, found <html>
        no model: line 1: <sbml> has no <model> child
        no objective: line 3: <model> has no fbc objective (fbc:listOfObjectives with an fbc:objective)
        unknown bound parameter: line 16: <reaction> refers to parameter (fbc flux bound) `eleven`, which the model does not define
        unknown species: line 19: <speciesReference> refers to species `Z`, which the model does not define
        bad stoichiometry: line 18: <speciesReference> `stoichiometry`: expected a number, found "two"
        duplicate reaction: line 20: <reaction> id `R2` is already used
        unknown objective reaction: line 24: <fluxObjective> refers to reaction `R9`, which the model does not define
        bad objective type: line 23: <objective> `type`: expected maximize or minimize, found "maximum"
        unknown active objective: line 22: <listOfObjectives> refers to objective `other`, which the model does not define
        circular assignment: line 15: the value of `ten` depends on itself
        species in bound math: line 15: <ci> is not supported: species amounts are not constants of a flux balance problem
        function call in bound math: line 15: <ci> is not supported: function definitions are not evaluated in flux bounds
        bad v1 operation: line 17: <fluxBound> `operation`: expected lessEqual, greaterEqual or equal, found "atMost"
        v3 user constraints: line 14: <fbc:listOfUserDefinedConstraints> is not supported: fbc v3 user-defined constraints are not solved"#]].assert_eq(&messages.join("\n"));
}

#[test]
fn file_errors_name_the_file() {
    let missing = crate::solve_file(std::path::Path::new("/nonexistent/model.xml"));
    assert!(matches!(missing, Err(FbcError::Io { .. })), "{missing:?}");

    let path = std::env::temp_dir().join(format!("vht-fbc-test-{}.xml", std::process::id()));
    std::fs::write(&path, doc(2, false, CHAIN_SPECIES)).expect("temp dir is writable");
    let result = crate::solve_file(&path);
    let _ = std::fs::remove_file(&path);
    match result {
        Err(e @ FbcError::InFile { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with(&path.display().to_string()), "{message}");
            assert!(
                message.ends_with("line 3: <model> has no fbc objective (fbc:listOfObjectives with an fbc:objective)"),
                "{message}"
            );
        }
        other => panic!("expected InFile, got {other:?}"),
    }
}

#[test]
fn hand_built_problem_is_checked() {
    let problem = FbaProblem {
        objective: Objective { id: "obj".into(), direction: Direction::Maximize, coefficients: vec![(1, 1.0)] },
        reactions: vec![Reaction { id: "R".into(), lower_bound: 0.0, upper_bound: 1.0, stoichiometry: vec![] }],
        species: vec![],
    };
    expect!["objective reaction index 1 is out of range (the list has 1)"]
        .assert_eq(&solve(&problem).unwrap_err().to_string());

    let nan_bound = FbaProblem {
        objective: Objective { coefficients: vec![(0, 1.0)], ..problem.objective.clone() },
        reactions: vec![Reaction { lower_bound: f64::NAN, ..problem.reactions[0].clone() }],
        species: vec![],
    };
    expect!["reaction `R` has bounds [NaN, 1]: a bound is NaN"].assert_eq(&solve(&nan_bound).unwrap_err().to_string());
}

#[test]
fn variability_shows_alternative_optima() {
    // R2b is a second copy of R2 (one A per B): the optimum R3 = 5 can split
    // its flux between them in any proportion, R1 and R3 are pinned.
    let r2b = r#"<reaction id="R2b" reversible="false" fbc:lowerFluxBound="zero" fbc:upperFluxBound="inf"><listOfReactants><speciesReference species="A" stoichiometry="2" constant="true"/></listOfReactants>
    <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts></reaction>
  <reaction id="R3""#;
    let xml = v2_chain("", "maximize").replacen(r#"<reaction id="R3""#, r2b, 1);
    let problem = crate::read_str(&xml).expect("the model is well-formed");
    let fva = crate::flux_variability(&problem).expect("the solver succeeds");
    assert_eq!(fva.optimum.status, Status::Optimal);
    // The solver meets constraints within 1e-7, so ends can be off by ~1e-6: round to 1e-4.
    let round = |v: f64| (v * 1e4).round() / 1e4 + 0.0;
    let ranges: Vec<String> =
        fva.ranges.iter().map(|r| format!("{} in [{}, {}]", r.reaction, round(r.min), round(r.max))).collect();
    expect![[r#"
        R1 in [10, 10]
        R2 in [0, 5]
        R2b in [0, 5]
        R3 in [5, 5]"#]]
    .assert_eq(&ranges.join("\n"));

    // An unbounded program has no optimal face to explore.
    let open =
        doc(2, false, &format!("{CHAIN_SPECIES}\n{}\n{}", chain_reactions("", "", ""), objective("maximize", "R3")));
    let fva = crate::flux_variability(&crate::read_str(&open).expect("well-formed")).expect("no solver failure");
    assert_eq!((fva.optimum.status, fva.ranges.len()), (Status::Unbounded, 0));
}
