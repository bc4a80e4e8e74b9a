//! The flat model: symbols, constraints and events.

use crate::{order, Expr, OrderError};

/// Index of a symbol in [`Model::symbols`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(pub u32);

impl Sym {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a symbol stood for in the source model. Used for default output
/// selection and for messages; it carries no semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Compartment,
    Species,
    Parameter,
    /// A reaction's rate (its value is the reaction's flux).
    Reaction,
    /// A stoichiometry that can be named or changed.
    Stoichiometry,
    /// Introduced by a reader or by lowering (e.g. a species amount behind a
    /// concentration, a conserved total of fast reactions).
    Internal,
}

/// How a symbol's value is determined during a run.
#[derive(Clone, Debug, PartialEq)]
pub enum SymbolKind {
    /// Constant between events: its value is `initial` at the start and
    /// changes only when an event assigns it. Runs of a cohort vary these.
    Parameter,
    /// Integrated: `d(symbol)/dt = rate`.
    State { rate: Expr },
    /// Defined at every instant by `expr` (and `initial` is ignored).
    Assigned { expr: Expr },
    /// An unknown fixed by [`Model::algebraic`]; `initial` is a first guess.
    Algebraic,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Symbol {
    /// The identifier in the source model (unique within the model).
    pub name: String,
    pub role: Role,
    pub kind: SymbolKind,
    /// Value at the start of a run; may read other symbols (evaluated in
    /// dependency order, see [`initial_order`](crate::initial_order)).
    pub initial: Expr,
}

/// A discrete event: when `trigger` goes from false to true, its assignments
/// are carried out (after `delay`, if given).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: String,
    /// A boolean expression.
    pub trigger: Expr,
    /// The value the trigger is taken to have just before the start, so an
    /// event whose trigger is true at t0 fires then if this is false.
    pub initial_value: bool,
    /// Whether a scheduled (delayed) execution survives the trigger turning false.
    pub persistent: bool,
    pub delay: Option<Expr>,
    /// Larger fires first among events executing at the same time.
    pub priority: Option<Expr>,
    /// Whether assignment values are computed when the event triggers (true)
    /// or when it executes (false). Only matters with a delay.
    pub use_values_from_trigger_time: bool,
    pub assignments: Vec<EventAssignment>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventAssignment {
    pub target: Sym,
    pub value: Expr,
}

/// The amount and concentration of a species-like quantity, for output.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeciesView {
    /// The symbol the source model's math uses for it.
    pub sym: Sym,
    pub amount: Expr,
    pub concentration: Expr,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub name: String,
    pub symbols: Vec<Symbol>,
    /// Residuals `0 = g` fixing the [`SymbolKind::Algebraic`] symbols; there
    /// are as many as there are algebraic symbols.
    pub algebraic: Vec<Expr>,
    pub events: Vec<Event>,
    /// Amount and concentration views of species, for output selection.
    pub species: Vec<SpeciesView>,
}

impl Model {
    /// Appends a symbol and returns its index.
    pub fn add(&mut self, name: &str, role: Role, kind: SymbolKind, initial: Expr) -> Sym {
        let s = Sym(self.symbols.len() as u32);
        self.symbols.push(Symbol { name: name.to_string(), role, kind, initial });
        s
    }

    pub fn lookup(&self, name: &str) -> Option<Sym> {
        self.symbols.iter().position(|s| s.name == name).map(|i| Sym(i as u32))
    }

    pub fn symbol(&self, s: Sym) -> &Symbol {
        &self.symbols[s.index()]
    }

    pub fn name(&self, s: Sym) -> &str {
        &self.symbols[s.index()].name
    }

    pub fn species_view(&self, s: Sym) -> Option<&SpeciesView> {
        self.species.iter().find(|v| v.sym == s)
    }

    /// The symbols of one kind, in model order.
    pub fn of_kind(&self, pred: impl Fn(&SymbolKind) -> bool) -> Vec<Sym> {
        (0..self.symbols.len()).filter(|&i| pred(&self.symbols[i].kind)).map(|i| Sym(i as u32)).collect()
    }

    pub fn states(&self) -> Vec<Sym> {
        self.of_kind(|k| matches!(k, SymbolKind::State { .. }))
    }
    pub fn parameters(&self) -> Vec<Sym> {
        self.of_kind(|k| matches!(k, SymbolKind::Parameter))
    }
    pub fn assigned(&self) -> Vec<Sym> {
        self.of_kind(|k| matches!(k, SymbolKind::Assigned { .. }))
    }
    pub fn algebraic_unknowns(&self) -> Vec<Sym> {
        self.of_kind(|k| matches!(k, SymbolKind::Algebraic))
    }

    /// Checks the structural invariants: symbol references in range, as many
    /// algebraic equations as unknowns, event targets not assigned symbols,
    /// and no cycle among assignments or among initial values.
    pub fn check(&self) -> Result<(), OrderError> {
        let n = self.symbols.len() as u32;
        let mut bad = None;
        let mut check_expr = |e: &Expr, ctx: &str| {
            e.walk(&mut |x| {
                if let Expr::Sym(s) = x {
                    if s.0 >= n && bad.is_none() {
                        bad = Some(ctx.to_string());
                    }
                }
            })
        };
        for s in &self.symbols {
            check_expr(&s.initial, &s.name);
            match &s.kind {
                SymbolKind::State { rate } => check_expr(rate, &s.name),
                SymbolKind::Assigned { expr } => check_expr(expr, &s.name),
                _ => {}
            }
        }
        for g in &self.algebraic {
            check_expr(g, "algebraic rule");
        }
        for ev in &self.events {
            check_expr(&ev.trigger, &ev.name);
            for a in &ev.assignments {
                check_expr(&a.value, &ev.name);
            }
        }
        if let Some(at) = bad {
            return Err(OrderError::BadReference { at });
        }
        let unknowns = self.algebraic_unknowns().len();
        if unknowns != self.algebraic.len() {
            return Err(OrderError::AlgebraicMismatch { unknowns, equations: self.algebraic.len() });
        }
        for ev in &self.events {
            for a in &ev.assignments {
                if matches!(self.symbol(a.target).kind, SymbolKind::Assigned { .. }) {
                    return Err(OrderError::EventAssignsRule {
                        event: ev.name.clone(),
                        target: self.name(a.target).to_string(),
                    });
                }
            }
        }
        order::evaluation_order(self)?;
        order::initial_order(self)?;
        Ok(())
    }
}
