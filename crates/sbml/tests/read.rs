//! Reader behaviour: MathML forms, level defaults, L1 formulas. Snapshots
//! (`UPDATE_EXPECT=1 cargo test -p vht-sbml`).

use expect_test::{expect, Expect};
use vht_sbml::{read_str, Math};

/// Reads `mathml` as the math of an initial assignment and prints the AST.
fn check_math(mathml: &str, expect: Expect) {
    let xml = format!(
        r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2"><model>
  <listOfInitialAssignments><initialAssignment symbol="x">
    <math xmlns="http://www.w3.org/1998/Math/MathML">{mathml}</math>
  </initialAssignment></listOfInitialAssignments></model></sbml>"#
    );
    let got = match read_str(&xml, None) {
        Ok((doc, _)) => match &doc.model.initial_assignments[0].math {
            Some(m) => format!("{m:?}"),
            None => "no math".to_string(),
        },
        Err(e) => e.to_string(),
    };
    expect.assert_eq(&got);
}

#[test]
fn numbers() {
    check_math(r#"<cn type="integer"> 5 </cn>"#, expect!["Num(5.0)"]);
    check_math(r#"<cn type="e-notation"> 1.5 <sep/> -3 </cn>"#, expect!["Num(0.0015)"]);
    check_math(r#"<cn type="rational"> 1 <sep/> 4 </cn>"#, expect!["Num(0.25)"]);
    check_math(r#"<cn> INF </cn>"#, expect!["Num(inf)"]);
    check_math(r#"<cn type="integer">x</cn>"#, expect!["<input>:3: <cn> 'x' is not a number of type integer"]);
    check_math("<pi/>", expect!["Num(3.141592653589793)"]);
    check_math("<true/>", expect!["Num(1.0)"]);
}

#[test]
fn operators_and_qualifiers() {
    check_math(
        "<apply><root/><degree><cn>3</cn></degree><ci> a </ci></apply>",
        expect![[r#"Apply(Root, [Num(3.0), Ci("a")])"#]],
    );
    check_math("<apply><log/><ci> a </ci></apply>", expect![[r#"Apply(Log, [Num(10.0), Ci("a")])"#]]);
    check_math(
        "<apply><lt/><cn>1</cn><ci>a</ci><cn>3</cn></apply>",
        expect![[r#"Apply(Lt, [Num(1.0), Ci("a"), Num(3.0)])"#]],
    );
    check_math("<apply><foo/><cn>1</cn></apply>", expect!["<input>:3: <apply> has an unknown operator <foo>"]);
}

#[test]
fn csymbols_semantics_and_piecewise() {
    check_math(
        r#"<apply><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/delay">d</csymbol>
           <ci>a</ci><csymbol definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol></apply>"#,
        expect![[r#"Apply(Delay, [Ci("a"), Time])"#]],
    );
    check_math(
        r#"<apply><csymbol definitionURL="http://www.sbml.org/sbml/symbols/rateOf">r</csymbol><ci>a</ci></apply>"#,
        expect![[r#"Apply(RateOf, [Ci("a")])"#]],
    );
    check_math(
        r#"<semantics><csymbol definitionURL="http://www.sbml.org/sbml/symbols/avogadro">N</csymbol><annotation>x</annotation></semantics>"#,
        expect!["Avogadro"],
    );
    check_math(
        "<piecewise><piece><cn>1</cn><ci>c</ci></piece><otherwise><cn>2</cn></otherwise></piecewise>",
        expect![[r#"Piecewise([(Num(1.0), Ci("c"))], Some(Num(2.0)))"#]],
    );
}

#[test]
fn level_defaults() {
    let xml = r#"<sbml xmlns="http://www.sbml.org/sbml/level2/version4" level="2" version="4"><model>
  <listOfCompartments><compartment id="c"/></listOfCompartments>
  <listOfSpecies><species id="S" compartment="c" initialConcentration="1"/></listOfSpecies>
  <listOfParameters><parameter id="k"/></listOfParameters>
  <listOfReactions><reaction id="R"><listOfReactants><speciesReference species="S"/></listOfReactants></reaction></listOfReactions>
  <listOfEvents><event><trigger><math xmlns="http://www.w3.org/1998/Math/MathML"><true/></math></trigger></event></listOfEvents>
</model></sbml>"#;
    let (doc, diags) = read_str(xml, None).unwrap();
    let m = &doc.model;
    assert!(diags.is_empty());
    assert_eq!((m.compartments[0].size, m.compartments[0].constant), (Some(1.0), true));
    assert!(!m.species[0].has_only_substance_units && !m.species[0].boundary_condition);
    assert_eq!((m.parameters[0].value, m.parameters[0].constant), (None, true));
    assert!(m.reactions[0].reversible && !m.reactions[0].fast);
    assert_eq!(m.reactions[0].reactants[0].stoichiometry, Some(1.0));
    let e = &m.events[0];
    assert_eq!(
        (e.id.as_str(), e.initial_value, e.persistent, e.use_values_from_trigger_time),
        ("event1", true, true, true)
    );
}

#[test]
fn level1_names_and_formulas() {
    let xml = r#"<sbml xmlns="http://www.sbml.org/sbml/level1" level="1" version="1"><model name="m">
  <listOfCompartments><compartment name="c" volume="2"/></listOfCompartments>
  <listOfSpecies><specie name="S" compartment="c" initialAmount="1"/></listOfSpecies>
  <listOfRules><parameterRule name="k" formula="2 * S" type="rate"/></listOfRules>
  <listOfReactions><reaction name="R">
    <listOfReactants><specieReference specie="S" stoichiometry="3" denominator="2"/></listOfReactants>
    <kineticLaw formula="k * S"/>
  </reaction></listOfReactions>
</model></sbml>"#;
    let (doc, _) = read_str(xml, None).unwrap();
    let m = &doc.model;
    assert_eq!(m.species[0].id, "S");
    assert_eq!(m.compartments[0].size, Some(2.0));
    assert_eq!(m.rules[0].kind, vht_sbml::RuleKind::Rate);
    assert_eq!(m.rules[0].variable.as_deref(), Some("k"));
    assert_eq!(m.reactions[0].reactants[0].stoichiometry, Some(1.5));
    let law = m.reactions[0].kinetic_law.as_ref().and_then(|k| k.math.clone());
    assert_eq!(law, Some(Math::Apply(vht_sbml::Op::Times, vec![Math::Ci("k".into()), Math::Ci("S".into())])));
}
