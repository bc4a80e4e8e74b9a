//! Dependency order of assignments and of initial values.

use crate::{Model, Sym, SymbolKind};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("assignments form a cycle: {}", cycle.join(" -> "))]
    AssignmentCycle { cycle: Vec<String> },
    #[error("initial values form a cycle: {}", cycle.join(" -> "))]
    InitialCycle { cycle: Vec<String> },
    #[error("expression in '{at}' reads a symbol that does not exist")]
    BadReference { at: String },
    #[error("{unknowns} algebraic unknowns but {equations} algebraic equations")]
    AlgebraicMismatch { unknowns: usize, equations: usize },
    #[error("event '{event}' assigns '{target}', which an assignment rule defines")]
    EventAssignsRule { event: String, target: String },
}

/// The [`SymbolKind::Assigned`] symbols in an order where each comes after
/// every assigned symbol its expression reads (at the current time).
pub fn evaluation_order(model: &Model) -> Result<Vec<Sym>, OrderError> {
    let deps = |s: Sym| match &model.symbol(s).kind {
        SymbolKind::Assigned { expr } => Some(expr.instant_symbols()),
        _ => None,
    };
    topo(model, deps).map_err(|cycle| OrderError::AssignmentCycle { cycle })
}

/// Every symbol in an order where each symbol's start value can be computed
/// from those before it: assigned symbols by their expression, all others by
/// `initial`. Algebraic unknowns come with their guess and are solved after.
pub fn initial_order(model: &Model) -> Result<Vec<Sym>, OrderError> {
    let deps = |s: Sym| {
        let sym = model.symbol(s);
        Some(match &sym.kind {
            SymbolKind::Assigned { expr } => expr.instant_symbols(),
            _ => sym.initial.instant_symbols(),
        })
    };
    topo(model, deps).map_err(|cycle| OrderError::InitialCycle { cycle })
}

/// Depth-first topological sort over the symbols for which `deps` gives
/// `Some`; a cycle is returned as the names along it.
fn topo(model: &Model, deps: impl Fn(Sym) -> Option<Vec<Sym>>) -> Result<Vec<Sym>, Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let n = model.symbols.len();
    let mut mark = vec![Mark::New; n];
    let mut out = Vec::new();
    let all_deps: Vec<Option<Vec<Sym>>> = (0..n).map(|i| deps(Sym(i as u32))).collect();
    for root in 0..n {
        if all_deps[root].is_none() || mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next dependency index).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let ds = all_deps[node].as_deref().unwrap_or(&[]);
            if *next < ds.len() {
                let d = ds[*next].index();
                *next += 1;
                if all_deps[d].is_none() {
                    continue;
                }
                match mark[d] {
                    Mark::Done => {}
                    Mark::Active => {
                        let start = stack.iter().position(|&(x, _)| x == d).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[start..].iter().map(|&(x, _)| model.symbols[x].name.clone()).collect();
                        cycle.push(model.symbols[d].name.clone());
                        return Err(cycle);
                    }
                    Mark::New => {
                        mark[d] = Mark::Active;
                        stack.push((d, 0));
                    }
                }
            } else {
                mark[node] = Mark::Done;
                out.push(Sym(node as u32));
                stack.pop();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expr, Role};

    #[test]
    fn assignment_cycle_is_named() {
        let mut m = Model::default();
        let a = m.add("a", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.0));
        let b = m.add("b", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.0));
        m.symbols[a.index()].kind = SymbolKind::Assigned { expr: Expr::Sym(b) + Expr::Num(1.0) };
        m.symbols[b.index()].kind = SymbolKind::Assigned { expr: Expr::Sym(a) };
        let err = evaluation_order(&m).unwrap_err();
        expect_test::expect!["assignments form a cycle: a -> b -> a"].assert_eq(&err.to_string());
    }

    #[test]
    fn order_puts_dependencies_first() {
        let mut m = Model::default();
        let a = m.add("a", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.0));
        let b = m.add("b", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.0));
        let c = m.add("c", Role::Parameter, SymbolKind::Parameter, Expr::Num(2.0));
        m.symbols[a.index()].kind = SymbolKind::Assigned { expr: Expr::Sym(b) * Expr::Num(2.0) };
        m.symbols[b.index()].kind = SymbolKind::Assigned { expr: Expr::Sym(c) };
        assert_eq!(evaluation_order(&m).unwrap(), vec![b, a]);
        let init = initial_order(&m).unwrap();
        let pos = |s| init.iter().position(|&x| x == s).unwrap();
        assert!(pos(c) < pos(b) && pos(b) < pos(a));
    }
}
