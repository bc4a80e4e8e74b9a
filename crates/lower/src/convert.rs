//! SBML math to IR expressions: resolves identifiers to symbols, inlines
//! function definitions and spells out MathML's n-ary and defaulted forms.

use std::collections::HashMap;

use vht_ir::{BinOp, Expr, NaryOp, Sym, UnOp};
use vht_sbml::{FunctionDefinition, Math, Op};

use crate::LowerError;

/// `rateOf(x)` is emitted as this placeholder symbol plus an index into
/// [`Converter::rate_of`], and replaced by x's rate once every symbol's
/// kind is known (a rate can depend on rules lowered later).
pub(crate) const RATE_OF_BASE: u32 = 1 << 31;

/// Nesting depth of function calls past which a definition must be recursive.
const MAX_CALL_DEPTH: usize = 64;

/// Deepest expression lowered, function bodies inlined. The reader bounds
/// MathML depth; inlining can multiply it, and every later pass over the IR
/// recurses, so this keeps them all within a default thread stack.
const MAX_EXPR_DEPTH: usize = vht_sbml::MAX_MATH_DEPTH as usize;

/// Avogadro's number as SBML L3 defines it (CODATA 2006).
pub(crate) const AVOGADRO: f64 = 6.02214179e23;

pub(crate) struct Converter<'a> {
    pub file: &'a str,
    pub funcs: &'a HashMap<String, &'a FunctionDefinition>,
    pub syms: &'a HashMap<String, Sym>,
    /// Targets of `rateOf`, indexed by placeholder.
    pub rate_of: Vec<Sym>,
    /// Current expression depth (see [`MAX_EXPR_DEPTH`]).
    pub nesting: usize,
}

/// Where an expression comes from: for messages, and the local parameters
/// of the kinetic law it is in.
pub(crate) struct Scope<'s> {
    pub context: &'s str,
    pub locals: Option<&'s HashMap<String, Sym>>,
    /// Inside a function body: its bound variables, as the lowered arguments.
    pub bound: Option<&'s HashMap<String, Expr>>,
}

impl<'s> Scope<'s> {
    pub fn new(context: &'s str, locals: Option<&'s HashMap<String, Sym>>) -> Scope<'s> {
        Scope { context, locals, bound: None }
    }
}

impl<'a> Converter<'a> {
    fn bad(&self, scope: &Scope, problem: impl Into<String>) -> LowerError {
        LowerError::BadMath { file: self.file.to_string(), context: scope.context.to_string(), problem: problem.into() }
    }

    /// The placeholder standing for `rateOf(target)` until rates are known.
    pub fn rate_of_placeholder(&mut self, target: Sym) -> Expr {
        let idx = match self.rate_of.iter().position(|&s| s == target) {
            Some(i) => i,
            None => {
                self.rate_of.push(target);
                self.rate_of.len() - 1
            }
        };
        Expr::Sym(Sym(RATE_OF_BASE + idx as u32))
    }

    pub fn expr(&mut self, m: &Math, scope: &Scope) -> Result<Expr, LowerError> {
        let e = self.go(m, scope, 0)?;
        // Arguments inlined into bodies can nest deeper than either.
        if depth_of(&e) > MAX_EXPR_DEPTH {
            return Err(self.bad(
                scope,
                format!("the expression is nested more than {MAX_EXPR_DEPTH} levels deep once functions are inlined"),
            ));
        }
        Ok(e)
    }

    fn resolve(&self, name: &str, scope: &Scope) -> Result<Sym, LowerError> {
        if let Some(s) = scope.locals.and_then(|l| l.get(name)) {
            return Ok(*s);
        }
        self.syms.get(name).copied().ok_or_else(|| LowerError::Undefined {
            file: self.file.to_string(),
            context: scope.context.to_string(),
            what: if self.funcs.contains_key(name) { "value (it is a function)" } else { "identifier" },
            id: name.to_string(),
        })
    }

    /// Lowers `m`; `depth` counts nested function calls, `self.nesting`
    /// the expression depth including inlined bodies, both bounded.
    fn go(&mut self, m: &Math, scope: &Scope, depth: usize) -> Result<Expr, LowerError> {
        if self.nesting >= MAX_EXPR_DEPTH {
            return Err(self.bad(
                scope,
                format!("the expression is nested more than {MAX_EXPR_DEPTH} levels deep once functions are inlined"),
            ));
        }
        self.nesting += 1;
        let result = self.node(m, scope, depth);
        self.nesting -= 1;
        result
    }

    fn node(&mut self, m: &Math, scope: &Scope, depth: usize) -> Result<Expr, LowerError> {
        Ok(match m {
            Math::Num(v) => Expr::Num(*v),
            Math::Ci(name) => match scope.bound.and_then(|b| b.get(name)) {
                Some(e) => e.clone(),
                None => Expr::Sym(self.resolve(name, scope)?),
            },
            Math::Time => Expr::Time,
            Math::Avogadro => Expr::Num(AVOGADRO),
            Math::Piecewise(pieces, otherwise) => {
                let mut ps = Vec::with_capacity(pieces.len());
                for (v, c) in pieces {
                    ps.push((self.go(v, scope, depth)?, self.go(c, scope, depth)?));
                }
                // No matching piece and no otherwise: the value is undefined.
                let o = match otherwise {
                    Some(o) => self.go(o, scope, depth)?,
                    None => Expr::Num(f64::NAN),
                };
                Expr::Piecewise(ps, Box::new(o))
            }
            Math::Lambda(..) => return Err(self.bad(scope, "a <lambda> can only be a function definition")),
            Math::Apply(op, args) => self.apply(op, args, scope, depth)?,
        })
    }

    #[inline(never)]
    fn apply(&mut self, op: &Op, args: &[Math], scope: &Scope, depth: usize) -> Result<Expr, LowerError> {
        if let Op::Call(name) = op {
            return self.call(name, args, scope, depth);
        }
        if let Op::RateOf = op {
            let [Math::Ci(name)] = args else {
                return Err(self.bad(scope, "rateOf takes one identifier"));
            };
            let target = match scope.bound.and_then(|b| b.get(name)) {
                Some(Expr::Sym(s)) => *s,
                Some(_) => return Err(self.bad(scope, format!("rateOf({name}): the argument is not an identifier"))),
                None => self.resolve(name, scope)?,
            };
            return Ok(self.rate_of_placeholder(target));
        }
        let mut a = Vec::with_capacity(args.len());
        for x in args {
            a.push(self.go(x, scope, depth)?);
        }
        self.build(op, a, scope)
    }

    /// The IR form of a MathML operator applied to lowered arguments. Kept
    /// out of the recursion in `go`/`apply` so their stack frames stay small.
    #[inline(never)]
    fn build(&self, op: &Op, a: Vec<Expr>, scope: &Scope) -> Result<Expr, LowerError> {
        let n = a.len();
        let arity = |want: usize, this: &Self| -> Result<(), LowerError> {
            if n == want {
                Ok(())
            } else {
                Err(this.bad(scope, format!("<{}> takes {want} argument(s), got {n}", op_name(op))))
            }
        };
        let un = |u: UnOp, a: Vec<Expr>, this: &Self| -> Result<Expr, LowerError> {
            arity(1, this)?;
            Ok(Expr::un(u, a.into_iter().next().unwrap_or(Expr::Num(f64::NAN))))
        };
        let bin = |b: BinOp, a: Vec<Expr>, this: &Self| -> Result<Expr, LowerError> {
            arity(2, this)?;
            let mut it = a.into_iter();
            match (it.next(), it.next()) {
                (Some(x), Some(y)) => Ok(Expr::bin(b, x, y)),
                _ => Err(this.bad(scope, "missing argument")),
            }
        };
        Ok(match op {
            Op::Plus => match n {
                0 => Expr::Num(0.0),
                1 => a.into_iter().next().unwrap_or(Expr::Num(0.0)),
                _ => Expr::Nary(NaryOp::Add, a),
            },
            Op::Times => match n {
                0 => Expr::Num(1.0),
                1 => a.into_iter().next().unwrap_or(Expr::Num(1.0)),
                _ => Expr::Nary(NaryOp::Mul, a),
            },
            Op::Minus => match n {
                1 => un(UnOp::Neg, a, self)?,
                _ => bin(BinOp::Sub, a, self)?,
            },
            Op::Divide => bin(BinOp::Div, a, self)?,
            Op::Power => bin(BinOp::Pow, a, self)?,
            Op::Root | Op::Log => {
                arity(2, self)?;
                let mut it = a.into_iter();
                let (Some(q), Some(x)) = (it.next(), it.next()) else {
                    return Err(self.bad(scope, "missing argument"));
                };
                // The common square root and decimal log get their own operators.
                match op {
                    Op::Root if q.is_num(2.0) => Expr::un(UnOp::Sqrt, x),
                    Op::Root => Expr::bin(BinOp::Root, q, x),
                    _ if q.is_num(10.0) => Expr::un(UnOp::Log10, x),
                    _ => Expr::bin(BinOp::Log, q, x),
                }
            }
            Op::Abs => un(UnOp::Abs, a, self)?,
            Op::Exp => un(UnOp::Exp, a, self)?,
            Op::Ln => un(UnOp::Ln, a, self)?,
            Op::Floor => un(UnOp::Floor, a, self)?,
            Op::Ceiling => un(UnOp::Ceil, a, self)?,
            Op::Factorial => un(UnOp::Factorial, a, self)?,
            Op::Sin => un(UnOp::Sin, a, self)?,
            Op::Cos => un(UnOp::Cos, a, self)?,
            Op::Tan => un(UnOp::Tan, a, self)?,
            Op::Sec => un(UnOp::Sec, a, self)?,
            Op::Csc => un(UnOp::Csc, a, self)?,
            Op::Cot => un(UnOp::Cot, a, self)?,
            Op::Sinh => un(UnOp::Sinh, a, self)?,
            Op::Cosh => un(UnOp::Cosh, a, self)?,
            Op::Tanh => un(UnOp::Tanh, a, self)?,
            Op::Sech => un(UnOp::Sech, a, self)?,
            Op::Csch => un(UnOp::Csch, a, self)?,
            Op::Coth => un(UnOp::Coth, a, self)?,
            Op::Arcsin => un(UnOp::Asin, a, self)?,
            Op::Arccos => un(UnOp::Acos, a, self)?,
            Op::Arctan => un(UnOp::Atan, a, self)?,
            Op::Arcsec => un(UnOp::Asec, a, self)?,
            Op::Arccsc => un(UnOp::Acsc, a, self)?,
            Op::Arccot => un(UnOp::Acot, a, self)?,
            Op::Arcsinh => un(UnOp::Asinh, a, self)?,
            Op::Arccosh => un(UnOp::Acosh, a, self)?,
            Op::Arctanh => un(UnOp::Atanh, a, self)?,
            Op::Arcsech => un(UnOp::Asech, a, self)?,
            Op::Arccsch => un(UnOp::Acsch, a, self)?,
            Op::Arccoth => un(UnOp::Acoth, a, self)?,
            Op::Not => un(UnOp::Not, a, self)?,
            Op::Neq => bin(BinOp::Neq, a, self)?,
            Op::Implies => bin(BinOp::Implies, a, self)?,
            Op::Rem => bin(BinOp::Rem, a, self)?,
            Op::Quotient => bin(BinOp::Quotient, a, self)?,
            Op::Eq => chain(BinOp::Eq, a),
            Op::Lt => chain(BinOp::Lt, a),
            Op::Gt => chain(BinOp::Gt, a),
            Op::Leq => chain(BinOp::Le, a),
            Op::Geq => chain(BinOp::Ge, a),
            Op::And => Expr::Nary(NaryOp::And, a),
            Op::Or => Expr::Nary(NaryOp::Or, a),
            Op::Xor => Expr::Nary(NaryOp::Xor, a),
            Op::Min => Expr::Nary(NaryOp::Min, a),
            Op::Max => Expr::Nary(NaryOp::Max, a),
            Op::Delay => {
                arity(2, self)?;
                let mut it = a.into_iter();
                match (it.next(), it.next()) {
                    (Some(x), Some(tau)) => Expr::Delay(Box::new(x), Box::new(tau)),
                    _ => return Err(self.bad(scope, "delay takes 2 arguments")),
                }
            }
            Op::Call(_) | Op::RateOf => return Err(self.bad(scope, "internal: call handled above")),
        })
    }

    /// Inlines a function definition: its body with the arguments put in
    /// for its bound variables, lowered in the caller's scope.
    fn call(&mut self, name: &str, args: &[Math], scope: &Scope, depth: usize) -> Result<Expr, LowerError> {
        let Some(f) = self.funcs.get(name).copied() else {
            return Err(LowerError::UnknownFunction {
                file: self.file.to_string(),
                context: scope.context.to_string(),
                name: name.to_string(),
            });
        };
        if depth >= MAX_CALL_DEPTH {
            return Err(LowerError::RecursiveFunction { file: self.file.to_string(), name: name.to_string() });
        }
        if f.args.len() != args.len() {
            return Err(LowerError::Arity {
                file: self.file.to_string(),
                context: scope.context.to_string(),
                name: name.to_string(),
                expected: f.args.len(),
                found: args.len(),
            });
        }
        // A function without a body (L3V2) has an undefined value.
        let Some(body) = &f.body else { return Ok(Expr::Num(f64::NAN)) };
        // Arguments are lowered in the caller's scope, then the body with its
        // bound variables standing for them (and no kinetic-law locals:
        // a function body sees only its arguments and global ids).
        let mut bound = HashMap::with_capacity(args.len());
        for (var, arg) in f.args.iter().zip(args) {
            bound.insert(var.clone(), self.go(arg, scope, depth)?);
        }
        let inner = Scope { context: scope.context, locals: None, bound: Some(&bound) };
        self.go(body, &inner, depth + 1)
    }
}

/// The nesting depth of an expression, without recursion (it is the check
/// that keeps recursive passes safe).
fn depth_of(e: &Expr) -> usize {
    let mut max = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        match e {
            Expr::Num(_) | Expr::Sym(_) | Expr::Time => {}
            Expr::Un(_, a) => stack.push((a, d + 1)),
            Expr::Bin(_, a, b) | Expr::Delay(a, b) => {
                stack.push((a, d + 1));
                stack.push((b, d + 1));
            }
            Expr::Nary(_, args) => stack.extend(args.iter().map(|a| (a, d + 1))),
            Expr::Piecewise(pieces, otherwise) => {
                for (v, c) in pieces {
                    stack.push((v, d + 1));
                    stack.push((c, d + 1));
                }
                stack.push((otherwise, d + 1));
            }
        }
    }
    max
}

/// `a < b < c` is `a < b and b < c`; a relation of one argument is true.
fn chain(op: BinOp, a: Vec<Expr>) -> Expr {
    match a.len() {
        0 | 1 => Expr::Num(1.0),
        2 => {
            let mut it = a.into_iter();
            match (it.next(), it.next()) {
                (Some(x), Some(y)) => Expr::bin(op, x, y),
                _ => Expr::Num(f64::NAN),
            }
        }
        _ => Expr::Nary(NaryOp::And, a.windows(2).map(|w| Expr::bin(op, w[0].clone(), w[1].clone())).collect()),
    }
}

/// Replaces the bound variables of a lambda body by the call's arguments.
/// Arguments are not walked again, so a name in an argument is never
/// captured by a bound variable of the same name.
pub(crate) fn substitute(body: &Math, map: &HashMap<&str, &Math>) -> Math {
    match body {
        Math::Ci(n) => map.get(n.as_str()).map(|m| (*m).clone()).unwrap_or_else(|| body.clone()),
        Math::Num(_) | Math::Time | Math::Avogadro => body.clone(),
        Math::Apply(op, args) => Math::Apply(op.clone(), args.iter().map(|a| substitute(a, map)).collect()),
        Math::Piecewise(pieces, otherwise) => Math::Piecewise(
            pieces.iter().map(|(v, c)| (substitute(v, map), substitute(c, map))).collect(),
            otherwise.as_ref().map(|o| Box::new(substitute(o, map))),
        ),
        Math::Lambda(vars, b) => Math::Lambda(vars.clone(), Box::new(substitute(b, map))),
    }
}

/// Inlines every function call in `m` at the SBML level, for analyses that
/// need the identifiers an expression really reads. Unknown functions and
/// recursion are left in place (conversion reports them).
pub(crate) fn inline_calls(m: &Math, funcs: &HashMap<String, &FunctionDefinition>, depth: usize) -> Math {
    match m {
        Math::Apply(Op::Call(name), args) if depth < MAX_CALL_DEPTH => {
            let args: Vec<Math> = args.iter().map(|a| inline_calls(a, funcs, depth)).collect();
            match funcs.get(name.as_str()) {
                Some(f) if f.args.len() == args.len() => match &f.body {
                    Some(body) => {
                        let map: HashMap<&str, &Math> = f.args.iter().map(String::as_str).zip(args.iter()).collect();
                        inline_calls(&substitute(body, &map), funcs, depth + 1)
                    }
                    None => Math::Num(f64::NAN),
                },
                _ => Math::Apply(Op::Call(name.clone()), args),
            }
        }
        Math::Apply(op, args) => Math::Apply(op.clone(), args.iter().map(|a| inline_calls(a, funcs, depth)).collect()),
        Math::Piecewise(pieces, otherwise) => Math::Piecewise(
            pieces.iter().map(|(v, c)| (inline_calls(v, funcs, depth), inline_calls(c, funcs, depth))).collect(),
            otherwise.as_ref().map(|o| Box::new(inline_calls(o, funcs, depth))),
        ),
        _ => m.clone(),
    }
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Call(n) => n.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}
