//! PEtab math: the infix formulas of observable and noise columns, parsed
//! straight to `vht_ir::Expr`.
//!
//! Grammar (PEtab v1 formulas are sympy-parseable; this is the part the
//! benchmark problems use, with PEtab v2's operators): `+ - * /`, `^` and
//! `**` (right-associative, binding tighter than unary minus, as in sympy),
//! comparisons `< <= > >= == !=`, `&&` `||` `!` (and `&` `|`), numbers
//! (`1e-3`, `inf`, `nan`), identifiers and calls of the functions in
//! [`call`]. Identifiers go through a resolver so that the caller decides
//! what a name means (a model symbol, a PEtab parameter, a placeholder).

use vht_ir::{BinOp, Expr, NaryOp, UnOp};

/// Why a formula did not parse, and the byte offset where.
#[derive(Clone, Debug, PartialEq)]
pub struct FormulaError {
    pub offset: usize,
    pub problem: String,
}

/// Parses `src`; `resolve` maps an identifier to its expression, or `None`
/// if it is unknown (then `pi`, `true`, `false` are tried before failing).
pub fn parse(src: &str, resolve: &mut dyn FnMut(&str) -> Option<Expr>) -> Result<Expr, FormulaError> {
    let tokens = lex(src)?;
    let mut p = Parser { tokens, pos: 0, end: src.len(), resolve };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some((at, t)) => Err(FormulaError { offset: at, problem: format!("unexpected {}", t.show()) }),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Num(x) => format!("number {x}"),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Op(o) => format!("'{o}'"),
        }
    }
}

const OPS: [&str; 18] =
    ["**", "<=", ">=", "==", "!=", "&&", "||", "+", "-", "*", "/", "^", "(", ")", ",", "<", ">", "!"];

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, FormulaError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let text = &src[start..i];
            let v: f64 =
                text.parse().map_err(|_| FormulaError { offset: start, problem: format!("bad number '{text}'") })?;
            out.push((start, Tok::Num(v)));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Ident(src[start..i].to_string())));
        } else if c == b'&' || c == b'|' {
            // sympy's `&` and `|` are PEtab v2's `&&` and `||`.
            let double = b.get(i + 1) == Some(&c);
            out.push((i, Tok::Op(if c == b'&' { "&&" } else { "||" })));
            i += if double { 2 } else { 1 };
        } else if let Some(op) = OPS.iter().find(|o| src[i..].starts_with(**o)) {
            out.push((i, Tok::Op(op)));
            i += op.len();
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(FormulaError { offset: i, problem: format!("unexpected character '{ch}'") });
        }
    }
    Ok(out)
}

struct Parser<'r> {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    resolve: &'r mut dyn FnMut(&str) -> Option<Expr>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<(usize, &Tok)> {
        self.tokens.get(self.pos).map(|(a, t)| (*a, t))
    }
    fn at(&self) -> usize {
        self.peek().map_or(self.end, |(a, _)| a)
    }
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some((_, Tok::Op(o))) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), FormulaError> {
        if self.eat(op) {
            Ok(())
        } else {
            let found = self.peek().map_or("the end".to_string(), |(_, t)| t.show());
            Err(FormulaError { offset: self.at(), problem: format!("expected '{op}', found {found}") })
        }
    }

    fn or(&mut self) -> Result<Expr, FormulaError> {
        let mut args = vec![self.and()?];
        while self.eat("||") {
            args.push(self.and()?);
        }
        Ok(if args.len() == 1 { args.remove(0) } else { Expr::Nary(NaryOp::Or, args) })
    }
    fn and(&mut self) -> Result<Expr, FormulaError> {
        let mut args = vec![self.not()?];
        while self.eat("&&") {
            args.push(self.not()?);
        }
        Ok(if args.len() == 1 { args.remove(0) } else { Expr::Nary(NaryOp::And, args) })
    }
    fn not(&mut self) -> Result<Expr, FormulaError> {
        if self.eat("!") {
            return Ok(Expr::un(UnOp::Not, self.not()?));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, FormulaError> {
        let a = self.add()?;
        for (op, bop) in [
            ("<=", BinOp::Le),
            (">=", BinOp::Ge),
            ("==", BinOp::Eq),
            ("!=", BinOp::Neq),
            ("<", BinOp::Lt),
            (">", BinOp::Gt),
        ] {
            if self.eat(op) {
                let b = self.add()?;
                return Ok(Expr::bin(bop, a, b));
            }
        }
        Ok(a)
    }
    fn add(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.mul()?;
        loop {
            if self.eat("+") {
                e = e + self.mul()?;
            } else if self.eat("-") {
                e = e - self.mul()?;
            } else {
                return Ok(e);
            }
        }
    }
    fn mul(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.unary()?;
        loop {
            if self.eat("*") {
                e = e * self.unary()?;
            } else if self.eat("/") {
                e = e / self.unary()?;
            } else {
                return Ok(e);
            }
        }
    }
    fn unary(&mut self) -> Result<Expr, FormulaError> {
        if self.eat("-") {
            return Ok(-self.unary()?);
        }
        if self.eat("+") {
            return self.unary();
        }
        self.pow()
    }
    fn pow(&mut self) -> Result<Expr, FormulaError> {
        let base = self.atom()?;
        if self.eat("^") || self.eat("**") {
            // Right-associative, and the exponent may carry its own sign.
            let exp = self.unary()?;
            return Ok(Expr::bin(BinOp::Pow, base, exp));
        }
        Ok(base)
    }
    fn atom(&mut self) -> Result<Expr, FormulaError> {
        let Some((at, tok)) = self.peek() else {
            return Err(FormulaError { offset: self.end, problem: "unexpected end of formula".into() });
        };
        let tok = tok.clone();
        self.pos += 1;
        match tok {
            Tok::Num(x) => Ok(Expr::Num(x)),
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    return call(&name, args).map_err(|problem| FormulaError { offset: at, problem });
                }
                if let Some(e) = (self.resolve)(&name) {
                    return Ok(e);
                }
                match name.as_str() {
                    "pi" => Ok(Expr::Num(std::f64::consts::PI)),
                    "true" => Ok(Expr::Num(1.0)),
                    "false" => Ok(Expr::Num(0.0)),
                    "inf" | "Inf" | "INF" => Ok(Expr::Num(f64::INFINITY)),
                    "nan" | "NaN" | "NAN" => Ok(Expr::Num(f64::NAN)),
                    _ => Err(FormulaError { offset: at, problem: format!("unknown identifier '{name}'") }),
                }
            }
            t => Err(FormulaError { offset: at, problem: format!("unexpected {}", t.show()) }),
        }
    }
}

/// A function call by name.
fn call(name: &str, mut args: Vec<Expr>) -> Result<Expr, String> {
    let n = args.len();
    let arity = |want: usize| {
        if n == want {
            Ok(())
        } else {
            Err(format!("{name}() takes {want} argument(s), found {n}"))
        }
    };
    let un = |op: UnOp, args: &mut Vec<Expr>| -> Result<Expr, String> {
        arity(1)?;
        Ok(Expr::un(op, args.remove(0)))
    };
    match name {
        "exp" => un(UnOp::Exp, &mut args),
        "ln" => un(UnOp::Ln, &mut args),
        // sympy's log(x, b) is the logarithm of x to base b.
        "log" if n == 2 => {
            let b = args.remove(1);
            Ok(Expr::bin(BinOp::Log, b, args.remove(0)))
        }
        "log" => un(UnOp::Ln, &mut args),
        "log10" => un(UnOp::Log10, &mut args),
        "log2" => {
            arity(1)?;
            Ok(Expr::bin(BinOp::Log, Expr::Num(2.0), args.remove(0)))
        }
        "sqrt" => un(UnOp::Sqrt, &mut args),
        "abs" | "Abs" => un(UnOp::Abs, &mut args),
        "floor" => un(UnOp::Floor, &mut args),
        "ceil" | "ceiling" => un(UnOp::Ceil, &mut args),
        "sin" => un(UnOp::Sin, &mut args),
        "cos" => un(UnOp::Cos, &mut args),
        "tan" => un(UnOp::Tan, &mut args),
        "sinh" => un(UnOp::Sinh, &mut args),
        "cosh" => un(UnOp::Cosh, &mut args),
        "tanh" => un(UnOp::Tanh, &mut args),
        "asin" | "arcsin" => un(UnOp::Asin, &mut args),
        "acos" | "arccos" => un(UnOp::Acos, &mut args),
        "atan" | "arctan" => un(UnOp::Atan, &mut args),
        "pow" => {
            arity(2)?;
            let e = args.remove(1);
            Ok(Expr::bin(BinOp::Pow, args.remove(0), e))
        }
        "min" | "Min" if n >= 1 => Ok(Expr::Nary(NaryOp::Min, args)),
        "max" | "Max" if n >= 1 => Ok(Expr::Nary(NaryOp::Max, args)),
        "sign" => {
            arity(1)?;
            let x = args.remove(0);
            Ok(Expr::Piecewise(
                vec![
                    (Expr::Num(1.0), Expr::bin(BinOp::Gt, x.clone(), Expr::Num(0.0))),
                    (Expr::Num(-1.0), Expr::bin(BinOp::Lt, x, Expr::Num(0.0))),
                ],
                Box::new(Expr::Num(0.0)),
            ))
        }
        // piecewise(v1, c1, v2, c2, ..., otherwise), as in PEtab v2.
        "piecewise" if n % 2 == 1 => {
            let otherwise = args.pop().unwrap_or(Expr::Num(f64::NAN));
            let mut pieces = Vec::new();
            let mut it = args.into_iter();
            while let (Some(v), Some(c)) = (it.next(), it.next()) {
                pieces.push((v, c));
            }
            Ok(Expr::Piecewise(pieces, Box::new(otherwise)))
        }
        "piecewise" => Err("piecewise() takes value, condition pairs and a final otherwise value".into()),
        _ => Err(format!("unknown function '{name}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vht_ir::eval::{eval, Env};
    use vht_ir::Sym;

    struct Vars;
    impl Env for Vars {
        fn value(&self, s: Sym) -> f64 {
            [2.0, 3.0][s.index()]
        }
        fn time(&self) -> f64 {
            0.5
        }
        fn delayed(&self, _: &Expr, _: f64) -> f64 {
            f64::NAN
        }
    }

    fn check(src: &str, want: f64) {
        let mut resolve = |n: &str| match n {
            "a" => Some(Expr::Sym(Sym(0))),
            "b" => Some(Expr::Sym(Sym(1))),
            "time" => Some(Expr::Time),
            _ => None,
        };
        let e = parse(src, &mut resolve).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        let got = eval(&e, &Vars);
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{src}: got {got}, want {want}");
    }

    #[test]
    fn operators_and_precedence() {
        check("a + b * 2", 8.0);
        check("-a^2", -4.0);
        check("a**b**2", 512.0);
        check("2^-1", 0.5);
        check("(a - b) / 2e-1", -5.0);
        check("1E-05 * 1e5", 1.0);
        check("-(100 * a - 200 * b * (a - 1)) / ((b * (a - 1) - a) + 2)", -(200.0 - 600.0) / (1.0 + 2.0));
        check("log10(100) + ln(exp(1)) + log(8, 2)", 6.0);
        check("piecewise(1, time < 1 && a > 1, 2)", 1.0);
        check("piecewise(1, time > 1 || !(a > 1), 2)", 2.0);
        check("pow(a, 3) + sqrt(4) + abs(-1) + sign(-3)", 10.0);
        check("max(a, b, 1) + min(a, b)", 5.0);
        check("(0.9 * a + 0.1 * b)^4", 2.1f64.powi(4));
    }

    #[test]
    fn errors_give_the_offset() {
        let mut none = |_: &str| None;
        let e = parse("k1 * x", &mut none).unwrap_err();
        assert_eq!(e, FormulaError { offset: 0, problem: "unknown identifier 'k1'".into() });
        let e = parse("2 * (3 + 4", &mut none).unwrap_err();
        assert_eq!(e, FormulaError { offset: 10, problem: "expected ')', found the end".into() });
        let e = parse("foo(1)", &mut none).unwrap_err();
        assert_eq!(e, FormulaError { offset: 0, problem: "unknown function 'foo'".into() });
        let e = parse("1 $ 2", &mut none).unwrap_err();
        assert_eq!(e.offset, 2);
    }
}
