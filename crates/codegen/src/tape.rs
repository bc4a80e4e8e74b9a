//! Lowering of IR expressions to a linear tape in SSA form.
//!
//! Every instruction writes exactly one f64 slot (its own index) and reads
//! only slots written before it, so one forward pass evaluates the tape and
//! the JIT can map each slot to one SSA value. Lowering hash-conses the
//! instructions: an identical subexpression (including an assigned symbol
//! read from many places, or the same factor in many Jacobian entries) is
//! computed once. Instructions whose operands are all constants are folded
//! at lowering time with the same functions the interpreter runs, so folding
//! never changes a result.

use std::collections::HashMap;

use vht_ir::{evaluation_order, BinOp, Expr, Model, NaryOp, Sym, SymbolKind, UnOp};

use crate::{ops, CodegenError, Slot};

/// Index of an instruction (and of the slot it writes).
pub(crate) type Reg = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Instr {
    /// The bits of an f64 (bits, so that instructions can be hashed).
    Const(u64),
    Time,
    Y(u32),
    P(u32),
    Un(UnOp, Reg),
    Bin(BinOp, Reg, Reg),
    // N-ary IR operators are lowered to left-to-right chains of these.
    Add(Reg, Reg),
    Mul(Reg, Reg),
    Min(Reg, Reg),
    Max(Reg, Reg),
    And(Reg, Reg),
    Or(Reg, Reg),
    Xor(Reg, Reg),
    /// 1.0 if the operand is true (nonzero), else 0.0: `and`/`or`/`xor` of one argument.
    Truth(Reg),
    /// `if truth(cond) { then } else { otherwise }`: both sides are computed, only one is kept.
    Select(Reg, Reg, Reg),
    /// `host.delayed(k, t - tau)`.
    Delay(u32, Reg),
}

/// A straight-line program computing `outputs` from `(t, y, p)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tape {
    pub instrs: Vec<Instr>,
    /// The slot holding each output.
    pub outputs: Vec<Reg>,
}

impl Tape {
    /// Evaluates instruction `ins` given the slots computed so far. Shared by
    /// the interpreter and constant folding so both agree to the bit.
    #[inline(always)]
    pub fn step(ins: Instr, s: &[f64], t: f64, y: &[f64], p: &[f64], host: &dyn crate::DelayHost) -> f64 {
        let r = |i: Reg| s[i as usize];
        match ins {
            Instr::Const(bits) => f64::from_bits(bits),
            Instr::Time => t,
            Instr::Y(i) => y[i as usize],
            Instr::P(i) => p[i as usize],
            Instr::Un(op, a) => ops::un(op, r(a)),
            Instr::Bin(op, a, b) => ops::bin(op, r(a), r(b)),
            Instr::Add(a, b) => r(a) + r(b),
            Instr::Mul(a, b) => r(a) * r(b),
            Instr::Min(a, b) => ops::min2(r(a), r(b)),
            Instr::Max(a, b) => ops::max2(r(a), r(b)),
            Instr::And(a, b) => ops::boolean(ops::truth(r(a)) && ops::truth(r(b))),
            Instr::Or(a, b) => ops::boolean(ops::truth(r(a)) || ops::truth(r(b))),
            Instr::Xor(a, b) => ops::boolean(ops::truth(r(a)) != ops::truth(r(b))),
            Instr::Truth(a) => ops::boolean(ops::truth(r(a))),
            Instr::Select(c, a, b) => {
                if ops::truth(r(c)) {
                    r(a)
                } else {
                    r(b)
                }
            }
            Instr::Delay(k, tau) => host.delayed(k as usize, t - r(tau)),
        }
    }
}

/// Hash-consing tape builder.
#[derive(Default)]
struct Builder {
    tape: Tape,
    seen: HashMap<Instr, Reg>,
}

impl Builder {
    fn konst(&mut self, v: f64) -> Reg {
        self.push(Instr::Const(v.to_bits()))
    }

    fn const_value(&self, r: Reg) -> Option<f64> {
        match self.tape.instrs[r as usize] {
            Instr::Const(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    fn push(&mut self, ins: Instr) -> Reg {
        let ins = self.fold(self.canonical(self.fuse(ins)));
        if let Some(&r) = self.seen.get(&ins) {
            return r;
        }
        let r = self.tape.instrs.len() as Reg;
        self.tape.instrs.push(ins);
        self.seen.insert(ins, r);
        r
    }

    /// `a + (-b)` is `a - b` and `a - (-b)` is `a + b`, exactly (IEEE
    /// defines subtraction so), which saves the negation when nothing else
    /// reads it (sums of reaction fluxes are full of these).
    fn fuse(&self, ins: Instr) -> Instr {
        let neg_of = |r: Reg| match self.tape.instrs[r as usize] {
            Instr::Un(UnOp::Neg, x) => Some(x),
            _ => None,
        };
        match ins {
            Instr::Add(a, b) => match (neg_of(a), neg_of(b)) {
                (_, Some(nb)) => Instr::Bin(BinOp::Sub, a, nb),
                (Some(na), None) => Instr::Bin(BinOp::Sub, b, na),
                (None, None) => ins,
            },
            Instr::Bin(BinOp::Sub, a, b) => match neg_of(b) {
                Some(nb) => Instr::Add(a, nb),
                None => ins,
            },
            _ => ins,
        }
    }

    /// Orders the operands of exactly commutative operations so that `a*b`
    /// and `b*a` share one slot. (Min/Max are left alone: with signed zeros
    /// they are not bit-exactly commutative.)
    fn canonical(&self, ins: Instr) -> Instr {
        fn sort(a: Reg, b: Reg) -> (Reg, Reg) {
            (a.min(b), a.max(b))
        }
        match ins {
            Instr::Add(a, b) => {
                let (a, b) = sort(a, b);
                Instr::Add(a, b)
            }
            Instr::Mul(a, b) => {
                let (a, b) = sort(a, b);
                Instr::Mul(a, b)
            }
            Instr::And(a, b) => {
                let (a, b) = sort(a, b);
                Instr::And(a, b)
            }
            Instr::Or(a, b) => {
                let (a, b) = sort(a, b);
                Instr::Or(a, b)
            }
            Instr::Xor(a, b) => {
                let (a, b) = sort(a, b);
                Instr::Xor(a, b)
            }
            Instr::Bin(op @ (BinOp::Eq | BinOp::Neq), a, b) => {
                let (a, b) = sort(a, b);
                Instr::Bin(op, a, b)
            }
            i => i,
        }
    }

    /// Folds an instruction whose inputs are constants into a constant, and a
    /// select on a constant condition into the chosen side.
    fn fold(&self, ins: Instr) -> Instr {
        let c = |r: Reg| self.const_value(r);
        let operands: [Option<Reg>; 3] = match ins {
            Instr::Const(_) | Instr::Time | Instr::Y(_) | Instr::P(_) | Instr::Delay(..) => return ins,
            Instr::Select(cond, a, b) => {
                return match c(cond) {
                    Some(v) => self.tape.instrs[if ops::truth(v) { a } else { b } as usize],
                    None if a == b => self.tape.instrs[a as usize],
                    None => ins,
                };
            }
            Instr::Un(_, a) | Instr::Truth(a) => [Some(a), None, None],
            Instr::Bin(_, a, b)
            | Instr::Add(a, b)
            | Instr::Mul(a, b)
            | Instr::Min(a, b)
            | Instr::Max(a, b)
            | Instr::And(a, b)
            | Instr::Or(a, b)
            | Instr::Xor(a, b) => [Some(a), Some(b), None],
        };
        if operands.iter().flatten().any(|&r| c(r).is_none()) {
            return ins;
        }
        // All operands are constants: run the instruction on a scratch copy
        // of just those slots.
        let mut scratch = vec![0.0; self.tape.instrs.len()];
        for r in operands.iter().flatten() {
            scratch[*r as usize] = c(*r).unwrap_or(f64::NAN);
        }
        let v = Tape::step(ins, &scratch, 0.0, &[], &[], &crate::NoDelays);
        Instr::Const(v.to_bits())
    }
}

/// What lowering needs to know about the model besides the expressions.
pub(crate) struct Env<'a> {
    pub model: &'a Model,
    /// Where each model symbol lives; `None`: not readable (not in the layout).
    pub slots: &'a [Option<Slot>],
    /// The first argument of each delay node, in delay-number order.
    pub delays: &'a [Expr],
    /// The length of the y and p vectors.
    pub n_y: usize,
    pub n_p: usize,
}

/// Lowers `exprs` (labelled for error messages by `label(i)`) to one tape.
pub(crate) fn lower(env: &Env, exprs: &[Expr], label: &dyn Fn(usize) -> String) -> Result<Tape, CodegenError> {
    let n_sym = env.model.symbols.len();
    // Validate every symbol reference first, so the rest may index freely.
    for (i, e) in exprs.iter().enumerate() {
        let mut bad = None;
        e.walk(&mut |x| {
            if let Expr::Sym(s) = x {
                if s.index() >= n_sym && bad.is_none() {
                    bad = Some(*s);
                }
            }
        });
        if let Some(s) = bad {
            return Err(CodegenError::BadReference { index: s.0, at: label(i) });
        }
    }

    let mut lw = Lowerer { env, b: Builder::default(), assigned: vec![None; n_sym], at: String::new() };

    // The assigned symbols these expressions need, transitively, are lowered
    // first in dependency order; reading one later is then a slot lookup.
    // This keeps recursion as deep as one expression, not as a chain of rules.
    let mut needed = vec![false; n_sym];
    let mut work: Vec<Sym> = Vec::new();
    for e in exprs {
        work.extend(e.instant_symbols());
    }
    while let Some(s) = work.pop() {
        if needed[s.index()] || env.slots[s.index()] != Some(Slot::Assigned) {
            continue;
        }
        needed[s.index()] = true;
        if let SymbolKind::Assigned { expr } = &env.model.symbol(s).kind {
            let deps = expr.instant_symbols();
            if let Some(bad) = deps.iter().find(|d| d.index() >= n_sym) {
                return Err(CodegenError::BadReference { index: bad.0, at: env.model.name(s).to_string() });
            }
            work.extend(deps);
        }
    }
    if needed.iter().any(|&x| x) {
        // evaluation_order indexes by every assigned expression's symbols, so
        // those must all be in range, not only the needed ones (compile_exprs
        // may be given a model that never went through Model::check).
        for (i, sym) in env.model.symbols.iter().enumerate() {
            if let SymbolKind::Assigned { expr } = &sym.kind {
                if let Some(bad) = expr.instant_symbols().iter().find(|d| d.index() >= n_sym) {
                    return Err(CodegenError::BadReference {
                        index: bad.0,
                        at: format!("assignment of '{}'", env.model.symbols[i].name),
                    });
                }
            }
        }
        for s in evaluation_order(env.model)? {
            if !needed[s.index()] {
                continue;
            }
            if let SymbolKind::Assigned { expr } = &env.model.symbol(s).kind {
                lw.at = format!("assignment of '{}'", env.model.name(s));
                let r = lw.expr(expr)?;
                lw.assigned[s.index()] = Some(r);
            }
        }
    }

    let mut outputs = Vec::with_capacity(exprs.len());
    for (i, e) in exprs.iter().enumerate() {
        lw.at = label(i);
        outputs.push(lw.expr(e)?);
    }
    let mut tape = lw.b.tape;
    tape.outputs = outputs;
    Ok(eliminate_dead(tape))
}

/// Drops instructions no output depends on (left behind by fusion, folding
/// and selects on constant conditions) and renumbers the rest.
fn eliminate_dead(tape: Tape) -> Tape {
    let n = tape.instrs.len();
    let mut live = vec![false; n];
    for &o in &tape.outputs {
        live[o as usize] = true;
    }
    for i in (0..n).rev() {
        if live[i] {
            operands(tape.instrs[i], |r| live[r as usize] = true);
        }
    }
    let mut new_index = vec![0 as Reg; n];
    let mut instrs = Vec::with_capacity(n);
    for (i, ins) in tape.instrs.into_iter().enumerate() {
        if live[i] {
            new_index[i] = instrs.len() as Reg;
            instrs.push(map_operands(ins, |r| new_index[r as usize]));
        }
    }
    let outputs = tape.outputs.iter().map(|&o| new_index[o as usize]).collect();
    Tape { instrs, outputs }
}

pub(crate) fn operands(ins: Instr, mut f: impl FnMut(Reg)) {
    map_operands(ins, |r| {
        f(r);
        r
    });
}

fn map_operands(ins: Instr, mut f: impl FnMut(Reg) -> Reg) -> Instr {
    match ins {
        Instr::Const(_) | Instr::Time | Instr::Y(_) | Instr::P(_) => ins,
        Instr::Un(op, a) => Instr::Un(op, f(a)),
        Instr::Truth(a) => Instr::Truth(f(a)),
        Instr::Delay(k, a) => Instr::Delay(k, f(a)),
        Instr::Bin(op, a, b) => Instr::Bin(op, f(a), f(b)),
        Instr::Add(a, b) => Instr::Add(f(a), f(b)),
        Instr::Mul(a, b) => Instr::Mul(f(a), f(b)),
        Instr::Min(a, b) => Instr::Min(f(a), f(b)),
        Instr::Max(a, b) => Instr::Max(f(a), f(b)),
        Instr::And(a, b) => Instr::And(f(a), f(b)),
        Instr::Or(a, b) => Instr::Or(f(a), f(b)),
        Instr::Xor(a, b) => Instr::Xor(f(a), f(b)),
        Instr::Select(c, a, b) => Instr::Select(f(c), f(a), f(b)),
    }
}

struct Lowerer<'a, 'e> {
    env: &'a Env<'e>,
    b: Builder,
    /// The slot of each assigned symbol already lowered.
    assigned: Vec<Option<Reg>>,
    /// What is being lowered, for error messages.
    at: String,
}

impl Lowerer<'_, '_> {
    fn expr(&mut self, e: &Expr) -> Result<Reg, CodegenError> {
        Ok(match e {
            Expr::Num(v) => self.b.konst(*v),
            Expr::Time => self.b.push(Instr::Time),
            Expr::Sym(s) => self.sym(*s)?,
            Expr::Un(op, a) => {
                let a = self.expr(a)?;
                self.b.push(Instr::Un(*op, a))
            }
            Expr::Bin(op, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                self.b.push(Instr::Bin(*op, a, b))
            }
            Expr::Nary(op, args) => self.nary(*op, args)?,
            Expr::Piecewise(pieces, otherwise) => {
                // Lowered from the last piece backwards so the first true
                // condition wins: select(c1, v1, select(c2, v2, otherwise)).
                let mut acc = self.expr(otherwise)?;
                for (v, c) in pieces.iter().rev() {
                    let v = self.expr(v)?;
                    let c = self.expr(c)?;
                    acc = self.b.push(Instr::Select(c, v, acc));
                }
                acc
            }
            Expr::Delay(x, tau) => {
                let k = self
                    .env
                    .delays
                    .iter()
                    .position(|d| d == x.as_ref())
                    .ok_or_else(|| CodegenError::UnknownDelay { at: self.at.clone() })?;
                let tau = self.expr(tau)?;
                self.b.push(Instr::Delay(k as u32, tau))
            }
        })
    }

    fn sym(&mut self, s: Sym) -> Result<Reg, CodegenError> {
        match self.env.slots[s.index()] {
            Some(Slot::Y(i)) => Ok(self.b.push(Instr::Y(i as u32))),
            Some(Slot::P(i)) => Ok(self.b.push(Instr::P(i as u32))),
            Some(Slot::Assigned) => self.assigned[s.index()].ok_or_else(|| CodegenError::MissingSlot {
                symbol: self.env.model.name(s).to_string(),
                at: self.at.clone(),
            }),
            None => Err(CodegenError::MissingSlot { symbol: self.env.model.name(s).to_string(), at: self.at.clone() }),
        }
    }

    fn nary(&mut self, op: NaryOp, args: &[Expr]) -> Result<Reg, CodegenError> {
        let regs = args.iter().map(|a| self.expr(a)).collect::<Result<Vec<_>, _>>()?;
        let (empty, pair): (f64, fn(Reg, Reg) -> Instr) = match op {
            NaryOp::Add => (0.0, Instr::Add),
            NaryOp::Mul => (1.0, Instr::Mul),
            // The identities of min and max, so min() of nothing is +inf.
            NaryOp::Min => (f64::INFINITY, Instr::Min),
            NaryOp::Max => (f64::NEG_INFINITY, Instr::Max),
            NaryOp::And => (1.0, Instr::And),
            NaryOp::Or => (0.0, Instr::Or),
            NaryOp::Xor => (0.0, Instr::Xor),
        };
        let Some((&first, rest)) = regs.split_first() else {
            return Ok(self.b.konst(empty));
        };
        let mut acc = if rest.is_empty() && matches!(op, NaryOp::And | NaryOp::Or | NaryOp::Xor) {
            // A lone logical argument still has to become 0/1.
            self.b.push(Instr::Truth(first))
        } else {
            first
        };
        for &r in rest {
            acc = self.b.push(pair(acc, r));
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vht_ir::{Role, SymbolKind};

    #[test]
    fn identical_subexpressions_share_a_slot() {
        let mut m = Model::default();
        let x = m.add("x", Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(1.0));
        let slots = vec![Some(Slot::Y(0))];
        let env = Env { model: &m, slots: &slots, delays: &[], n_y: 1, n_p: 0 };
        let e1 = Expr::un(UnOp::Exp, Expr::Sym(x) * Expr::Num(2.0));
        let e2 = Expr::Num(2.0) * Expr::Sym(x);
        let tape = lower(&env, &[e1.clone(), e2, e1], &|i| format!("{i}")).unwrap();
        // const 2, y0, mul, exp: the product is shared and the two exps are one.
        assert_eq!(tape.instrs.len(), 4, "{:?}", tape.instrs);
        assert_eq!(tape.outputs[0], tape.outputs[2]);
    }

    #[test]
    fn added_negations_become_subtractions_and_dead_code_goes() {
        let mut m = Model::default();
        let x = m.add("x", Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(1.0));
        let y = m.add("y", Role::Species, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(1.0));
        let slots = vec![Some(Slot::Y(0)), Some(Slot::Y(1))];
        let env = Env { model: &m, slots: &slots, delays: &[], n_y: 2, n_p: 0 };
        // -x + y, and a piecewise whose constant-false piece is never computed.
        let e = -Expr::Sym(x) + Expr::Sym(y);
        let pw = Expr::Piecewise(vec![(Expr::un(UnOp::Exp, Expr::Sym(x)), Expr::Num(0.0))], Box::new(Expr::Sym(y)));
        let tape = lower(&env, &[e, pw], &|i| format!("{i}")).unwrap();
        assert_eq!(tape.instrs, vec![Instr::Y(0), Instr::Y(1), Instr::Bin(BinOp::Sub, 1, 0)]);
        assert_eq!(tape.outputs, vec![2, 1]);
    }
}
