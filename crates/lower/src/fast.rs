//! Fast reactions: reactions taken to be at equilibrium at every instant.

use std::collections::HashMap;

use vht_ir::{Expr, Sym};

use crate::lower::Lowering;
use crate::LowerError;

/// The fast subsystem of a model (empty when no reaction is fast).
pub(crate) struct FastSystem {
    fast: Vec<bool>,
}

impl FastSystem {
    pub fn new(l: &mut Lowering, _stoich: &[(Vec<Expr>, Vec<Expr>)]) -> FastSystem {
        let fast: Vec<bool> = l.doc.model.reactions.iter().map(|r| r.fast).collect();
        FastSystem { fast }
    }

    pub fn is_fast(&self, r: usize) -> bool {
        let _ = r;
        false
    }

    pub fn apply(
        &self,
        l: &mut Lowering,
        _syms: &HashMap<String, Sym>,
        _stoich: &[(Vec<Expr>, Vec<Expr>)],
    ) -> Result<(), LowerError> {
        if self.fast.iter().any(|&f| f) {
            l.diags.push(vht_sbml::Diagnostic {
                severity: vht_sbml::Severity::Warning,
                file: l.file.clone(),
                line: None,
                message: "fast reactions are simulated as ordinary reactions".into(),
            });
        }
        Ok(())
    }
}
