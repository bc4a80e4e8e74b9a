//! What the lowering makes of SBML constructs, as IR dumps (snapshots:
//! `UPDATE_EXPECT=1 cargo test -p vht-lower --test lowering`). Each dump
//! lists every symbol as `name [role] kind`, then the algebraic equations
//! and the events, so a change of SBML semantics shows up here as text.

use expect_test::{expect, Expect};
use vht_ir::{BinOp, Expr, Model, NaryOp, SymbolKind, UnOp};

fn check(body: &str, expect: Expect) {
    let xml = format!(
        r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="m">
{body}
  </model>
</sbml>"#
    );
    let got = match vht_lower::load_str(&xml, None) {
        Ok((m, _)) => dump(&m),
        Err(e) => e.to_string(),
    };
    expect.assert_eq(&got);
}

fn dump(m: &Model) -> String {
    let mut out = String::new();
    for s in &m.symbols {
        let kind = match &s.kind {
            SymbolKind::Parameter => format!("parameter = {}", show(m, &s.initial)),
            SymbolKind::State { rate } => format!("state d/dt = {}; start {}", show(m, rate), show(m, &s.initial)),
            SymbolKind::Assigned { expr } => format!("= {}", show(m, expr)),
            SymbolKind::Algebraic => format!("algebraic, guess {}", show(m, &s.initial)),
        };
        out.push_str(&format!("{} [{:?}] {kind}\n", s.name, s.role));
    }
    for g in &m.algebraic {
        out.push_str(&format!("0 = {}\n", show(m, g)));
    }
    for e in &m.events {
        let sets: Vec<String> =
            e.assignments.iter().map(|a| format!("{} := {}", m.name(a.target), show(m, &a.value))).collect();
        out.push_str(&format!("event {} when {}: {}\n", e.name, show(m, &e.trigger), sets.join(", ")));
    }
    out
}

fn show(m: &Model, e: &Expr) -> String {
    match e {
        Expr::Num(x) => format!("{x}"),
        Expr::Sym(s) => m.symbols.get(s.index()).map_or_else(|| format!("?{}", s.0), |x| x.name.clone()),
        Expr::Time => "time".into(),
        Expr::Un(UnOp::Neg, a) => format!("-{}", show(m, a)),
        Expr::Un(op, a) => format!("{op:?}({})", show(m, a)),
        Expr::Bin(op, a, b) => {
            let sym = match op {
                BinOp::Sub => "-",
                BinOp::Div => "/",
                BinOp::Pow => "^",
                BinOp::Ge => ">=",
                BinOp::Gt => ">",
                BinOp::Lt => "<",
                BinOp::Le => "<=",
                BinOp::Eq => "==",
                _ => return format!("{op:?}({}, {})", show(m, a), show(m, b)),
            };
            format!("({} {sym} {})", show(m, a), show(m, b))
        }
        Expr::Nary(op, args) => {
            let parts: Vec<String> = args.iter().map(|a| show(m, a)).collect();
            match op {
                NaryOp::Add => format!("({})", parts.join(" + ")),
                NaryOp::Mul => format!("({})", parts.join(" * ")),
                _ => format!("{op:?}({})", parts.join(", ")),
            }
        }
        Expr::Piecewise(pieces, otherwise) => {
            let ps: Vec<String> = pieces.iter().map(|(v, c)| format!("{} if {}", show(m, v), show(m, c))).collect();
            format!("piecewise({}, else {})", ps.join(", "), show(m, otherwise))
        }
        Expr::Delay(x, tau) => format!("delay({}, {})", show(m, x), show(m, tau)),
    }
}

const MATH: &str = r#"xmlns="http://www.w3.org/1998/Math/MathML""#;

fn species(id: &str, comp: &str, init: &str, hosu: bool) -> String {
    format!(
        r#"<species id="{id}" compartment="{comp}" {init} hasOnlySubstanceUnits="{hosu}" boundaryCondition="false" constant="false"/>"#
    )
}

#[test]
fn concentrations_are_amounts_over_size() {
    check(
        &format!(
            r#"<listOfCompartments><compartment id="c" size="2" constant="false"/></listOfCompartments>
<listOfSpecies>{}{}</listOfSpecies>
<listOfParameters><parameter id="k" value="0.5" constant="true"/><parameter id="cf" value="3" constant="true"/></listOfParameters>
<listOfReactions><reaction id="R" reversible="false">
  <listOfReactants><speciesReference species="A" stoichiometry="2" constant="true"/></listOfReactants>
  <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts>
  <kineticLaw><math {MATH}><apply><times/><ci>k</ci><ci>A</ci><ci>c</ci></apply></math>
    <listOfLocalParameters><localParameter id="k" value="7"/></listOfLocalParameters></kineticLaw>
</reaction></listOfReactions>"#,
            species("A", "c", r#"initialConcentration="1""#, false),
            species("B", "c", r#"initialConcentration="4" conversionFactor="cf""#, true),
        ),
        expect![[r#"
            c [Compartment] parameter = 2
            A [Species] = (A.amount / c)
            A.amount [Internal] state d/dt = -(2 * R); start (1 * c)
            B [Species] state d/dt = (R * cf); start (4 * c)
            k [Parameter] parameter = 0.5
            cf [Parameter] parameter = 3
            R [Reaction] = (R.k * A * c)
            R.k [Parameter] parameter = 7
        "#]],
    );
}

#[test]
fn rate_rule_concentration_and_a_resizing_event() {
    check(
        &format!(
            r#"<listOfCompartments><compartment id="c" size="1" constant="false"/></listOfCompartments>
<listOfSpecies>{}</listOfSpecies>
<listOfRules><rateRule variable="S"><math {MATH}><cn>1</cn></math></rateRule></listOfRules>
<listOfEvents><event id="E" useValuesFromTriggerTime="true">
  <trigger initialValue="false" persistent="true"><math {MATH}><apply><gt/><csymbol definitionURL="http://www.sbml.org/sbml/symbols/time">t</csymbol><cn>1</cn></apply></math></trigger>
  <listOfEventAssignments><eventAssignment variable="c"><math {MATH}><cn>4</cn></math></eventAssignment></listOfEventAssignments>
</event></listOfEvents>"#,
            species("S", "c", r#"initialConcentration="2""#, false),
        ),
        expect![[r#"
            c [Compartment] parameter = 1
            S [Species] state d/dt = 1; start 2
            event E when (time > 1): c := 4, S := ((S * c) / 4)
        "#]],
    );
}

#[test]
fn event_sets_a_concentration_through_its_amount() {
    check(
        &format!(
            r#"<listOfCompartments><compartment id="c" size="2" constant="true"/></listOfCompartments>
<listOfSpecies>{}</listOfSpecies>
<listOfEvents><event id="E" useValuesFromTriggerTime="true">
  <trigger initialValue="true" persistent="true"><math {MATH}><true/></math></trigger>
  <listOfEventAssignments><eventAssignment variable="S"><math {MATH}><cn>5</cn></math></eventAssignment></listOfEventAssignments>
</event></listOfEvents>"#,
            species("S", "c", r#"initialAmount="1""#, false),
        ),
        expect![[r#"
            c [Compartment] parameter = 2
            S [Species] = (S.amount / c)
            S.amount [Internal] parameter = 1
            event E when 1: S.amount := (5 * c)
        "#]],
    );
}

#[test]
fn stoichiometry_symbols_and_rate_of() {
    check(
        &format!(
            r#"<listOfCompartments><compartment id="c" size="1" constant="true"/></listOfCompartments>
<listOfSpecies>{}</listOfSpecies>
<listOfParameters><parameter id="r" constant="false"/></listOfParameters>
<listOfInitialAssignments><initialAssignment symbol="n"><math {MATH}><cn>3</cn></math></initialAssignment></listOfInitialAssignments>
<listOfRules><assignmentRule variable="r"><math {MATH}><apply><csymbol definitionURL="http://www.sbml.org/sbml/symbols/rateOf">rateOf</csymbol><ci>A</ci></apply></math></assignmentRule></listOfRules>
<listOfReactions><reaction id="R" reversible="false">
  <listOfProducts><speciesReference id="n" species="A" constant="true"/></listOfProducts>
  <kineticLaw><math {MATH}><cn>2</cn></math></kineticLaw>
</reaction></listOfReactions>"#,
            species("A", "c", r#"initialAmount="0""#, true),
        ),
        expect![[r#"
            c [Compartment] parameter = 1
            A [Species] state d/dt = (n * R); start 0
            r [Parameter] = (n * R)
            R [Reaction] = 2
            n [Stoichiometry] parameter = 3
        "#]],
    );
}

#[test]
fn functions_are_inlined() {
    check(
        &format!(
            r#"<listOfFunctionDefinitions><functionDefinition id="sq"><math {MATH}><lambda><bvar><ci>x</ci></bvar>
  <apply><times/><ci>x</ci><ci>x</ci></apply></lambda></math></functionDefinition></listOfFunctionDefinitions>
<listOfParameters><parameter id="p" value="3" constant="true"/><parameter id="q" constant="false"/></listOfParameters>
<listOfRules><assignmentRule variable="q"><math {MATH}><apply><ci>sq</ci><apply><plus/><ci>p</ci><cn>1</cn></apply></apply></math></assignmentRule></listOfRules>"#
        ),
        expect![[r#"
            p [Parameter] parameter = 3
            q [Parameter] = ((p + 1) * (p + 1))
        "#]],
    );
}

#[test]
fn algebraic_rule_gets_its_unknown() {
    check(
        &format!(
            r#"<listOfParameters><parameter id="x" value="1" constant="false"/><parameter id="y" constant="false"/></listOfParameters>
<listOfRules><algebraicRule><math {MATH}><apply><minus/><ci>y</ci><apply><times/><cn>2</cn><ci>x</ci></apply></apply></math></algebraicRule></listOfRules>"#
        ),
        expect![[r#"
            x [Parameter] parameter = 1
            y [Parameter] algebraic, guess 0
            0 = (y - (2 * x))
        "#]],
    );
}

#[test]
fn fast_reaction_is_an_equilibrium() {
    check(
        &format!(
            r#"<listOfCompartments><compartment id="c" size="1" constant="true"/></listOfCompartments>
<listOfSpecies>{}{}</listOfSpecies>
<listOfReactions><reaction id="F" reversible="true" fast="true">
  <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/></listOfReactants>
  <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts>
  <kineticLaw><math {MATH}><apply><minus/><ci>A</ci><apply><times/><cn>3</cn><ci>B</ci></apply></apply></math></kineticLaw>
</reaction></listOfReactions>"#,
            species("A", "c", r#"initialAmount="4""#, true),
            species("B", "c", r#"initialAmount="0""#, true),
        ),
        expect![[r#"
            c [Compartment] parameter = 1
            A [Species] algebraic, guess 3.000000000000003
            B [Species] algebraic, guess 0.9999999999999973
            F [Reaction] = (A - (3 * B))
            fast_total#1 [Internal] state d/dt = 0; start 4
            0 = ((A + B) - fast_total#1)
            0 = F
        "#]],
    );
}
