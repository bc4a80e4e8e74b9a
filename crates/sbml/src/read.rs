//! XML to [`Document`]: walks the roxmltree tree of the core namespace.

use std::path::Path;

use roxmltree::Node;

use crate::infix::parse_formula;
use crate::math::{Math, Op};
use crate::model::*;
use crate::{Diagnostic, Error, ErrorKind, Severity};

const MATHML_NS: &str = "http://www.w3.org/1998/Math/MathML";
/// Deepest MathML nesting read. Real models stay far below it (a few tens);
/// it keeps every recursive pass over expressions, here and downstream,
/// within a default thread stack.
pub const MAX_MATH_DEPTH: u32 = 256;
/// Packages whose elements another part of OpenVHT reads (fbc) or which are
/// flattened before reading (comp); a `required` flag on them is fine.
const HANDLED_PACKAGES: &[&str] = &["comp", "fbc"];

pub(crate) fn read(xml: &str, file: &str, origin: Option<&Path>) -> Result<(Document, Vec<Diagnostic>), Error> {
    let xdoc = roxmltree::Document::parse(xml).map_err(|e| {
        Error::from(ErrorKind::Xml { file: file.to_string(), line: e.pos().row, message: e.to_string() })
    })?;
    let root = xdoc.root_element();
    if root.tag_name().name() != "sbml" {
        return Err(Error::from(ErrorKind::NotSbml {
            file: file.to_string(),
            found: root.tag_name().name().to_string(),
        }));
    }
    let line = xdoc.text_pos_at(root.range().start).row;
    let mut diags = Vec::new();

    // Packages are declared by namespace; L3 marks them `prefix:required`.
    let mut uses_comp = false;
    for ns in root.namespaces() {
        let Some(pkg) = package_of(ns.uri()) else { continue };
        if pkg == "comp" {
            uses_comp = true;
        }
        let required = root
            .attributes()
            .find(|a| a.namespace() == Some(ns.uri()) && a.name() == "required")
            .map(|a| a.value() == "true" || a.value() == "1");
        if HANDLED_PACKAGES.contains(&pkg) {
            continue;
        }
        if required == Some(true) {
            return Err(Error::from(ErrorKind::UnsupportedPackage {
                package: pkg.to_string(),
                file: file.to_string(),
                line,
            }));
        }
        // Several namespaces can map to one package (e.g. layout and render).
        if !diags.iter().any(|d: &Diagnostic| d.message.contains(&format!("'{pkg}'"))) {
            diags.push(Diagnostic {
                severity: Severity::Warning,
                file: file.to_string(),
                line: Some(line),
                message: format!("package '{pkg}' is not used in simulation: its elements are ignored"),
            });
        }
    }
    if uses_comp {
        let flat = crate::comp::flatten(xml, origin.and_then(Path::parent))
            .map_err(|source| Error::from(ErrorKind::Comp { file: file.to_string(), source }))?;
        // The flattened text no longer declares comp, so this does not recurse again.
        let (doc, more) = read(&flat, file, None)?;
        diags.extend(more);
        return Ok((doc, diags));
    }

    let level_s = root.attribute("level").unwrap_or("");
    let version_s = root.attribute("version").unwrap_or("");
    let (level, version) = match (level_s.parse::<u32>(), version_s.parse::<u32>()) {
        (Ok(l @ 1..=3), Ok(v @ 1..=5)) => (l, v),
        _ => {
            return Err(Error::from(ErrorKind::UnsupportedLevel {
                file: file.to_string(),
                line,
                level: level_s.to_string(),
                version: version_s.to_string(),
            }))
        }
    };
    let core_ns = root.tag_name().namespace().map(str::to_string);
    let mut r = Reader {
        tree: std::marker::PhantomData,
        depth: std::cell::Cell::new(0),
        lines: crate::lines::LineIndex::new(xdoc.input_text()),
        file,
        level,
        version,
        core_ns,
        diags,
    };
    let model_node =
        r.child(root, "model").ok_or_else(|| Error::from(ErrorKind::NoModel { file: file.to_string() }))?;
    let model = r.model(model_node)?;
    let diags = r.diags;
    Ok((Document { level, version, model }, diags))
}

/// The package name in an L3 package namespace URI
/// (`http://www.sbml.org/sbml/level3/version1/layout/version1` → `layout`).
fn package_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("http://www.sbml.org/sbml/level3/")?;
    let mut parts = rest.split('/');
    let _lv = parts.next()?;
    let pkg = parts.next()?;
    if pkg == "core" || pkg.is_empty() {
        return None;
    }
    Some(pkg)
}

struct Reader<'a, 'input> {
    /// Ties the reader to the tree whose nodes it walks.
    tree: std::marker::PhantomData<&'a roxmltree::Document<'input>>,
    /// Current MathML nesting depth.
    depth: std::cell::Cell<u32>,
    lines: crate::lines::LineIndex,
    file: &'a str,
    level: u32,
    version: u32,
    core_ns: Option<String>,
    diags: Vec<Diagnostic>,
}

type N<'a, 'i> = Node<'a, 'i>;

impl<'a, 'i> Reader<'a, 'i> {
    fn line(&self, n: N) -> u32 {
        self.lines.line(n.range().start)
    }

    fn warn(&mut self, n: N, message: String) {
        let line = Some(self.line(n));
        self.diags.push(Diagnostic { severity: Severity::Warning, file: self.file.to_string(), line, message });
    }

    /// Whether `n` is a core SBML element (not one of a package).
    fn is_core(&self, n: N) -> bool {
        n.is_element() && n.tag_name().namespace() == self.core_ns.as_deref()
    }

    fn children(&self, n: N<'a, 'i>, name: &'static str) -> impl Iterator<Item = N<'a, 'i>> + '_ {
        n.children().filter(move |c| self.is_core(*c) && c.tag_name().name() == name)
    }

    fn child(&self, n: N<'a, 'i>, name: &'static str) -> Option<N<'a, 'i>> {
        self.children(n, name).next()
    }

    /// Elements of `listOf*` container(s) with one of the given names.
    fn list(&self, model: N<'a, 'i>, list: &'static str, names: &'static [&'static str]) -> Vec<N<'a, 'i>> {
        self.children(model, list)
            .flat_map(|l| l.children().filter(|c| self.is_core(*c) && names.contains(&c.tag_name().name())))
            .collect()
    }

    /// The identifier of an element: `name` in L1, `id` later.
    fn sid(&self, n: N) -> Result<String, Error> {
        let attr = if self.level == 1 { "name" } else { "id" };
        self.req(n, attr)
    }

    fn req(&self, n: N, attr: &str) -> Result<String, Error> {
        n.attribute(attr).map(|s| s.trim().to_string()).ok_or_else(|| {
            Error::from(ErrorKind::MissingAttribute {
                file: self.file.to_string(),
                line: self.line(n),
                element: n.tag_name().name().to_string(),
                id: n.attribute("id").or(n.attribute("name")).map(str::to_string),
                attribute: attr.to_string(),
            })
        })
    }

    fn bad_attr(&self, n: N, attr: &str, value: &str, expected: &'static str) -> Error {
        Error::from(ErrorKind::BadAttribute {
            file: self.file.to_string(),
            line: self.line(n),
            element: n.tag_name().name().to_string(),
            id: n.attribute("id").or(n.attribute("name")).map(str::to_string),
            attribute: attr.to_string(),
            value: value.to_string(),
            expected,
        })
    }

    fn num(&self, n: N, attr: &str) -> Result<Option<f64>, Error> {
        match n.attribute(attr) {
            None => Ok(None),
            Some(v) => parse_f64(v).map(Some).ok_or_else(|| self.bad_attr(n, attr, v, "a number")),
        }
    }

    fn boolean(&self, n: N, attr: &str) -> Result<Option<bool>, Error> {
        match n.attribute(attr).map(str::trim) {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(v) => Err(self.bad_attr(n, attr, v, "a boolean")),
        }
    }

    /// A boolean that L3 requires and earlier levels default: a missing L3
    /// value gets `default` with a warning rather than failing the read.
    fn l3_required_bool(&mut self, n: N, attr: &str, default: bool) -> Result<bool, Error> {
        match self.boolean(n, attr)? {
            Some(b) => Ok(b),
            None => {
                if self.level == 3 {
                    let id = n.attribute("id").map(|i| format!(" '{i}'")).unwrap_or_default();
                    self.warn(n, format!("<{}>{id} has no '{attr}' attribute; using {default}", n.tag_name().name()));
                }
                Ok(default)
            }
        }
    }

    fn opt_str(n: N, attr: &str) -> Option<String> {
        n.attribute(attr).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    fn model(&mut self, m: N<'a, 'i>) -> Result<Model, Error> {
        let mut model = Model {
            id: Self::opt_str(m, "id"),
            name: Self::opt_str(m, "name"),
            conversion_factor: Self::opt_str(m, "conversionFactor"),
            ..Model::default()
        };
        for f in self.list(m, "listOfFunctionDefinitions", &["functionDefinition"]) {
            model.function_definitions.push(self.function_definition(f)?);
        }
        for c in self.list(m, "listOfCompartments", &["compartment"]) {
            model.compartments.push(self.compartment(c)?);
        }
        for s in self.list(m, "listOfSpecies", &["species", "specie"]) {
            model.species.push(self.species(s)?);
        }
        for p in self.list(m, "listOfParameters", &["parameter"]) {
            model.parameters.push(self.parameter(p, true)?);
        }
        for ia in self.list(m, "listOfInitialAssignments", &["initialAssignment"]) {
            let symbol = self.req(ia, "symbol")?;
            let math = self.math_child(ia)?;
            model.initial_assignments.push(InitialAssignment { symbol, math, line: self.line(ia) });
        }
        let rule_names: &[&str] = &[
            "assignmentRule",
            "rateRule",
            "algebraicRule",
            "compartmentVolumeRule",
            "specieConcentrationRule",
            "speciesConcentrationRule",
            "parameterRule",
        ];
        for r in self.list(m, "listOfRules", rule_names) {
            model.rules.push(self.rule(r)?);
        }
        // Constraints only restrict valid trajectories; they never change a
        // simulation, so they are deliberately not read.
        for r in self.list(m, "listOfReactions", &["reaction"]) {
            model.reactions.push(self.reaction(r)?);
        }
        for (i, e) in self.list(m, "listOfEvents", &["event"]).into_iter().enumerate() {
            model.events.push(self.event(e, i)?);
        }
        Ok(model)
    }

    fn function_definition(&mut self, f: N<'a, 'i>) -> Result<FunctionDefinition, Error> {
        let id = self.req(f, "id")?;
        let line = self.line(f);
        let (args, body) = match self.math_child(f)? {
            Some(Math::Lambda(args, body)) => (args, Some(*body)),
            Some(_) => {
                return Err(Error::from(ErrorKind::BadMath {
                    file: self.file.to_string(),
                    line,
                    element: "functionDefinition".into(),
                    problem: format!("'{id}' does not contain a <lambda>"),
                }))
            }
            None => (Vec::new(), None),
        };
        Ok(FunctionDefinition { id, args, body, line })
    }

    fn compartment(&mut self, c: N<'a, 'i>) -> Result<Compartment, Error> {
        let id = self.sid(c)?;
        let line = self.line(c);
        let mut spatial_dimensions = self.num(c, "spatialDimensions")?;
        if self.level < 3 && spatial_dimensions.is_none() {
            spatial_dimensions = Some(3.0);
        }
        let size_attr = if self.level == 1 { "volume" } else { "size" };
        let mut size = self.num(c, size_attr)?;
        if self.level == 2 && size.is_none() {
            size = self.num(c, "volume")?;
        }
        // L1 and L2 default a missing size to 1 (a 0-D compartment has none).
        if self.level < 3 && size.is_none() && spatial_dimensions != Some(0.0) {
            size = Some(1.0);
        }
        let constant = match self.level {
            // L1 has no `constant`: a compartmentVolumeRule may change any volume.
            1 => false,
            2 => self.boolean(c, "constant")?.unwrap_or(true),
            _ => self.l3_required_bool(c, "constant", true)?,
        };
        Ok(Compartment { id, spatial_dimensions, size, constant, line })
    }

    fn species(&mut self, s: N<'a, 'i>) -> Result<Species, Error> {
        let id = self.sid(s)?;
        let line = self.line(s);
        let compartment = self.req(s, "compartment")?;
        let initial_amount = self.num(s, "initialAmount")?;
        let initial_concentration = if self.level == 1 { None } else { self.num(s, "initialConcentration")? };
        let (has_only_substance_units, boundary_condition, constant) = if self.level == 3 {
            (
                self.l3_required_bool(s, "hasOnlySubstanceUnits", false)?,
                self.l3_required_bool(s, "boundaryCondition", false)?,
                self.l3_required_bool(s, "constant", false)?,
            )
        } else {
            (
                self.boolean(s, "hasOnlySubstanceUnits")?.unwrap_or(false),
                self.boolean(s, "boundaryCondition")?.unwrap_or(false),
                self.boolean(s, "constant")?.unwrap_or(false),
            )
        };
        let conversion_factor = Self::opt_str(s, "conversionFactor");
        Ok(Species {
            id,
            compartment,
            initial_amount,
            initial_concentration,
            has_only_substance_units,
            boundary_condition,
            constant,
            conversion_factor,
            line,
        })
    }

    /// A global parameter, or a local one (`global == false`, whose
    /// `constant` is always true: local parameters cannot change).
    fn parameter(&mut self, p: N<'a, 'i>, global: bool) -> Result<Parameter, Error> {
        let id = self.sid(p)?;
        let line = self.line(p);
        let value = self.num(p, "value")?;
        let constant = if !global {
            true
        } else {
            match self.level {
                // L1 parameters may be changed by a parameterRule.
                1 => false,
                2 => self.boolean(p, "constant")?.unwrap_or(true),
                _ => self.l3_required_bool(p, "constant", true)?,
            }
        };
        Ok(Parameter { id, value, constant, line })
    }

    fn rule(&mut self, r: N<'a, 'i>) -> Result<Rule, Error> {
        let line = self.line(r);
        let name = r.tag_name().name();
        let (kind, variable) = match name {
            "assignmentRule" => (RuleKind::Assignment, Some(self.req(r, "variable")?)),
            "rateRule" => (RuleKind::Rate, Some(self.req(r, "variable")?)),
            "algebraicRule" => (RuleKind::Algebraic, None),
            _ => {
                // L1 rules: the variable attribute depends on the element, and
                // `type="rate"` makes it a rate rule.
                let attr = match name {
                    "compartmentVolumeRule" => "compartment",
                    "specieConcentrationRule" => {
                        if r.has_attribute("specie") {
                            "specie"
                        } else {
                            "species"
                        }
                    }
                    "speciesConcentrationRule" => "species",
                    _ => "name",
                };
                let var = self.req(r, attr)?;
                let kind = if r.attribute("type") == Some("rate") { RuleKind::Rate } else { RuleKind::Assignment };
                (kind, Some(var))
            }
        };
        let math = self.math_child(r)?;
        Ok(Rule { kind, variable, math, line })
    }

    fn species_ref(&mut self, n: N<'a, 'i>) -> Result<SpeciesReference, Error> {
        let line = self.line(n);
        let species =
            if self.level == 1 && n.has_attribute("specie") { self.req(n, "specie")? } else { self.req(n, "species")? };
        let id = if self.level >= 2 { Self::opt_str(n, "id") } else { None };
        let mut stoichiometry = self.num(n, "stoichiometry")?;
        let mut stoichiometry_math = None;
        if self.level == 1 {
            let den = self.num(n, "denominator")?.unwrap_or(1.0);
            stoichiometry = Some(stoichiometry.unwrap_or(1.0) / den);
        } else if self.level == 2 {
            if let Some(sm) = self.child(n, "stoichiometryMath") {
                stoichiometry_math = self.math_child(sm)?;
            }
            if stoichiometry.is_none() && stoichiometry_math.is_none() {
                stoichiometry = Some(1.0);
            }
        }
        let constant = if self.level == 3 { self.boolean(n, "constant")? } else { None };
        Ok(SpeciesReference { id, species, stoichiometry, stoichiometry_math, constant, line })
    }

    fn reaction(&mut self, r: N<'a, 'i>) -> Result<Reaction, Error> {
        let line = self.line(r);
        let id = self.sid(r)?;
        let reversible = if self.level == 3 {
            self.l3_required_bool(r, "reversible", true)?
        } else {
            self.boolean(r, "reversible")?.unwrap_or(true)
        };
        // `fast` was removed in L3V2; L3V1 requires it.
        let fast = if self.level == 3 && self.version == 1 {
            self.l3_required_bool(r, "fast", false)?
        } else {
            self.boolean(r, "fast")?.unwrap_or(false)
        };
        let mut reactants = Vec::new();
        for n in self.list(r, "listOfReactants", &["speciesReference", "specieReference"]) {
            reactants.push(self.species_ref(n)?);
        }
        let mut products = Vec::new();
        for n in self.list(r, "listOfProducts", &["speciesReference", "specieReference"]) {
            products.push(self.species_ref(n)?);
        }
        let mut modifiers = Vec::new();
        for n in self.list(r, "listOfModifiers", &["modifierSpeciesReference"]) {
            modifiers.push(self.req(n, "species")?);
        }
        let kinetic_law = match self.child(r, "kineticLaw") {
            None => None,
            Some(k) => {
                let kline = self.line(k);
                let math = if self.level == 1 { Some(self.formula(k, "formula")?) } else { self.math_child(k)? };
                let mut local_parameters = Vec::new();
                for p in self.list(k, "listOfParameters", &["parameter"]) {
                    local_parameters.push(self.parameter(p, false)?);
                }
                for p in self.list(k, "listOfLocalParameters", &["localParameter"]) {
                    local_parameters.push(self.parameter(p, false)?);
                }
                Some(KineticLaw { math, local_parameters, line: kline })
            }
        };
        Ok(Reaction { id, reversible, fast, reactants, products, modifiers, kinetic_law, line })
    }

    fn event(&mut self, e: N<'a, 'i>, index: usize) -> Result<Event, Error> {
        let line = self.line(e);
        let id = Self::opt_str(e, "id").unwrap_or_else(|| format!("event{}", index + 1));
        let (mut trigger, mut initial_value, mut persistent) = (None, true, true);
        if let Some(t) = self.child(e, "trigger") {
            trigger = self.math_child(t)?;
            if self.level == 3 {
                initial_value = self.l3_required_bool(t, "initialValue", true)?;
                persistent = self.l3_required_bool(t, "persistent", true)?;
            }
        }
        let delay = match self.child(e, "delay") {
            Some(d) => self.math_child(d)?,
            None => None,
        };
        let priority = match self.child(e, "priority") {
            Some(p) => self.math_child(p)?,
            None => None,
        };
        let use_values_from_trigger_time = if self.level == 3 {
            self.l3_required_bool(e, "useValuesFromTriggerTime", true)?
        } else {
            self.boolean(e, "useValuesFromTriggerTime")?.unwrap_or(true)
        };
        let mut assignments = Vec::new();
        for a in self.list(e, "listOfEventAssignments", &["eventAssignment"]) {
            let variable = self.req(a, "variable")?;
            let math = self.math_child(a)?;
            assignments.push(EventAssignment { variable, math, line: self.line(a) });
        }
        Ok(Event {
            id,
            trigger,
            initial_value,
            persistent,
            delay,
            priority,
            use_values_from_trigger_time,
            assignments,
            line,
        })
    }

    /// The math of an element: its `<math>` child, or in L1 its `formula`.
    fn math_child(&mut self, n: N<'a, 'i>) -> Result<Option<Math>, Error> {
        if self.level == 1 {
            return if n.has_attribute("formula") { Ok(Some(self.formula(n, "formula")?)) } else { Ok(None) };
        }
        let Some(m) = n.children().find(|c| c.is_element() && c.tag_name().name() == "math") else {
            return Ok(None);
        };
        match elements(m).next() {
            None => Ok(None),
            Some(first) => self.mathml(first).map(Some),
        }
    }

    fn formula(&self, n: N, attr: &str) -> Result<Math, Error> {
        let text = self.req(n, attr)?;
        parse_formula(&text).map_err(|e| {
            Error::from(ErrorKind::BadFormula {
                file: self.file.to_string(),
                line: self.line(n),
                formula: text.clone(),
                at: e.at,
                problem: e.problem,
            })
        })
    }

    fn math_err(&self, n: N, problem: impl Into<String>) -> Error {
        Error::from(ErrorKind::BadMath {
            file: self.file.to_string(),
            line: self.line(n),
            element: n.tag_name().name().to_string(),
            problem: problem.into(),
        })
    }

    /// MathML to [`Math`]. Recursion is bounded by [`MAX_MATH_DEPTH`] (an
    /// error past it, never a stack overflow), and the recursive path is
    /// kept to small stack frames: the per-element work is in helpers that
    /// are not inlined into it.
    fn mathml(&self, n: N<'a, 'i>) -> Result<Math, Error> {
        let depth = self.depth.get();
        if depth >= MAX_MATH_DEPTH {
            return Err(self.math_err(n, format!("is nested more than {MAX_MATH_DEPTH} levels deep")));
        }
        self.depth.set(depth + 1);
        let result = match n.tag_name().name() {
            "semantics" => self.semantics(n),
            "apply" => self.apply(n),
            "piecewise" => self.piecewise(n),
            "lambda" => self.lambda(n),
            _ => self.leaf(n),
        };
        self.depth.set(depth);
        result
    }

    #[inline(never)]
    fn leaf(&self, n: N) -> Result<Math, Error> {
        if n.tag_name().namespace().is_some_and(|ns| ns != MATHML_NS) {
            return Err(self.math_err(n, "is not a MathML element"));
        }
        Ok(match n.tag_name().name() {
            "cn" => Math::Num(self.cn(n)?),
            "ci" => Math::Ci(text_of(n).trim().to_string()),
            "true" => Math::Num(1.0),
            "false" => Math::Num(0.0),
            "pi" => Math::Num(std::f64::consts::PI),
            "exponentiale" => Math::Num(std::f64::consts::E),
            "infinity" => Math::Num(f64::INFINITY),
            "notanumber" => Math::Num(f64::NAN),
            "csymbol" => match csymbol_kind(n) {
                Some("time") => Math::Time,
                Some("avogadro") => Math::Avogadro,
                Some(other) => {
                    return Err(self.math_err(n, format!("csymbol '{other}' is a function and must be applied")))
                }
                None => return Err(self.math_err(n, "has an unknown definitionURL")),
            },
            other => return Err(self.math_err(n, format!("<{other}> is not MathML that SBML allows"))),
        })
    }

    #[inline(never)]
    fn semantics(&self, n: N<'a, 'i>) -> Result<Math, Error> {
        let first = elements(n)
            .find(|c| !matches!(c.tag_name().name(), "annotation" | "annotation-xml"))
            .ok_or_else(|| self.math_err(n, "is empty"))?;
        self.mathml(first)
    }

    #[inline(never)]
    fn piecewise(&self, n: N<'a, 'i>) -> Result<Math, Error> {
        let mut pieces = Vec::new();
        let mut otherwise = None;
        for c in elements(n) {
            match c.tag_name().name() {
                "piece" => {
                    let kids: Vec<_> = elements(c).collect();
                    if kids.len() != 2 {
                        return Err(self.math_err(c, format!("has {} children, expected 2", kids.len())));
                    }
                    pieces.push((self.mathml(kids[0])?, self.mathml(kids[1])?));
                }
                "otherwise" => {
                    let kid = elements(c).next().ok_or_else(|| self.math_err(c, "is empty"))?;
                    otherwise = Some(Box::new(self.mathml(kid)?));
                }
                other => return Err(self.math_err(c, format!("<{other}> is not allowed in <piecewise>"))),
            }
        }
        Ok(Math::Piecewise(pieces, otherwise))
    }

    #[inline(never)]
    fn lambda(&self, n: N<'a, 'i>) -> Result<Math, Error> {
        let mut args = Vec::new();
        let mut body = None;
        for c in elements(n) {
            if c.tag_name().name() == "bvar" {
                let ci = elements(c).next().ok_or_else(|| self.math_err(c, "is empty"))?;
                args.push(text_of(ci).trim().to_string());
            } else if body.is_none() {
                body = Some(self.mathml(c)?);
            }
        }
        // A lambda without a body (L3V2 allows it) evaluates to NaN.
        Ok(Math::Lambda(args, Box::new(body.unwrap_or(Math::Num(f64::NAN)))))
    }

    fn cn(&self, n: N) -> Result<f64, Error> {
        // The parts of a cn separated by <sep/>.
        let mut parts = vec![String::new()];
        for c in n.children() {
            if c.is_text() {
                if let Some(last) = parts.last_mut() {
                    last.push_str(c.text().unwrap_or(""));
                }
            } else if c.is_element() && c.tag_name().name() == "sep" {
                parts.push(String::new());
            }
        }
        let nums: Vec<Option<f64>> = parts.iter().map(|p| parse_f64(p)).collect();
        let kind = n.attribute("type").unwrap_or("real");
        let bad = || self.math_err(n, format!("'{}' is not a number of type {kind}", parts.join(" <sep/> ").trim()));
        match (kind, nums.as_slice()) {
            ("e-notation", [Some(m), Some(e)]) => Ok(m * 10f64.powf(*e)),
            ("rational", [Some(a), Some(b)]) => Ok(a / b),
            ("integer" | "real" | "double", [Some(v)]) => Ok(*v),
            _ => Err(bad()),
        }
    }

    #[inline(never)]
    fn apply(&self, n: N<'a, 'i>) -> Result<Math, Error> {
        let mut kids = elements(n);
        let head = kids.next().ok_or_else(|| self.math_err(n, "has no operator"))?;
        let mut args = Vec::new();
        let mut qualifier = None;
        for c in kids {
            match c.tag_name().name() {
                "degree" | "logbase" => {
                    let inner = elements(c).next().ok_or_else(|| self.math_err(c, "is empty"))?;
                    qualifier = Some(self.mathml(inner)?);
                }
                "bvar" => return Err(self.math_err(c, "is only allowed in <lambda>")),
                _ => args.push(self.mathml(c)?),
            }
        }
        self.operator(n, head, args, qualifier)
    }

    /// The operator of an `<apply>`, once its arguments are read.
    #[inline(never)]
    fn operator(&self, n: N, head: N, mut args: Vec<Math>, qualifier: Option<Math>) -> Result<Math, Error> {
        let hname = head.tag_name().name();
        let op = match hname {
            "ci" => Op::Call(text_of(head).trim().to_string()),
            "csymbol" => match csymbol_kind(head) {
                Some("delay") => Op::Delay,
                Some("rateOf") => Op::RateOf,
                Some(other) => return Err(self.math_err(head, format!("csymbol '{other}' cannot be applied"))),
                None => return Err(self.math_err(head, "has an unknown definitionURL")),
            },
            _ => {
                Op::from_mathml(hname).ok_or_else(|| self.math_err(n, format!("has an unknown operator <{hname}>")))?
            }
        };
        match op {
            Op::Root => args.insert(0, qualifier.unwrap_or(Math::Num(2.0))),
            Op::Log => args.insert(0, qualifier.unwrap_or(Math::Num(10.0))),
            _ => {
                if qualifier.is_some() {
                    return Err(self.math_err(n, format!("<{hname}> takes no <degree> or <logbase>")));
                }
            }
        }
        Ok(Math::Apply(op, args))
    }
}

fn elements<'a, 'i>(n: N<'a, 'i>) -> impl Iterator<Item = N<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

fn text_of(n: N) -> String {
    n.children().filter_map(|c| c.text()).collect()
}

/// Which SBML csymbol an element is, from the end of its definitionURL.
fn csymbol_kind<'a>(n: N<'a, '_>) -> Option<&'a str> {
    let url = n.attribute("definitionURL")?.trim();
    let last = url.rsplit('/').next()?;
    match last {
        "time" | "delay" | "avogadro" | "rateOf" => Some(last),
        _ => None,
    }
}

/// Numbers as SBML writes them, including `INF`, `-INF` and `NaN`.
fn parse_f64(s: &str) -> Option<f64> {
    let t = s.trim();
    match t {
        "INF" | "inf" | "Infinity" | "infinity" => Some(f64::INFINITY),
        "-INF" | "-inf" | "-Infinity" | "-infinity" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => t.parse().ok(),
    }
}
