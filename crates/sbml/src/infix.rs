//! SBML Level 1 infix formulas (`formula="k1 * S1 / (1 + pow(S1, 2))"`).
//!
//! Grammar (SBML L1V2 section 3.5): `+ - * / ^`, unary minus, parentheses,
//! numbers, identifiers and calls of the L1 predefined functions. Any other
//! call is kept as a call of a (user) function by name.

use crate::math::{Math, Op};

/// Why a formula did not parse, and the byte offset where.
#[derive(Clone, Debug, PartialEq)]
pub struct FormulaError {
    pub at: usize,
    pub problem: String,
}

pub fn parse_formula(src: &str) -> Result<Math, FormulaError> {
    let tokens = lex(src)?;
    let mut p = Parser { tokens, pos: 0, len: src.len() };
    let e = p.expr()?;
    match p.peek() {
        None => Ok(e),
        Some((at, t)) => Err(FormulaError { at, problem: format!("unexpected {t:?}") }),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(char),
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, FormulaError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            // An exponent only if digits follow, so `2e` stays an error below.
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
                text.parse().map_err(|_| FormulaError { at: start, problem: format!("bad number '{text}'") })?;
            out.push((start, Tok::Num(v)));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Ident(src[start..i].to_string())));
        } else if "+-*/^(),".contains(c) {
            out.push((i, Tok::Sym(c)));
            i += 1;
        } else {
            return Err(FormulaError { at: i, problem: format!("unexpected character '{c}'") });
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Tok)> {
        self.tokens.get(self.pos).map(|(a, t)| (*a, t))
    }
    fn eat(&mut self, c: char) -> bool {
        if matches!(self.peek(), Some((_, Tok::Sym(x))) if *x == c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn here(&self) -> usize {
        self.peek().map(|(a, _)| a).unwrap_or(self.len)
    }
    fn expect(&mut self, c: char) -> Result<(), FormulaError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(FormulaError { at: self.here(), problem: format!("expected '{c}'") })
        }
    }

    fn expr(&mut self) -> Result<Math, FormulaError> {
        let mut e = self.term()?;
        loop {
            if self.eat('+') {
                e = Math::apply(Op::Plus, vec![e, self.term()?]);
            } else if self.eat('-') {
                e = Math::apply(Op::Minus, vec![e, self.term()?]);
            } else {
                return Ok(e);
            }
        }
    }

    fn term(&mut self) -> Result<Math, FormulaError> {
        let mut e = self.unary()?;
        loop {
            if self.eat('*') {
                e = Math::apply(Op::Times, vec![e, self.unary()?]);
            } else if self.eat('/') {
                e = Math::apply(Op::Divide, vec![e, self.unary()?]);
            } else {
                return Ok(e);
            }
        }
    }

    /// Unary minus binds looser than `^`, so `-a^2` is `-(a^2)`.
    fn unary(&mut self) -> Result<Math, FormulaError> {
        if self.eat('-') {
            return Ok(Math::apply(Op::Minus, vec![self.unary()?]));
        }
        if self.eat('+') {
            return self.unary();
        }
        let base = self.primary()?;
        if self.eat('^') {
            // Right associative: a^b^c = a^(b^c).
            let exp = self.unary()?;
            return Ok(Math::apply(Op::Power, vec![base, exp]));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Math, FormulaError> {
        let at = self.here();
        let Some((_, tok)) = self.peek() else {
            return Err(FormulaError { at, problem: "unexpected end of formula".into() });
        };
        match tok.clone() {
            Tok::Num(v) => {
                self.pos += 1;
                Ok(Math::Num(v))
            }
            Tok::Sym('(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Tok::Ident(name) => {
                self.pos += 1;
                if !self.eat('(') {
                    return Ok(Math::Ci(name));
                }
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(')') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                call(&name, args).map_err(|problem| FormulaError { at, problem })
            }
            Tok::Sym(c) => Err(FormulaError { at, problem: format!("unexpected '{c}'") }),
        }
    }
}

/// The L1 predefined functions (L1V2 table 6), by their MathML meaning.
fn call(name: &str, args: Vec<Math>) -> Result<Math, String> {
    let n = args.len();
    let arity = |want: usize| -> Result<(), String> {
        if n == want {
            Ok(())
        } else {
            Err(format!("{name}() takes {want} argument{}, got {n}", if want == 1 { "" } else { "s" }))
        }
    };
    let unary_op = match name {
        "abs" => Some(Op::Abs),
        "acos" => Some(Op::Arccos),
        "asin" => Some(Op::Arcsin),
        "atan" => Some(Op::Arctan),
        "ceil" | "ceiling" => Some(Op::Ceiling),
        "cos" => Some(Op::Cos),
        "exp" => Some(Op::Exp),
        "floor" => Some(Op::Floor),
        "log" | "ln" => Some(Op::Ln),
        "sin" => Some(Op::Sin),
        "tan" => Some(Op::Tan),
        _ => None,
    };
    if let Some(op) = unary_op {
        arity(1)?;
        return Ok(Math::apply(op, args));
    }
    let with = |pre: Option<f64>, op: Op, post: Option<f64>, want: usize| -> Result<Math, String> {
        arity(want)?;
        let mut a: Vec<Math> = pre.map(Math::Num).into_iter().collect();
        a.extend(args.clone());
        a.extend(post.map(Math::Num));
        Ok(Math::apply(op, a))
    };
    match name {
        "log10" => with(Some(10.0), Op::Log, None, 1),
        "sqrt" => with(Some(2.0), Op::Root, None, 1),
        "sqr" => with(None, Op::Power, Some(2.0), 1),
        "pow" => with(None, Op::Power, None, 2),
        _ => Ok(Math::apply(Op::Call(name.to_string()), args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expect: expect_test::Expect) {
        let got = match parse_formula(src) {
            Ok(m) => format!("{m:?}"),
            Err(e) => format!("error at {}: {}", e.at, e.problem),
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn precedence() {
        check(
            "a + b*c^2",
            expect_test::expect![[
                r#"Apply(Plus, [Ci("a"), Apply(Times, [Ci("b"), Apply(Power, [Ci("c"), Num(2.0)])])])"#
            ]],
        );
        check("-a^2", expect_test::expect![[r#"Apply(Minus, [Apply(Power, [Ci("a"), Num(2.0)])])"#]]);
        check("a - b - c", expect_test::expect![[r#"Apply(Minus, [Apply(Minus, [Ci("a"), Ci("b")]), Ci("c")])"#]]);
    }

    #[test]
    fn functions_and_numbers() {
        check("pow(x, 1.5e-3)", expect_test::expect![[r#"Apply(Power, [Ci("x"), Num(0.0015)])"#]]);
        check("sqrt(x)", expect_test::expect![[r#"Apply(Root, [Num(2.0), Ci("x")])"#]]);
        check("f(x, 2)", expect_test::expect![[r#"Apply(Call("f"), [Ci("x"), Num(2.0)])"#]]);
    }

    #[test]
    fn errors_have_positions() {
        check("a + ", expect_test::expect!["error at 4: unexpected end of formula"]);
        check("a $ b", expect_test::expect!["error at 2: unexpected character '$'"]);
        check("pow(a)", expect_test::expect!["error at 0: pow() takes 2 arguments, got 1"]);
    }
}
