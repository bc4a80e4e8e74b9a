//! The math AST of SBML (MathML subset and L1 infix formulas both parse to it).
//!
//! It keeps SBML's own vocabulary (n-ary relational chains, `log` with a
//! base, user function calls, `rateOf`) and leaves meaning to the lowering.

/// A MathML operator (the head of an `<apply>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Plus,
    Minus,
    Times,
    Divide,
    Power,
    /// Arguments `[degree, x]` (degree 2 inserted when absent).
    Root,
    Abs,
    Exp,
    Ln,
    /// Arguments `[base, x]` (base 10 inserted when absent).
    Log,
    Floor,
    Ceiling,
    Factorial,
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Sinh,
    Cosh,
    Tanh,
    Sech,
    Csch,
    Coth,
    Arcsin,
    Arccos,
    Arctan,
    Arcsec,
    Arccsc,
    Arccot,
    Arcsinh,
    Arccosh,
    Arctanh,
    Arcsech,
    Arccsch,
    Arccoth,
    Eq,
    Neq,
    Gt,
    Lt,
    Geq,
    Leq,
    And,
    Or,
    Xor,
    Not,
    Implies,
    Min,
    Max,
    Rem,
    Quotient,
    /// csymbol delay: `[expr, tau]`.
    Delay,
    /// csymbol rateOf: `[ci]`.
    RateOf,
    /// A call of a function definition.
    Call(String),
}

impl Op {
    /// The operator named by a MathML element, if it is one SBML allows.
    pub fn from_mathml(name: &str) -> Option<Op> {
        use Op::*;
        Some(match name {
            "plus" => Plus,
            "minus" => Minus,
            "times" => Times,
            "divide" => Divide,
            "power" => Power,
            "root" => Root,
            "abs" => Abs,
            "exp" => Exp,
            "ln" => Ln,
            "log" => Log,
            "floor" => Floor,
            "ceiling" => Ceiling,
            "factorial" => Factorial,
            "sin" => Sin,
            "cos" => Cos,
            "tan" => Tan,
            "sec" => Sec,
            "csc" => Csc,
            "cot" => Cot,
            "sinh" => Sinh,
            "cosh" => Cosh,
            "tanh" => Tanh,
            "sech" => Sech,
            "csch" => Csch,
            "coth" => Coth,
            "arcsin" => Arcsin,
            "arccos" => Arccos,
            "arctan" => Arctan,
            "arcsec" => Arcsec,
            "arccsc" => Arccsc,
            "arccot" => Arccot,
            "arcsinh" => Arcsinh,
            "arccosh" => Arccosh,
            "arctanh" => Arctanh,
            "arcsech" => Arcsech,
            "arccsch" => Arccsch,
            "arccoth" => Arccoth,
            "eq" => Eq,
            "neq" => Neq,
            "gt" => Gt,
            "lt" => Lt,
            "geq" => Geq,
            "leq" => Leq,
            "and" => And,
            "or" => Or,
            "xor" => Xor,
            "not" => Not,
            "implies" => Implies,
            "min" => Min,
            "max" => Max,
            "rem" => Rem,
            "quotient" => Quotient,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Math {
    /// A number, including the constants `true` (1), `false` (0), `pi`,
    /// `exponentiale`, `infinity` and `notanumber`.
    Num(f64),
    /// An identifier (`<ci>`).
    Ci(String),
    /// csymbol time.
    Time,
    /// csymbol avogadro.
    Avogadro,
    Apply(Op, Vec<Math>),
    /// `(value, condition)` pieces, then the optional `otherwise`.
    Piecewise(Vec<(Math, Math)>, Option<Box<Math>>),
    /// A function definition's body with its bound variables.
    Lambda(Vec<String>, Box<Math>),
}

impl Math {
    pub fn apply(op: Op, args: Vec<Math>) -> Math {
        Math::Apply(op, args)
    }

    /// Calls `f` on this node and every descendant, parents first.
    pub fn walk(&self, f: &mut impl FnMut(&Math)) {
        f(self);
        match self {
            Math::Num(_) | Math::Ci(_) | Math::Time | Math::Avogadro => {}
            Math::Apply(_, args) => args.iter().for_each(|a| a.walk(f)),
            Math::Piecewise(pieces, otherwise) => {
                for (v, c) in pieces {
                    v.walk(f);
                    c.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Math::Lambda(_, body) => body.walk(f),
        }
    }

    /// The identifiers this expression mentions, without repeats.
    pub fn identifiers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        fn go<'a>(m: &'a Math, out: &mut Vec<&'a str>) {
            match m {
                Math::Ci(n) => {
                    if !out.contains(&n.as_str()) {
                        out.push(n)
                    }
                }
                Math::Num(_) | Math::Time | Math::Avogadro => {}
                Math::Apply(_, args) => args.iter().for_each(|a| go(a, out)),
                Math::Piecewise(pieces, otherwise) => {
                    for (v, c) in pieces {
                        go(v, out);
                        go(c, out);
                    }
                    if let Some(o) = otherwise {
                        go(o, out);
                    }
                }
                Math::Lambda(_, body) => go(body, out),
            }
        }
        go(self, &mut out);
        out
    }
}
