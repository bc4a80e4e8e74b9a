//! Hand-built IR models shared by the integration tests and the benchmark.
#![allow(dead_code)]

use vht_ir::{Expr, Model, Role, Sym, SymbolKind};

pub fn num(v: f64) -> Expr {
    Expr::Num(v)
}

pub fn s(x: Sym) -> Expr {
    Expr::Sym(x)
}

pub fn param(m: &mut Model, name: &str, v: f64) -> Sym {
    m.add(name, Role::Parameter, SymbolKind::Parameter, Expr::Num(v))
}

pub fn state(m: &mut Model, name: &str, v: f64) -> Sym {
    m.add(name, Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(v))
}

pub fn assigned(m: &mut Model, name: &str, e: Expr) -> Sym {
    m.add(name, Role::Parameter, SymbolKind::Assigned { expr: e }, Expr::Num(0.0))
}

pub fn set_rate(m: &mut Model, x: Sym, rate: Expr) {
    m.symbols[x.index()].kind = SymbolKind::State { rate };
}

/// A deterministic xorshift generator: tests print the seed they use.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n
    }
}

/// A mass-action network: `n` species, `2n` random uni- and bimolecular
/// reactions with one rate constant each. Used by the benchmark.
pub fn mass_action(n: usize, seed: u64) -> Model {
    let mut rng = Rng(seed.max(1));
    let mut m = Model::default();
    let xs: Vec<Sym> = (0..n).map(|i| state(&mut m, &format!("x{i}"), 1.0 + rng.next_f64())).collect();
    let mut rates: Vec<Vec<Expr>> = vec![Vec::new(); n];
    for r in 0..2 * n {
        let k = param(&mut m, &format!("k{r}"), 0.1 + rng.next_f64());
        let a = rng.below(n);
        let b = rng.below(n);
        let c = rng.below(n);
        // Reaction: a (+ b if bimolecular) -> c.
        let flux =
            if r % 2 == 0 { s(k) * s(xs[a]) } else { Expr::Nary(vht_ir::NaryOp::Mul, vec![s(k), s(xs[a]), s(xs[b])]) };
        let v = assigned(&mut m, &format!("v{r}"), flux);
        rates[a].push(-s(v));
        if r % 2 == 1 {
            rates[b].push(-s(v));
        }
        rates[c].push(s(v));
    }
    for (i, terms) in rates.into_iter().enumerate() {
        set_rate(&mut m, xs[i], Expr::Nary(vht_ir::NaryOp::Add, terms));
    }
    m
}
