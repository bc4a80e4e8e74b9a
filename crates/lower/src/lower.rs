//! The lowering proper: decides what determines each SBML quantity, creates
//! the IR symbols, and fills in their equations.

use std::collections::HashMap;

use vht_ir::{Event, EventAssignment, Expr, Model, Role, SpeciesView, Sym, SymbolKind};
use vht_sbml::{Diagnostic, Document, FunctionDefinition, RuleKind, Severity, Species, SpeciesReference};

use crate::convert::{inline_calls, Converter, Scope, RATE_OF_BASE};
use crate::{matching, LowerError};

/// The lowered math of a model, before symbols get their kinds.
pub(crate) struct Lowered<'d> {
    /// Per rule (None where it has no math).
    rules: Vec<Option<Expr>>,
    /// Initial assignments by symbol.
    ias: HashMap<&'d str, Expr>,
    /// Per reaction: its kinetic law.
    fluxes: Vec<Expr>,
    /// Per reaction: the stoichiometries of its reactants and products.
    stoich: Vec<(Vec<Expr>, Vec<Expr>)>,
}

/// What an SBML id names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Entity {
    Compartment(usize),
    Species(usize),
    Parameter(usize),
    Reaction(usize),
    /// Reaction index, product (true) or reactant, index in that list.
    SpeciesRef(usize, bool, usize),
}

impl Entity {
    fn what(self) -> &'static str {
        match self {
            Entity::Compartment(_) => "compartment",
            Entity::Species(_) => "species",
            Entity::Parameter(_) => "parameter",
            Entity::Reaction(_) => "reaction",
            Entity::SpeciesRef(..) => "species reference",
        }
    }
}

/// A sort key putting entities in model order.
fn entity_rank(e: &Entity) -> (u8, usize, usize) {
    match *e {
        Entity::Compartment(i) => (0, i, 0),
        Entity::Species(i) => (1, i, 0),
        Entity::Parameter(i) => (2, i, 0),
        Entity::Reaction(i) => (3, i, 0),
        Entity::SpeciesRef(r, p, j) => (4, r, 2 * j + p as usize),
    }
}

/// What determines a quantity over time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Setter {
    /// Only its initial value and events.
    Nothing,
    AssignmentRule(usize),
    RateRule(usize),
    /// Algebraic rule (index into the model's rules).
    Algebraic(usize),
    /// A species changed by reactions.
    Reactions,
}

fn setter_name(s: Setter, doc: &Document) -> String {
    let line = |i: usize| doc.model.rules.get(i).map(|r| r.line).unwrap_or(0);
    match s {
        Setter::Nothing => "nothing".into(),
        Setter::AssignmentRule(i) => format!("an assignment rule (line {})", line(i)),
        Setter::RateRule(i) => format!("a rate rule (line {})", line(i)),
        Setter::Algebraic(i) => format!("an algebraic rule (line {})", line(i)),
        Setter::Reactions => "reactions".into(),
    }
}

pub(crate) struct Lowering<'d> {
    pub doc: &'d Document,
    pub file: String,
    pub ids: HashMap<String, Entity>,
    pub setters: HashMap<String, Setter>,
    pub funcs: HashMap<String, &'d FunctionDefinition>,
    pub syms: HashMap<String, Sym>,
    /// Species whose SBML symbol is a concentration computed from an amount
    /// symbol: species index → (amount symbol, compartment symbol).
    pub amounts: HashMap<usize, (Sym, Sym)>,
    pub locals: Vec<HashMap<String, Sym>>,
    pub model: Model,
    pub diags: Vec<Diagnostic>,
}

pub(crate) fn lower(doc: &Document, file: &str) -> Result<(Model, Vec<Diagnostic>), LowerError> {
    let mut l = Lowering {
        doc,
        file: file.to_string(),
        ids: HashMap::new(),
        setters: HashMap::new(),
        funcs: HashMap::new(),
        syms: HashMap::new(),
        amounts: HashMap::new(),
        locals: Vec::new(),
        model: Model {
            name: doc.model.id.clone().or_else(|| doc.model.name.clone()).unwrap_or_default(),
            ..Model::default()
        },
        diags: Vec::new(),
    };
    l.index()?;
    l.decide_setters()?;
    l.create_symbols();
    l.fill()?;
    l.model.check().map_err(|source| LowerError::Check { file: l.file.clone(), source })?;
    Ok((l.model, l.diags))
}

impl<'d> Lowering<'d> {
    fn warn(&mut self, line: Option<u32>, message: String) {
        self.diags.push(Diagnostic { severity: Severity::Warning, file: self.file.clone(), line, message });
    }

    fn undefined(&self, context: String, what: &'static str, id: &str) -> LowerError {
        LowerError::Undefined { file: self.file.clone(), context, what, id: id.to_string() }
    }

    fn index(&mut self) -> Result<(), LowerError> {
        let m = &self.doc.model;
        let add = |ids: &mut HashMap<String, Entity>, id: &str, e: Entity| -> Result<(), LowerError> {
            if ids.insert(id.to_string(), e).is_some() {
                return Err(LowerError::DuplicateId { file: self.file.clone(), id: id.to_string() });
            }
            Ok(())
        };
        for (i, c) in m.compartments.iter().enumerate() {
            add(&mut self.ids, &c.id, Entity::Compartment(i))?;
        }
        for (i, s) in m.species.iter().enumerate() {
            add(&mut self.ids, &s.id, Entity::Species(i))?;
        }
        for (i, p) in m.parameters.iter().enumerate() {
            add(&mut self.ids, &p.id, Entity::Parameter(i))?;
        }
        for (i, r) in m.reactions.iter().enumerate() {
            add(&mut self.ids, &r.id, Entity::Reaction(i))?;
            for (product, list) in [(false, &r.reactants), (true, &r.products)] {
                for (j, sr) in list.iter().enumerate() {
                    if let Some(id) = &sr.id {
                        add(&mut self.ids, id, Entity::SpeciesRef(i, product, j))?;
                    }
                }
            }
        }
        // Function ids share the model's one namespace.
        for f in &m.function_definitions {
            if self.ids.contains_key(&f.id) || self.funcs.insert(f.id.clone(), f).is_some() {
                return Err(LowerError::DuplicateId { file: self.file.clone(), id: f.id.clone() });
            }
        }
        Ok(())
    }

    fn species_ref(&self, r: usize, product: bool, j: usize) -> Option<&'d SpeciesReference> {
        let rx = self.doc.model.reactions.get(r)?;
        if product {
            rx.products.get(j)
        } else {
            rx.reactants.get(j)
        }
    }

    fn set(&mut self, id: &str, s: Setter) -> Result<(), LowerError> {
        let old = self.setters.get(id).copied().unwrap_or(Setter::Nothing);
        if old != Setter::Nothing && old != s {
            return Err(LowerError::Overdetermined {
                file: self.file.clone(),
                id: id.to_string(),
                first: setter_name(old, self.doc),
                second: setter_name(s, self.doc),
            });
        }
        self.setters.insert(id.to_string(), s);
        Ok(())
    }

    fn setter(&self, id: &str) -> Setter {
        self.setters.get(id).copied().unwrap_or(Setter::Nothing)
    }

    fn decide_setters(&mut self) -> Result<(), LowerError> {
        let m = &self.doc.model;
        for (i, rule) in m.rules.iter().enumerate() {
            let Some(var) = &rule.variable else { continue };
            let (setter, kind) = match rule.kind {
                RuleKind::Assignment => (Setter::AssignmentRule(i), "assignment rule"),
                RuleKind::Rate => (Setter::RateRule(i), "rate rule"),
                RuleKind::Algebraic => continue,
            };
            let context = format!("{kind} (line {})", rule.line);
            match self.ids.get(var) {
                None => return Err(self.undefined(context, "variable", var)),
                Some(e @ Entity::Reaction(_)) => {
                    return Err(LowerError::BadTarget {
                        file: self.file.clone(),
                        context,
                        id: var.clone(),
                        what: e.what(),
                    })
                }
                Some(_) => self.set(var, setter)?,
            }
        }
        for r in &m.reactions {
            let context = format!("reaction '{}'", r.id);
            for sr in r.reactants.iter().chain(&r.products) {
                let Some(Entity::Species(si)) = self.ids.get(&sr.species).copied() else {
                    return Err(self.undefined(context, "species", &sr.species));
                };
                let sp = &m.species[si];
                if !sp.boundary_condition && !sp.constant {
                    match self.setter(&sp.id) {
                        Setter::Nothing | Setter::Reactions => {
                            self.setters.insert(sp.id.clone(), Setter::Reactions);
                        }
                        other => {
                            return Err(LowerError::Overdetermined {
                                file: self.file.clone(),
                                id: sp.id.clone(),
                                first: setter_name(other, self.doc),
                                second: context,
                            })
                        }
                    }
                }
            }
            for md in &r.modifiers {
                if !matches!(self.ids.get(md), Some(Entity::Species(_))) {
                    return Err(self.undefined(context, "species", md));
                }
            }
        }
        self.match_algebraic()
    }

    /// Gives each algebraic rule one unknown among the non-constant
    /// quantities it mentions that nothing else determines.
    fn match_algebraic(&mut self) -> Result<(), LowerError> {
        let m = &self.doc.model;
        let rules: Vec<usize> = m
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == RuleKind::Algebraic && r.math.is_some())
            .map(|(i, _)| i)
            .collect();
        if rules.is_empty() {
            return Ok(());
        }
        let event_targets: Vec<&str> =
            m.events.iter().flat_map(|e| e.assignments.iter().map(|a| a.variable.as_str())).collect();
        let mut candidates: Vec<String> = Vec::new();
        let mut adj = Vec::new();
        for &ri in &rules {
            let Some(math) = &m.rules[ri].math else { continue };
            let inlined = inline_calls(math, &self.funcs, 0);
            let mut row = Vec::new();
            for id in inlined.identifiers() {
                let Some(&e) = self.ids.get(id) else { continue };
                if self.setter(id) != Setter::Nothing {
                    continue;
                }
                let variable = match e {
                    Entity::Compartment(i) => !m.compartments[i].constant,
                    Entity::Species(i) => !m.species[i].constant,
                    Entity::Parameter(i) => !m.parameters[i].constant,
                    Entity::SpeciesRef(r, p, j) => {
                        self.species_ref(r, p, j).is_some_and(|sr| sr.constant != Some(true))
                    }
                    Entity::Reaction(_) => false,
                };
                if !variable {
                    continue;
                }
                let k = match candidates.iter().position(|c| c == id) {
                    Some(k) => k,
                    None => {
                        candidates.push(id.to_string());
                        candidates.len() - 1
                    }
                };
                row.push(k);
            }
            // Preference among candidates: quantities no event sets (case
            // 01589: `0 = Q + R - S` with events on Q and R determines S),
            // then those without an initial value, then model order
            // (case 01787: `0 = S2 - S1` determines S1, not S2 read first).
            row.sort_by_key(|&k| {
                let id = candidates[k].as_str();
                (event_targets.contains(&id), self.has_value(id), self.ids.get(id).map(entity_rank))
            });
            adj.push(row);
        }
        match matching::match_rules(&adj, candidates.len()) {
            Ok(assign) => {
                for (k, &ri) in rules.iter().enumerate() {
                    let id = candidates[assign[k]].clone();
                    self.setters.insert(id, Setter::Algebraic(ri));
                }
                Ok(())
            }
            Err(k) => Err(LowerError::UnmatchedAlgebraicRule {
                file: self.file.clone(),
                index: rules[k] + 1,
                line: m.rules[rules[k]].line,
            }),
        }
    }

    /// Whether a quantity has an initial value (attribute or initial assignment).
    fn has_value(&self, id: &str) -> bool {
        let m = &self.doc.model;
        if m.initial_assignments.iter().any(|ia| ia.symbol == id) {
            return true;
        }
        match self.ids.get(id) {
            Some(Entity::Compartment(i)) => m.compartments[*i].size.is_some(),
            Some(Entity::Species(i)) => {
                m.species[*i].initial_amount.is_some() || m.species[*i].initial_concentration.is_some()
            }
            Some(Entity::Parameter(i)) => m.parameters[*i].value.is_some(),
            Some(Entity::SpeciesRef(r, p, j)) => {
                self.species_ref(*r, *p, *j).is_some_and(|sr| sr.stoichiometry.is_some())
            }
            _ => false,
        }
    }

    /// Whether a species' SBML symbol means a concentration.
    pub(crate) fn is_concentration(&self, s: &Species) -> bool {
        // A 0-D compartment still has a size in the test suite's reading
        // (case 01809: amount = initialConcentration × size), so it is
        // treated like any other compartment.
        !s.has_only_substance_units
    }

    fn create_symbols(&mut self) {
        let m = &self.doc.model;
        let nan = || Expr::Num(f64::NAN);
        for c in &m.compartments {
            let s = self.model.add(&c.id, Role::Compartment, SymbolKind::Parameter, nan());
            self.syms.insert(c.id.clone(), s);
        }
        for (i, sp) in m.species.iter().enumerate() {
            let s = self.model.add(&sp.id, Role::Species, SymbolKind::Parameter, nan());
            self.syms.insert(sp.id.clone(), s);
            let needs_amount =
                self.is_concentration(sp) && matches!(self.setter(&sp.id), Setter::Nothing | Setter::Reactions);
            if needs_amount {
                if let Some(Entity::Compartment(_)) = self.ids.get(&sp.compartment) {
                    // '.' cannot occur in an SBML id, so this name is free.
                    let a = self.model.add(&format!("{}.amount", sp.id), Role::Internal, SymbolKind::Parameter, nan());
                    let c = self.syms[&sp.compartment];
                    self.amounts.insert(i, (a, c));
                }
            }
        }
        for p in &m.parameters {
            let s = self.model.add(&p.id, Role::Parameter, SymbolKind::Parameter, nan());
            self.syms.insert(p.id.clone(), s);
        }
        for r in &m.reactions {
            let s = self.model.add(&r.id, Role::Reaction, SymbolKind::Assigned { expr: Expr::Num(0.0) }, nan());
            self.syms.insert(r.id.clone(), s);
        }
        for r in &m.reactions {
            let mut locals = HashMap::new();
            if let Some(kl) = &r.kinetic_law {
                for p in &kl.local_parameters {
                    let name = format!("{}.{}", r.id, p.id);
                    let s = self.model.add(
                        &name,
                        Role::Parameter,
                        SymbolKind::Parameter,
                        p.value.map_or_else(nan, Expr::Num),
                    );
                    locals.insert(p.id.clone(), s);
                }
            }
            self.locals.push(locals);
        }
        for r in &m.reactions {
            for sr in r.reactants.iter().chain(&r.products) {
                if let Some(id) = &sr.id {
                    let s = self.model.add(id, Role::Stoichiometry, SymbolKind::Parameter, nan());
                    self.syms.insert(id.clone(), s);
                }
            }
        }
    }

    /// Fills in every symbol's equation, the algebraic equations and the
    /// events. Math is lowered first (it needs only names); the kinds then
    /// follow from the setters decided earlier.
    fn fill(&mut self) -> Result<(), LowerError> {
        let funcs = std::mem::take(&mut self.funcs);
        let syms = std::mem::take(&mut self.syms);
        let file = self.file.clone();
        let mut conv = Converter { file: &file, funcs: &funcs, syms: &syms, rate_of: Vec::new(), nesting: 0 };
        let lowered = self.lower_math(&mut conv, &syms)?;
        let fast = crate::fast::FastSystem::new(self);
        let amount_rates = self.reaction_rates(&syms, &lowered, &fast)?;
        self.fill_values(&syms, &lowered);
        self.fill_species(&syms, &lowered, amount_rates)?;
        self.fill_events(&mut conv, &syms)?;
        let Lowered { stoich, .. } = lowered;
        fast.apply(self, &syms, &stoich)?;

        // An algebraic unknown nothing gives a value still needs a finite
        // first guess for the solver; 0 is what SBML tools conventionally use.
        for sym in &mut self.model.symbols {
            if matches!(sym.kind, SymbolKind::Algebraic) && matches!(sym.initial, Expr::Num(x) if x.is_nan()) {
                sym.initial = Expr::Num(0.0);
            }
        }

        let targets = std::mem::take(&mut conv.rate_of);
        drop(conv);
        self.resolve_rate_of(&targets);
        self.funcs = funcs;
        self.syms = syms;
        Ok(())
    }

    /// Rules, initial assignments, kinetic laws and stoichiometries, in SBML
    /// meaning (a species id reads what SBML says it means).
    fn lower_math(&mut self, conv: &mut Converter, syms: &HashMap<String, Sym>) -> Result<Lowered<'d>, LowerError> {
        let m = &self.doc.model;
        let file = self.file.clone();
        // Rules and initial assignments, in SBML meaning.
        let mut rule_exprs: Vec<Option<Expr>> = Vec::with_capacity(m.rules.len());
        for (i, r) in m.rules.iter().enumerate() {
            let ctx = match (&r.kind, &r.variable) {
                (RuleKind::Assignment, Some(v)) => format!("assignment rule for '{v}'"),
                (RuleKind::Rate, Some(v)) => format!("rate rule for '{v}'"),
                _ => format!("algebraic rule {}", i + 1),
            };
            let e = match &r.math {
                Some(math) => Some(conv.expr(math, &Scope::new(&ctx, None))?),
                None => {
                    self.warn(Some(r.line), format!("{ctx} has no math; it is ignored"));
                    None
                }
            };
            rule_exprs.push(e);
        }
        let mut ias: HashMap<&str, Expr> = HashMap::new();
        for ia in &m.initial_assignments {
            let ctx = format!("initial assignment for '{}'", ia.symbol);
            match self.ids.get(&ia.symbol) {
                None => return Err(self.undefined(ctx, "symbol", &ia.symbol)),
                Some(e @ Entity::Reaction(_)) => {
                    return Err(LowerError::BadTarget {
                        file: file.clone(),
                        context: ctx,
                        id: ia.symbol.clone(),
                        what: e.what(),
                    })
                }
                Some(_) => {}
            }
            if let Some(math) = &ia.math {
                let e = conv.expr(math, &Scope::new(&ctx, None))?;
                ias.insert(ia.symbol.as_str(), e);
            } else {
                self.warn(Some(ia.line), format!("{ctx} has no math; it is ignored"));
            }
        }

        // Kinetic laws.
        let mut fluxes = Vec::with_capacity(m.reactions.len());
        for (ri, r) in m.reactions.iter().enumerate() {
            let ctx = format!("reaction '{}'", r.id);
            let math = r.kinetic_law.as_ref().and_then(|k| k.math.as_ref());
            let e = match math {
                Some(math) => conv.expr(math, &Scope::new(&ctx, self.locals.get(ri)))?,
                None => {
                    self.warn(Some(r.line), format!("{ctx} has no kinetic law; its rate is 0"));
                    Expr::Num(0.0)
                }
            };
            fluxes.push(e);
        }

        // Stoichiometries (signed later) per species reference.
        let mut stoich: Vec<(Vec<Expr>, Vec<Expr>)> = Vec::new();
        for r in &m.reactions {
            let mut sides = (Vec::new(), Vec::new());
            for (product, list) in [(false, &r.reactants), (true, &r.products)] {
                for sr in list {
                    let e = if let Some(sm) = &sr.stoichiometry_math {
                        let ctx = format!("stoichiometryMath of '{}' in reaction '{}'", sr.species, r.id);
                        conv.expr(sm, &Scope::new(&ctx, None))?
                    } else if let Some(id) = &sr.id {
                        Expr::Sym(syms[id])
                    } else if let Some(v) = sr.stoichiometry {
                        Expr::Num(v)
                    } else {
                        self.warn(
                            Some(sr.line),
                            format!(
                                "species reference to '{}' in reaction '{}' has no stoichiometry",
                                sr.species, r.id
                            ),
                        );
                        Expr::Num(f64::NAN)
                    };
                    if product {
                        sides.1.push(e)
                    } else {
                        sides.0.push(e)
                    }
                }
            }
            stoich.push(sides);
        }

        Ok(Lowered { rules: rule_exprs, ias, fluxes, stoich })
    }

    /// Sets the reaction flux symbols and returns, per species that
    /// reactions change, the rate of its amount (fast reactions left out).
    fn reaction_rates(
        &mut self,
        syms: &HashMap<String, Sym>,
        lowered: &Lowered,
        fast: &crate::fast::FastSystem,
    ) -> Result<HashMap<usize, Expr>, LowerError> {
        let m = &self.doc.model;
        let (fluxes, stoich) = (&lowered.fluxes, &lowered.stoich);
        // Reaction fluxes.
        for (ri, r) in m.reactions.iter().enumerate() {
            let s = syms[&r.id];
            self.model.symbols[s.index()].kind = SymbolKind::Assigned { expr: fluxes[ri].clone() };
        }

        // Per species: the sum of reaction contributions to its amount.
        let mut contributions: HashMap<usize, Vec<Expr>> = HashMap::new();
        for (ri, r) in m.reactions.iter().enumerate() {
            if fast.is_fast(ri) {
                continue;
            }
            let v = Expr::Sym(syms[&r.id]);
            for (product, list, st) in [(false, &r.reactants, &stoich[ri].0), (true, &r.products, &stoich[ri].1)] {
                for (sr, st) in list.iter().zip(st) {
                    let Some(Entity::Species(si)) = self.ids.get(&sr.species).copied() else { continue };
                    if self.setter(&sr.species) != Setter::Reactions {
                        continue;
                    }
                    let term = scaled(st.clone(), v.clone());
                    contributions.entry(si).or_default().push(if product { term } else { -term });
                }
            }
        }
        let mut amount_rates: HashMap<usize, Expr> = HashMap::new();
        for (si, sp) in m.species.iter().enumerate() {
            let Some(terms) = contributions.remove(&si) else { continue };
            let mut rate = if terms.len() == 1 {
                terms.into_iter().next().unwrap_or(Expr::Num(0.0))
            } else {
                Expr::Nary(vht_ir::NaryOp::Add, terms)
            };
            if let Some(cf) = sp.conversion_factor.as_ref().or(m.conversion_factor.as_ref()) {
                let Some(&c) = syms.get(cf) else {
                    return Err(self.undefined(format!("species '{}'", sp.id), "conversion factor", cf));
                };
                rate = rate * Expr::Sym(c);
            }
            amount_rates.insert(si, rate);
        }

        Ok(amount_rates)
    }

    /// Compartments, parameters and species references: value symbols.
    fn fill_values(&mut self, syms: &HashMap<String, Sym>, lowered: &Lowered) {
        let m = &self.doc.model;
        let (rule_exprs, ias) = (&lowered.rules, &lowered.ias);
        let value_like: Vec<(&str, Option<f64>, Sym, u32)> = m
            .compartments
            .iter()
            // A 0-D compartment without a size (L2) makes its species'
            // concentrations equal their amounts: size 1 does exactly that.
            .map(|c| {
                let size = if c.spatial_dimensions == Some(0.0) { c.size.or(Some(1.0)) } else { c.size };
                (c.id.as_str(), size, syms[&c.id], c.line)
            })
            .chain(m.parameters.iter().map(|p| (p.id.as_str(), p.value, syms[&p.id], p.line)))
            .chain(m.reactions.iter().flat_map(|r| {
                r.reactants
                    .iter()
                    .chain(&r.products)
                    .filter_map(|sr| sr.id.as_ref().map(|id| (id.as_str(), sr.stoichiometry, syms[id], sr.line)))
            }))
            .collect();
        for (id, value, s, line) in value_like {
            let initial = ias.get(id).cloned().unwrap_or(Expr::Num(value.unwrap_or(f64::NAN)));
            let kind = match self.setter(id) {
                Setter::AssignmentRule(i) => match &rule_exprs[i] {
                    Some(e) => SymbolKind::Assigned { expr: e.clone() },
                    None => SymbolKind::Parameter,
                },
                Setter::RateRule(i) => match &rule_exprs[i] {
                    Some(e) => SymbolKind::State { rate: e.clone() },
                    None => SymbolKind::Parameter,
                },
                Setter::Algebraic(_) => SymbolKind::Algebraic,
                Setter::Nothing | Setter::Reactions => SymbolKind::Parameter,
            };
            let determined = matches!(kind, SymbolKind::Assigned { .. } | SymbolKind::Algebraic);
            if value.is_none() && !ias.contains_key(id) && !determined {
                self.warn(Some(line), format!("'{id}' has no value and nothing assigns one: it is NaN"));
            }
            let sym = &mut self.model.symbols[s.index()];
            sym.kind = kind;
            sym.initial = initial;
        }
    }

    /// Species: amount-backed concentrations, amounts, and their views.
    fn fill_species(
        &mut self,
        syms: &HashMap<String, Sym>,
        lowered: &Lowered,
        mut amount_rates: HashMap<usize, Expr>,
    ) -> Result<(), LowerError> {
        let m = &self.doc.model;
        let (rule_exprs, ias) = (&lowered.rules, &lowered.ias);
        for (si, sp) in m.species.iter().enumerate() {
            let s = syms[&sp.id];
            let c = syms.get(&sp.compartment).copied();
            let c_expr = || c.map_or(Expr::Num(f64::NAN), Expr::Sym);
            let conc = self.is_concentration(sp);
            if c.is_none() {
                return Err(self.undefined(format!("species '{}'", sp.id), "compartment", &sp.compartment));
            }
            let ia = ias.get(sp.id.as_str()).cloned();
            // The initial value in SBML meaning (concentration or amount).
            let sbml_initial = if let Some(ia) = ia.clone() {
                ia
            } else if conc {
                match (sp.initial_amount, sp.initial_concentration) {
                    (_, Some(x)) => Expr::Num(x),
                    (Some(a), None) => Expr::Num(a) / c_expr(),
                    (None, None) => Expr::Num(f64::NAN),
                }
            } else {
                match (sp.initial_amount, sp.initial_concentration) {
                    (Some(a), _) => Expr::Num(a),
                    (None, Some(x)) => Expr::Num(x) * c_expr(),
                    (None, None) => Expr::Num(f64::NAN),
                }
            };
            let unset = ia.is_none() && sp.initial_amount.is_none() && sp.initial_concentration.is_none();
            let determined = matches!(self.setter(&sp.id), Setter::AssignmentRule(_) | Setter::Algebraic(_));
            if unset && !determined {
                self.warn(Some(sp.line), format!("species '{}' has no initial value and nothing assigns one", sp.id));
            }
            let setter = self.setter(&sp.id);
            let rule = |i: usize| rule_exprs.get(i).cloned().flatten();
            if let Some(&(a, cs)) = self.amounts.get(&si) {
                // Amount is the state; the SBML symbol is amount / size.
                let a_initial = if let Some(ia) = ia {
                    ia * Expr::Sym(cs)
                } else {
                    match (sp.initial_amount, sp.initial_concentration) {
                        (Some(x), _) => Expr::Num(x),
                        (None, Some(x)) => Expr::Num(x) * Expr::Sym(cs),
                        (None, None) => Expr::Num(f64::NAN),
                    }
                };
                let a_kind = match setter {
                    Setter::Reactions => match amount_rates.remove(&si) {
                        Some(rate) => SymbolKind::State { rate },
                        None => SymbolKind::Parameter,
                    },
                    _ => SymbolKind::Parameter,
                };
                let asym = &mut self.model.symbols[a.index()];
                asym.kind = a_kind;
                asym.initial = a_initial;
                let ssym = &mut self.model.symbols[s.index()];
                ssym.kind = SymbolKind::Assigned { expr: Expr::Sym(a) / Expr::Sym(cs) };
                ssym.initial = Expr::Num(f64::NAN);
                self.model.species.push(SpeciesView { sym: s, amount: Expr::Sym(a), concentration: Expr::Sym(s) });
                continue;
            }
            let kind = match setter {
                Setter::AssignmentRule(i) => match rule(i) {
                    Some(e) => SymbolKind::Assigned { expr: e },
                    None => SymbolKind::Parameter,
                },
                Setter::RateRule(i) => match rule(i) {
                    Some(rate) => SymbolKind::State { rate },
                    None => SymbolKind::Parameter,
                },
                Setter::Algebraic(_) => SymbolKind::Algebraic,
                Setter::Reactions => match amount_rates.remove(&si) {
                    Some(rate) => SymbolKind::State { rate },
                    None => SymbolKind::Parameter,
                },
                Setter::Nothing => SymbolKind::Parameter,
            };
            let sym = &mut self.model.symbols[s.index()];
            sym.kind = kind;
            sym.initial = sbml_initial;
            let (amount, concentration) =
                if conc { (Expr::Sym(s) * c_expr(), Expr::Sym(s)) } else { (Expr::Sym(s), Expr::Sym(s) / c_expr()) };
            self.model.species.push(SpeciesView { sym: s, amount, concentration });
        }

        // Algebraic rules.
        for (i, r) in m.rules.iter().enumerate() {
            if r.kind == RuleKind::Algebraic {
                if let Some(e) = &rule_exprs[i] {
                    self.model.algebraic.push(e.clone());
                }
            }
        }

        Ok(())
    }

    /// Events, with SBML's meaning of assigning a concentration or a size.
    fn fill_events(&mut self, conv: &mut Converter, syms: &HashMap<String, Sym>) -> Result<(), LowerError> {
        let m = &self.doc.model;
        for ev in &m.events {
            let ctx = format!("event '{}'", ev.id);
            let scope = Scope::new(&ctx, None);
            let trigger = match &ev.trigger {
                Some(t) => conv.expr(t, &scope)?,
                // No trigger math (L3V2): the event never fires.
                None => Expr::Num(0.0),
            };
            let delay = ev.delay.as_ref().map(|d| conv.expr(d, &scope)).transpose()?;
            let priority = ev.priority.as_ref().map(|p| conv.expr(p, &scope)).transpose()?;
            let mut values: Vec<(&str, Expr)> = Vec::new();
            for ea in &ev.assignments {
                let Some(math) = &ea.math else {
                    self.warn(
                        Some(ea.line),
                        format!("{ctx}: assignment to '{}' has no math; it is ignored", ea.variable),
                    );
                    continue;
                };
                values.push((ea.variable.as_str(), conv.expr(math, &scope)?));
            }
            let mut assignments = Vec::new();
            for (var, value) in &values {
                let Some(&entity) = self.ids.get(*var) else {
                    return Err(self.undefined(ctx, "variable", var));
                };
                match entity {
                    Entity::Reaction(_) => {
                        return Err(LowerError::BadTarget {
                            file: self.file.clone(),
                            context: ctx,
                            id: var.to_string(),
                            what: entity.what(),
                        })
                    }
                    Entity::Species(si) => {
                        if let Some(&(a, cs)) = self.amounts.get(&si) {
                            // A concentration assigned: the amount is value × size,
                            // with the size before the event even when the same
                            // event resizes the compartment (cases 01779, 01506).
                            assignments.push(EventAssignment { target: a, value: value.clone() * Expr::Sym(cs) });
                            continue;
                        }
                        let sp = &m.species[si];
                        let resized = values.iter().any(|(v, _)| *v == sp.compartment);
                        if resized && matches!(self.setter(&sp.id), Setter::RateRule(_)) {
                            // Set with the rescaling where the compartment is assigned.
                            continue;
                        }
                        assignments.push(EventAssignment { target: syms[*var], value: value.clone() });
                    }
                    Entity::Compartment(_) => {
                        assignments.push(EventAssignment { target: syms[*var], value: value.clone() });
                        // Resizing keeps amounts: a concentration integrated by a
                        // rate rule is rescaled by old/new size, also when the same
                        // event sets it (its amount is then value × old size, as
                        // for amount-backed species: case 01506).
                        for sp in m.species.iter().filter(|sp| sp.compartment == *var) {
                            let rate_ruled = matches!(self.setter(&sp.id), Setter::RateRule(_));
                            if rate_ruled && self.is_concentration(sp) {
                                let (s, c) = (syms[&sp.id], syms[*var]);
                                let conc =
                                    values.iter().find(|(v, _)| *v == sp.id).map_or(Expr::Sym(s), |(_, e)| e.clone());
                                let rescaled = conc * Expr::Sym(c) / value.clone();
                                assignments.retain(|a| a.target != s);
                                assignments.push(EventAssignment { target: s, value: rescaled });
                            }
                        }
                    }
                    _ => assignments.push(EventAssignment { target: syms[*var], value: value.clone() }),
                }
            }
            self.model.events.push(Event {
                name: ev.id.clone(),
                trigger,
                initial_value: ev.initial_value,
                persistent: ev.persistent,
                delay,
                priority,
                use_values_from_trigger_time: ev.use_values_from_trigger_time,
                assignments,
            });
        }

        Ok(())
    }

    /// Replaces `rateOf` placeholders by the rates they stand for.
    fn resolve_rate_of(&mut self, targets: &[Sym]) {
        if targets.is_empty() {
            return;
        }
        // Amount-backed concentrations: S = A / V.
        let backed: HashMap<Sym, (Sym, Sym)> =
            self.amounts.iter().filter_map(|(&si, &(a, c))| self.syms_species(si).map(|s| (s, (a, c)))).collect();
        let rate = |s: Sym, model: &Model, diags: &mut Vec<String>| -> Expr { rate_expr(s, model, &backed, diags) };
        let mut notes = Vec::new();
        let mut rates: Vec<Expr> = targets.iter().map(|&t| rate(t, &self.model, &mut notes)).collect();
        // Rates may themselves read rateOf (at most a few levels in valid SBML).
        for _ in 0..8 {
            let snapshot = rates.clone();
            let mut changed = false;
            for r in rates.iter_mut() {
                let e = std::mem::replace(r, Expr::Num(0.0));
                *r = e.substitute(&mut |s| {
                    if s.0 >= RATE_OF_BASE {
                        changed = true;
                        snapshot.get((s.0 - RATE_OF_BASE) as usize).cloned()
                    } else {
                        None
                    }
                });
            }
            if !changed {
                break;
            }
        }
        let mut subst = |e: Expr| -> Expr { put_rates(e, &rates, false) };
        let model = &mut self.model;
        for sym in &mut model.symbols {
            sym.initial = subst(std::mem::replace(&mut sym.initial, Expr::Num(0.0)));
            match &mut sym.kind {
                SymbolKind::State { rate } | SymbolKind::Assigned { expr: rate } => {
                    *rate = subst(std::mem::replace(rate, Expr::Num(0.0)));
                }
                _ => {}
            }
        }
        for g in &mut model.algebraic {
            *g = subst(std::mem::replace(g, Expr::Num(0.0)));
        }
        for ev in &mut model.events {
            ev.trigger = subst(std::mem::replace(&mut ev.trigger, Expr::Num(0.0)));
            ev.delay = ev.delay.take().map(&mut subst);
            ev.priority = ev.priority.take().map(&mut subst);
            for a in &mut ev.assignments {
                a.value = subst(std::mem::replace(&mut a.value, Expr::Num(0.0)));
            }
        }
        for n in notes {
            self.warn(None, n);
        }
    }

    fn syms_species(&self, si: usize) -> Option<Sym> {
        let sp = self.doc.model.species.get(si)?;
        self.model.lookup(&sp.id)
    }
}

/// Replaces rateOf placeholders by their rates. Inside the first argument
/// of `delay` a rate is read in the past, where before the start (t = 0 in
/// SBML) the model is at rest: there it is 0 (cases 01400-01409).
fn put_rates(e: Expr, rates: &[Expr], in_delay: bool) -> Expr {
    let rec = |x: Box<Expr>, d: bool| Box::new(put_rates(*x, rates, d));
    match e {
        Expr::Sym(s) if s.0 >= RATE_OF_BASE => {
            let r = rates.get((s.0 - RATE_OF_BASE) as usize).cloned().unwrap_or(Expr::Num(f64::NAN));
            if in_delay && !r.is_num(0.0) {
                let started = Expr::bin(vht_ir::BinOp::Ge, Expr::Time, Expr::Num(0.0));
                Expr::Piecewise(vec![(r, started)], Box::new(Expr::Num(0.0)))
            } else {
                r
            }
        }
        e @ (Expr::Num(_) | Expr::Sym(_) | Expr::Time) => e,
        Expr::Un(op, a) => Expr::Un(op, rec(a, in_delay)),
        Expr::Bin(op, a, b) => Expr::Bin(op, rec(a, in_delay), rec(b, in_delay)),
        Expr::Delay(x, tau) => Expr::Delay(rec(x, true), rec(tau, in_delay)),
        Expr::Nary(op, args) => Expr::Nary(op, args.into_iter().map(|a| put_rates(a, rates, in_delay)).collect()),
        Expr::Piecewise(pieces, otherwise) => Expr::Piecewise(
            pieces.into_iter().map(|(v, c)| (put_rates(v, rates, in_delay), put_rates(c, rates, in_delay))).collect(),
            rec(otherwise, in_delay),
        ),
    }
}

/// `st × v`, without multiplying by a literal 1.
fn scaled(st: Expr, v: Expr) -> Expr {
    if st.is_num(1.0) {
        v
    } else {
        st * v
    }
}

/// The time derivative of symbol `s`, possibly containing rateOf placeholders.
fn rate_expr(s: Sym, model: &Model, backed: &HashMap<Sym, (Sym, Sym)>, notes: &mut Vec<String>) -> Expr {
    match &model.symbol(s).kind {
        SymbolKind::Parameter => Expr::Num(0.0),
        SymbolKind::State { rate } => rate.clone(),
        SymbolKind::Algebraic => {
            notes.push(format!("rateOf('{}'): the rate of an algebraic unknown is not available", model.name(s)));
            Expr::Num(f64::NAN)
        }
        SymbolKind::Assigned { expr } => {
            if let Some(&(a, c)) = backed.get(&s) {
                // d(A/V)/dt = (dA/dt - S·dV/dt) / V.
                let ra = rate_expr(a, model, backed, notes);
                let rc = rate_expr(c, model, backed, notes);
                let num = if rc.is_num(0.0) { ra } else { ra - Expr::Sym(s) * rc };
                return num / Expr::Sym(c);
            }
            if expr.contains_delay() {
                notes.push(format!("rateOf('{}'): the rate of a delayed value is taken as 0", model.name(s)));
            }
            chain_rule(expr, model, backed, notes)
        }
    }
}

/// d(expr)/dt by the chain rule over the symbols it reads (and time).
/// rateOf placeholders inside `expr` are taken as constant: SBML has no
/// second derivatives.
fn chain_rule(expr: &Expr, model: &Model, backed: &HashMap<Sym, (Sym, Sym)>, notes: &mut Vec<String>) -> Expr {
    // Time is differentiated as a symbol with rate 1.
    let time = Sym(RATE_OF_BASE - 1);
    let e = expr.clone().map(&mut |x| if let Expr::Time = x { Expr::Sym(time) } else { x });
    let n = model.symbols.len() as u32;
    let mut terms = Vec::new();
    for y in e.symbols() {
        if y != time && y.0 >= n {
            continue;
        }
        let dy = vht_ir::derivative(&e, y);
        if dy.is_num(0.0) {
            continue;
        }
        let ry = if y == time { Expr::Num(1.0) } else { rate_expr(y, model, backed, notes) };
        if ry.is_num(0.0) {
            continue;
        }
        terms.push(if ry.is_num(1.0) { dy } else { dy * ry });
    }
    let sum = match terms.len() {
        0 => Expr::Num(0.0),
        1 => terms.pop().unwrap_or(Expr::Num(0.0)),
        _ => Expr::Nary(vht_ir::NaryOp::Add, terms),
    };
    vht_ir::simplify(sum.substitute(&mut |s| (s == time).then_some(Expr::Time)))
}
