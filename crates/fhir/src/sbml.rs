//! Writes a patient's doses into a copy of the SBML model, as SBML events.
//!
//! PEtab v1 has no way to say "this patient took 75 g of glucose at 08:10",
//! so the dose schedule becomes part of the patient's model: one event per
//! dose time, `time >= t` triggering assignments (`x := x + dose` for a
//! bolus, `p := dose` for a set). The copy is made by splicing text into the
//! original file (located with roxmltree), so everything else in the model
//! (annotations, units, notes) is kept byte for byte.
//!
//! A dose exactly at the time origin cannot be an event: an SBML Level 2
//! trigger that is already true at t = 0 never fires (and in Level 3 that
//! depends on `initialValue`). Such doses are added to the initial values
//! instead, which is what an event at t = 0 would have done.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::FhirError;

/// What a dose does to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseKind {
    Bolus,
    Set,
}

/// One dose, in model units and model time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelDose {
    pub time: f64,
    pub target: String,
    pub kind: DoseKind,
    pub amount: f64,
    /// Parameters set to `amount` at the same time.
    pub also_set: Vec<String>,
}

/// The SBML text of a model with the ids of its species, parameters and
/// compartments located.
pub struct SbmlText {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Species,
    Parameter,
    Compartment,
}

struct Element {
    kind: Kind,
    /// The start tag's byte range.
    tag: Range<usize>,
    /// Name (as written, possibly prefixed) of the element.
    name_len: usize,
    attrs: BTreeMap<String, (String, Range<usize>)>,
}

impl SbmlText {
    pub fn read(path: &Path) -> Result<SbmlText, FhirError> {
        let text = std::fs::read_to_string(path).map_err(|error| FhirError::Io { path: path.to_path_buf(), error })?;
        Ok(SbmlText { path: path.to_path_buf(), text })
    }

    fn err(&self, problem: impl Into<String>) -> FhirError {
        FhirError::Model { file: self.path.clone(), problem: problem.into() }
    }

    fn doc(&self) -> Result<roxmltree::Document<'_>, FhirError> {
        roxmltree::Document::parse(&self.text).map_err(|e| self.err(format!("not XML: {e}")))
    }

    fn elements(&self, doc: &roxmltree::Document) -> BTreeMap<String, Element> {
        let mut out = BTreeMap::new();
        for n in doc.descendants().filter(|n| n.is_element()) {
            let kind = match n.tag_name().name() {
                "species" => Kind::Species,
                "compartment" => Kind::Compartment,
                // Local parameters of a kinetic law are not model quantities.
                "parameter" if !n.ancestors().any(|a| a.tag_name().name() == "kineticLaw") => Kind::Parameter,
                _ => continue,
            };
            let Some(id) = n.attribute("id") else { continue };
            let start = n.range().start;
            let name_len =
                self.text[start + 1..].find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(0);
            let attrs =
                n.attributes().map(|a| (a.name().to_string(), (a.value().to_string(), a.range_value()))).collect();
            out.insert(id.to_string(), Element { kind, tag: start..n.range().end, name_len, attrs });
        }
        out
    }

    /// The model's value of a parameter (`value`), species (initial amount
    /// or concentration) or compartment (`size`).
    pub fn value(&self, id: &str) -> Result<Option<f64>, FhirError> {
        let doc = self.doc()?;
        let els = self.elements(&doc);
        let Some(e) = els.get(id) else { return Ok(None) };
        let key = match e.kind {
            Kind::Parameter => "value",
            Kind::Compartment => "size",
            Kind::Species if e.attrs.contains_key("initialAmount") => "initialAmount",
            Kind::Species => "initialConcentration",
        };
        Ok(e.attrs.get(key).and_then(|(v, _)| v.trim().parse().ok()))
    }

    /// Whether the id is a species, parameter or compartment of the model.
    pub fn has(&self, id: &str) -> Result<bool, FhirError> {
        let doc = self.doc()?;
        Ok(self.elements(&doc).contains_key(id))
    }

    /// The copy for one patient: initial values replaced, doses at t <= 0
    /// folded into them, later doses as events.
    pub fn with_doses(&self, initial: &BTreeMap<String, f64>, doses: &[ModelDose]) -> Result<String, FhirError> {
        let doc = self.doc()?;
        let els = self.elements(&doc);
        let sbml = doc.root_element();
        let level: u32 = sbml.attribute("level").and_then(|l| l.parse().ok()).unwrap_or(0);
        if !(2..=3).contains(&level) {
            return Err(self.err(format!("doses are written as SBML Level 2 or 3 events; this is level {level}")));
        }
        let model =
            sbml.children().find(|n| n.tag_name().name() == "model").ok_or_else(|| self.err("no <model> element"))?;
        // Targets set by initial assignments or assignment rules would ignore an edited start value.
        let assigned: Vec<String> = model
            .descendants()
            .filter(|n| matches!(n.tag_name().name(), "initialAssignment" | "assignmentRule"))
            .filter_map(|n| n.attribute("symbol").or(n.attribute("variable")).map(str::to_string))
            .collect();

        let mut values: BTreeMap<String, f64> = initial.clone();
        let mut events: Vec<&ModelDose> = Vec::new();
        for d in doses {
            for id in std::iter::once(&d.target).chain(&d.also_set) {
                if !els.contains_key(id) {
                    return Err(
                        self.err(format!("a dose targets '{id}', which is not a species, parameter or compartment"))
                    );
                }
                if assigned.contains(id) {
                    return Err(self.err(format!("a dose targets '{id}', which a rule or initial assignment defines")));
                }
            }
            if d.time < 0.0 {
                return Err(self.err(format!(
                    "a dose at t = {} is before the time origin (use time_origin = first_dose)",
                    d.time
                )));
            }
            if d.time == 0.0 {
                let base = match values.get(&d.target) {
                    Some(v) => *v,
                    None => self
                        .value(&d.target)?
                        .ok_or_else(|| self.err(format!("'{}' has no initial value", d.target)))?,
                };
                let amount = self.in_target_units(&els, &d.target, d.amount)?;
                values.insert(d.target.clone(), if d.kind == DoseKind::Bolus { base + amount } else { amount });
                for p in &d.also_set {
                    values.insert(p.clone(), d.amount);
                }
            } else {
                events.push(d);
            }
        }

        let mut splices: Vec<(Range<usize>, String)> = Vec::new();
        for (id, v) in &values {
            let e =
                els.get(id).ok_or_else(|| self.err(format!("[initial] names '{id}', which is not in the model")))?;
            if assigned.contains(id) {
                return Err(self.err(format!("[initial] sets '{id}', which a rule or initial assignment defines")));
            }
            let key = match e.kind {
                Kind::Parameter => "value",
                Kind::Compartment => "size",
                Kind::Species if e.attrs.contains_key("initialConcentration") => "initialConcentration",
                Kind::Species => "initialAmount",
            };
            match e.attrs.get(key) {
                Some((_, r)) => splices.push((r.clone(), num(*v))),
                None => {
                    let at = e.tag.start + 1 + e.name_len;
                    splices.push((at..at, format!(" {key}=\"{}\"", num(*v))));
                }
            }
        }
        // Parameters that events change must not be constant.
        let mut changed: Vec<&String> =
            events.iter().flat_map(|d| std::iter::once(&d.target).chain(&d.also_set)).collect();
        changed.sort();
        changed.dedup();
        for id in changed {
            let e = &els[id.as_str()];
            match e.attrs.get("constant") {
                Some((v, r)) if v == "true" => splices.push((r.clone(), "false".into())),
                Some(_) => {}
                // Level 2 parameters and compartments are constant unless they say otherwise; species are not.
                None if e.kind != Kind::Species || level == 3 => {
                    let at = e.tag.start + 1 + e.name_len;
                    splices.push((at..at, " constant=\"false\"".into()));
                }
                None => {}
            }
        }
        if !events.is_empty() {
            let mut xml = String::new();
            for (i, d) in events.iter().enumerate() {
                xml += &self.event_xml(&els, level, i + 1, d)?;
            }
            match model.children().find(|n| n.tag_name().name() == "listOfEvents") {
                Some(list) => {
                    let end = list.range().end;
                    let close = self.text[list.range()].rfind("</").map(|i| list.range().start + i).unwrap_or(end);
                    splices.push((close..close, xml));
                }
                None => {
                    let close = self.text[model.range()]
                        .rfind("</")
                        .map(|i| model.range().start + i)
                        .ok_or_else(|| self.err("<model> has no end tag"))?;
                    splices.push((close..close, format!("  <listOfEvents>\n{xml}    </listOfEvents>\n  ")));
                }
            }
        }
        splices.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        let mut text = self.text.clone();
        for (r, s) in splices {
            text.replace_range(r, &s);
        }
        Ok(text)
    }

    /// A dose amount (in the target's amount unit) as the value the
    /// target's symbol holds: a concentration species divides by its compartment.
    fn in_target_units(&self, els: &BTreeMap<String, Element>, target: &str, amount: f64) -> Result<f64, FhirError> {
        let e = &els[target];
        if e.kind != Kind::Species || e.attrs.get("hasOnlySubstanceUnits").is_some_and(|(v, _)| v == "true") {
            return Ok(amount);
        }
        // A species without hasOnlySubstanceUnits is a concentration symbol even
        // when its initial value is given as an amount: divide by the size.
        let comp = e.attrs.get("compartment").map(|(v, _)| v.clone()).unwrap_or_default();
        let size =
            self.value(&comp)?.ok_or_else(|| self.err(format!("compartment '{comp}' of '{target}' has no size")))?;
        Ok(amount / size)
    }

    fn event_xml(
        &self,
        els: &BTreeMap<String, Element>,
        level: u32,
        n: usize,
        d: &ModelDose,
    ) -> Result<String, FhirError> {
        const MATH: &str = "<math xmlns=\"http://www.w3.org/1998/Math/MathML\">";
        const TIME: &str =
            "<csymbol encoding=\"text\" definitionURL=\"http://www.sbml.org/sbml/symbols/time\">time</csymbol>";
        let (ev_attrs, trig_attrs) = if level == 3 {
            (" useValuesFromTriggerTime=\"true\"", " initialValue=\"true\" persistent=\"true\"")
        } else {
            ("", "")
        };
        let mut s = String::new();
        let _ = writeln!(s, "      <event id=\"vht_dose_{n}\"{ev_attrs}>");
        let _ = writeln!(
            s,
            "        <trigger{trig_attrs}>{MATH}<apply><geq/>{TIME}<cn>{}</cn></apply></math></trigger>",
            num(d.time)
        );
        let _ = writeln!(s, "        <listOfEventAssignments>");
        let e = &els[d.target.as_str()];
        let per_symbol = if e.kind == Kind::Species { self.in_target_units(els, &d.target, 1.0)? } else { 1.0 };
        let value = match d.kind {
            DoseKind::Bolus => {
                format!("<apply><plus/><ci>{}</ci><cn>{}</cn></apply>", d.target, num(d.amount * per_symbol))
            }
            DoseKind::Set => format!("<cn>{}</cn>", num(d.amount * per_symbol)),
        };
        let _ =
            writeln!(s, "          <eventAssignment variable=\"{}\">{MATH}{value}</math></eventAssignment>", d.target);
        for p in &d.also_set {
            let _ = writeln!(
                s,
                "          <eventAssignment variable=\"{p}\">{MATH}<cn>{}</cn></math></eventAssignment>",
                num(d.amount)
            );
        }
        let _ = writeln!(s, "        </listOfEventAssignments>");
        let _ = writeln!(s, "      </event>");
        Ok(s)
    }
}

/// A number as SBML/MathML and PEtab text: the shortest form that reads back exactly.
pub fn num(v: f64) -> String {
    format!("{v:?}").trim_end_matches(".0").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meal() -> SbmlText {
        SbmlText::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/dallaman2007_meal.xml"))
            .unwrap()
    }

    fn dose(time: f64, amount: f64) -> ModelDose {
        ModelDose { time, target: "Q_sto1".into(), kind: DoseKind::Bolus, amount, also_set: vec!["D".into()] }
    }

    #[test]
    fn doses_become_initial_values_and_events() {
        let m = meal();
        let initial: BTreeMap<String, f64> = [("Q_sto1".to_string(), 0.0)].into_iter().collect();
        let xml = m.with_doses(&initial, &[dose(0.0, 75000.0), dose(30.0, 20000.0)]).unwrap();
        let copy = SbmlText { path: m.path.clone(), text: xml.clone() };
        // The dose at t = 0 is in the initial values; the later one is an event.
        assert_eq!(copy.value("Q_sto1").unwrap(), Some(75000.0));
        assert_eq!(copy.value("D").unwrap(), Some(75000.0));
        assert_eq!(xml.matches("<event ").count(), 1);
        assert!(xml.contains("<geq/><csymbol encoding=\"text\" definitionURL=\"http://www.sbml.org/sbml/symbols/time\">time</csymbol><cn>30</cn>"));
        assert!(xml.contains("<apply><plus/><ci>Q_sto1</ci><cn>20000</cn></apply>"));
        // D changes in an event, so it is no longer constant; the rest of the file is untouched.
        assert!(
            xml.contains("<parameter constant=\"false\" id=\"D\""),
            "{}",
            &xml[xml.find("id=\"D\"").unwrap() - 40..][..80]
        );
        assert!(xml.starts_with(&m.text[..2000]), "the header and notes are kept byte for byte");
        let (model, _) = vht_lower::load_str(&xml, None).unwrap();
        assert_eq!(model.events.len(), 1);
    }

    #[test]
    fn bad_doses_are_refused() {
        let m = meal();
        let none = BTreeMap::new();
        let e = m.with_doses(&none, &[dose(-5.0, 1.0)]).unwrap_err().to_string();
        assert!(e.contains("before the time origin"), "{e}");
        let mut d = dose(5.0, 1.0);
        d.target = "nope".into();
        assert!(m.with_doses(&none, &[d]).unwrap_err().to_string().contains("'nope'"));
        // G is defined by an assignment rule: a dose cannot change it.
        let mut d = dose(5.0, 1.0);
        d.target = "G".into();
        assert!(m.with_doses(&none, &[d]).unwrap_err().to_string().contains("rule"));
    }
}
