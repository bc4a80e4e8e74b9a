//! The subset of UCUM (the Unified Code for Units of Measure) that clinical
//! laboratory values and doses use: metric prefixes on g, m, L, s, mol, U and
//! [IU]; min, h, d, wk; [lb_av], [oz_av]; %; products with `.`, quotients
//! with `/`, integer exponents (`m2`, `s-1`), `10*n` and `10^n` factors,
//! parentheses and `{annotations}` (which carry no dimension).
//!
//! A unit is a factor times a dimension vector over the base units
//! (m, g, s, mol, IU). Conversions between dimensions that differ only by
//! mass and amount of substance go through a molar mass; between
//! international units and amount of substance through an equivalence the
//! caller gives (e.g. 6 nmol per IU of insulin). Both are stated in the
//! mapping file, never guessed. HbA1c between NGSP % and IFCC mmol/mol is
//! not a unit conversion at all (the two are related by the affine IFCC-NGSP
//! master equation), so it is a separate function.

use crate::FhirError;

/// Base dimensions: length, mass, time, amount of substance, international unit.
const M: usize = 0;
const G: usize = 1;
const S: usize = 2;
const MOL: usize = 3;
const IU: usize = 4;

/// A parsed unit: `factor` times the product of the base units raised to `dim`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    pub factor: f64,
    pub dim: [i32; 5],
}

impl Unit {
    const ONE: Unit = Unit { factor: 1.0, dim: [0; 5] };
    fn mul(self, o: Unit) -> Unit {
        let mut dim = self.dim;
        for (d, e) in dim.iter_mut().zip(o.dim) {
            *d += e;
        }
        Unit { factor: self.factor * o.factor, dim }
    }
    fn pow(self, n: i32) -> Unit {
        Unit { factor: self.factor.powi(n), dim: self.dim.map(|d| d * n) }
    }
}

const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("Y", 1e24),
    ("Z", 1e21),
    ("E", 1e18),
    ("P", 1e15),
    ("T", 1e12),
    ("G", 1e9),
    ("M", 1e6),
    ("k", 1e3),
    ("h", 1e2),
    ("d", 1e-1),
    ("c", 1e-2),
    ("m", 1e-3),
    ("u", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
    ("f", 1e-15),
    ("a", 1e-18),
    ("z", 1e-21),
    ("y", 1e-24),
];

/// Atoms: (code, metric (takes prefixes), factor, dimension).
fn atom(code: &str) -> Option<(bool, Unit)> {
    let u = |factor: f64, dim: [i32; 5]| Unit { factor, dim };
    Some(match code {
        "m" => (true, u(1.0, [1, 0, 0, 0, 0])),
        "g" => (true, u(1.0, [0, 1, 0, 0, 0])),
        "s" => (true, u(1.0, [0, 0, 1, 0, 0])),
        "mol" => (true, u(1.0, [0, 0, 0, 1, 0])),
        "L" | "l" => (true, u(1e-3, [3, 0, 0, 0, 0])),
        // The enzyme unit is µmol/min by definition.
        "U" => (true, u(1e-6 / 60.0, [0, 0, -1, 1, 0])),
        "[IU]" | "[iU]" => (true, u(1.0, [0, 0, 0, 0, 1])),
        "min" => (false, u(60.0, [0, 0, 1, 0, 0])),
        "h" => (false, u(3600.0, [0, 0, 1, 0, 0])),
        "d" => (false, u(86400.0, [0, 0, 1, 0, 0])),
        "wk" => (false, u(7.0 * 86400.0, [0, 0, 1, 0, 0])),
        "[lb_av]" => (false, u(453.59237, [0, 1, 0, 0, 0])),
        "[oz_av]" => (false, u(28.349523125, [0, 1, 0, 0, 0])),
        "%" => (false, u(1e-2, [0; 5])),
        _ => return None,
    })
}

/// Parses a UCUM unit expression.
pub fn parse(unit: &str) -> Result<Unit, FhirError> {
    let err = |offset: usize, problem: String| FhirError::Ucum { unit: unit.to_string(), offset, problem };
    let mut p = Parser { s: unit.as_bytes(), i: 0 };
    if unit.trim().is_empty() {
        return Err(err(0, "empty unit (write '1' for a dimensionless number)".into()));
    }
    let u = p.term().map_err(|(o, m)| err(o, m))?;
    if p.i != p.s.len() {
        return Err(err(p.i, format!("unexpected '{}'", unit[p.i..].chars().next().unwrap_or(' '))));
    }
    Ok(u)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

type PResult = Result<Unit, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    /// term := ['/'] component (('.' | '/') component)*
    fn term(&mut self) -> PResult {
        let mut u = Unit::ONE;
        if self.peek() == Some(b'/') {
            self.i += 1;
            u = self.component()?.pow(-1);
        } else {
            u = u.mul(self.component()?);
        }
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    u = u.mul(self.component()?);
                }
                Some(b'/') => {
                    self.i += 1;
                    u = u.mul(self.component()?.pow(-1));
                }
                _ => return Ok(u),
            }
        }
    }
    /// component := annotation | '(' term ')' | factor | annotatable annotation?
    fn component(&mut self) -> PResult {
        let start = self.i;
        match self.peek() {
            Some(b'{') => {
                self.annotation()?;
                Ok(Unit::ONE)
            }
            Some(b'(') => {
                self.i += 1;
                let u = self.term()?;
                if self.peek() != Some(b')') {
                    return Err((self.i, "expected ')'".into()));
                }
                self.i += 1;
                Ok(u)
            }
            Some(c) if c.is_ascii_digit() => {
                let n = self.digits();
                // `10*3` and `10^3` are powers of ten; a plain integer is a factor.
                if matches!(self.peek(), Some(b'*') | Some(b'^')) {
                    if &self.s[start..self.i] != b"10" {
                        return Err((start, "only 10*n and 10^n powers are UCUM".into()));
                    }
                    self.i += 1;
                    let e = self.exponent().ok_or((self.i, "expected an exponent after 10*".to_string()))?;
                    return Ok(Unit { factor: 10f64.powi(e), dim: [0; 5] });
                }
                let f = std::str::from_utf8(&self.s[start..start + n]).ok().and_then(|t| t.parse::<f64>().ok());
                Ok(Unit { factor: f.ok_or((start, "bad number".to_string()))?, dim: [0; 5] })
            }
            Some(_) => {
                let u = self.simple()?;
                if self.peek() == Some(b'{') {
                    self.annotation()?;
                }
                Ok(u)
            }
            None => Err((self.i, "expected a unit".into())),
        }
    }
    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }
    fn exponent(&mut self) -> Option<i32> {
        let start = self.i;
        if matches!(self.peek(), Some(b'+') | Some(b'-')) {
            self.i += 1;
        }
        if self.digits() == 0 {
            self.i = start;
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()?.parse().ok()
    }
    fn annotation(&mut self) -> Result<(), (usize, String)> {
        let start = self.i;
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == b'}' {
                return Ok(());
            }
        }
        Err((start, "unclosed '{'".into()))
    }
    /// A prefixed or plain atom with an optional integer exponent.
    fn simple(&mut self) -> PResult {
        let start = self.i;
        // The atom's text runs to the next operator, digit (exponent), sign or brace;
        // square brackets are part of the atom.
        let mut depth = 0;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' => depth -= 1,
                b'.' | b'/' | b'(' | b')' | b'{' if depth == 0 => break,
                b'0'..=b'9' | b'+' | b'-' if depth == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| (start, "not UTF-8".to_string()))?;
        if text.is_empty() {
            return Err((start, "expected a unit".into()));
        }
        let u = resolve(text)
            .ok_or((start, format!("unknown unit '{text}' (this reader knows a clinical subset of UCUM)")))?;
        match self.exponent() {
            Some(e) => Ok(u.pow(e)),
            None => Ok(u),
        }
    }
}

fn resolve(text: &str) -> Option<Unit> {
    if let Some((_, u)) = atom(text) {
        return Some(u);
    }
    for (p, f) in PREFIXES {
        if let Some(rest) = text.strip_prefix(p) {
            if let Some((true, u)) = atom(rest) {
                return Some(Unit { factor: u.factor * f, dim: u.dim });
            }
        }
    }
    None
}

/// What a conversion between dimensions may use.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Equivalences {
    /// Grams per mole of the analyte.
    pub molar_mass: Option<f64>,
    /// Moles per international unit of the analyte.
    pub mol_per_iu: Option<f64>,
}

/// The factor `k` such that a value in `from` times `k` is the value in `to`.
pub fn factor(from: &str, to: &str, eq: Equivalences) -> Result<f64, String> {
    let a = parse(from).map_err(|e| e.to_string())?;
    let b = parse(to).map_err(|e| e.to_string())?;
    let mut k = a.factor / b.factor;
    let diff: Vec<i32> = (0..5).map(|i| b.dim[i] - a.dim[i]).collect();
    if diff[M] != 0 || diff[S] != 0 || diff[G] + diff[MOL] + diff[IU] != 0 {
        return Err(format!("the dimensions differ ({} against {})", dims(a.dim), dims(b.dim)));
    }
    // Going from `from` to `to` changes grams by diff[G] and IU by diff[IU],
    // each balanced by moles: multiply by (g/mol)^diff[G] and (mol/IU)^-diff[IU].
    if diff[G] != 0 {
        let mm = eq.molar_mass.ok_or("mass and amount of substance need a molar_mass in the map")?;
        k *= mm.powi(diff[G]);
    }
    if diff[IU] != 0 {
        let c = eq.mol_per_iu.ok_or("international units and amount of substance need an iu_equivalent in the map")?;
        k *= c.powi(-diff[IU]);
    }
    Ok(k)
}

fn dims(d: [i32; 5]) -> String {
    let names = ["m", "g", "s", "mol", "[IU]"];
    let parts: Vec<String> = names
        .iter()
        .zip(d)
        .filter(|(_, e)| *e != 0)
        .map(|(n, e)| if e == 1 { n.to_string() } else { format!("{n}{e}") })
        .collect();
    if parts.is_empty() {
        "dimensionless".into()
    } else {
        parts.join(".")
    }
}

/// Parses a UCUM quantity written as "NUMBER UNIT" (e.g. "180.16 g/mol")
/// into its value in the given unit.
pub fn quantity_in(text: &str, unit: &str, eq: Equivalences) -> Result<f64, String> {
    let text = text.trim();
    let (num, u) = text.split_once(char::is_whitespace).ok_or(format!("expected 'NUMBER UNIT', found '{text}'"))?;
    let v: f64 = num.parse().map_err(|_| format!("'{num}' is not a number"))?;
    Ok(v * factor(u.trim(), unit, eq)?)
}

/// HbA1c from NGSP/DCCT percent to IFCC mmol/mol, by the IFCC-NGSP master
/// equation NGSP = 0.09148 * IFCC + 2.152 (Hoelzel et al., Clin Chem 2004).
pub fn hba1c_ngsp_to_ifcc(percent: f64) -> f64 {
    (percent - 2.152) / 0.09148
}

/// HbA1c from IFCC mmol/mol to NGSP/DCCT percent (the master equation).
pub fn hba1c_ifcc_to_ngsp(mmol_per_mol: f64) -> f64 {
    0.09148 * mmol_per_mol + 2.152
}

/// Converts an HbA1c value between `%` (NGSP) and `mmol/mol` (IFCC); any
/// other pair of units must be the same kind and converts by factor.
pub fn hba1c(value: f64, from: &str, to: &str) -> Result<f64, String> {
    match (from.trim(), to.trim()) {
        ("%", "mmol/mol") => Ok(hba1c_ngsp_to_ifcc(value)),
        ("mmol/mol", "%") => Ok(hba1c_ifcc_to_ngsp(value)),
        (a, b) if a == b => Ok(value),
        (a, b) => Err(format!("HbA1c is converted only between % (NGSP) and mmol/mol (IFCC), not '{a}' to '{b}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn prefixes_and_atoms() {
        close(factor("mg/dL", "g/L", Equivalences::default()).unwrap(), 0.01);
        close(factor("kg", "g", Equivalences::default()).unwrap(), 1000.0);
        close(factor("[lb_av]", "kg", Equivalences::default()).unwrap(), 0.45359237);
        close(factor("h", "min", Equivalences::default()).unwrap(), 60.0);
        close(factor("d", "h", Equivalences::default()).unwrap(), 24.0);
        close(factor("pmol/L", "nmol/mL", Equivalences::default()).unwrap(), 1e-6);
        close(factor("%", "1", Equivalences::default()).unwrap(), 0.01);
        close(factor("10*3/uL", "10*9/L", Equivalences::default()).unwrap(), 1.0);
        close(factor("mL/min/{1.73_m2}", "L/h", Equivalences::default()).unwrap(), 0.06);
        close(factor("m2", "cm2", Equivalences::default()).unwrap(), 1e4);
        close(factor("s-1", "/min", Equivalences::default()).unwrap(), 60.0);
        close(factor("mU/L", "U/mL", Equivalences::default()).unwrap(), 1e-6);
    }

    #[test]
    fn glucose_mass_to_substance() {
        let eq = Equivalences { molar_mass: Some(180.156), mol_per_iu: None };
        // 1 mmol/L of glucose is 18.0156 mg/dL.
        close(factor("mmol/L", "mg/dL", eq).unwrap(), 18.0156);
        close(factor("mg/dL", "mmol/L", eq).unwrap(), 1.0 / 18.0156);
        let e = factor("mg/dL", "mmol/L", Equivalences::default()).unwrap_err();
        assert!(e.contains("molar_mass"), "{e}");
    }

    #[test]
    fn insulin_units_to_substance() {
        // 1 IU of insulin is 6 nmol, so 1 µIU/mL = 6 pmol/L.
        let eq = Equivalences { molar_mass: None, mol_per_iu: Some(6e-9) };
        close(factor("u[IU]/mL", "pmol/L", eq).unwrap(), 6.0);
        close(factor("pmol/L", "m[IU]/L", eq).unwrap(), 1.0 / 6.0);
    }

    #[test]
    fn mismatches_name_the_dimensions() {
        let e = factor("mg/dL", "kg", Equivalences::default()).unwrap_err();
        assert_eq!(e, "the dimensions differ (m-3.g against g)");
        assert!(parse("furlong").is_err());
        assert!(parse("mg/(dL").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn hba1c_master_equation() {
        // 6.5 % NGSP is 48 mmol/mol IFCC (the ADA diagnostic threshold).
        assert_eq!(hba1c(6.5, "%", "mmol/mol").unwrap().round(), 48.0);
        close(hba1c(hba1c(7.0, "%", "mmol/mol").unwrap(), "mmol/mol", "%").unwrap(), 7.0);
        assert!(hba1c(6.5, "%", "g/dL").is_err());
    }

    #[test]
    fn quantities() {
        close(quantity_in("180.156 g/mol", "g/mol", Equivalences::default()).unwrap(), 180.156);
        close(quantity_in("0.180156 kg/mol", "g/mol", Equivalences::default()).unwrap(), 180.156);
        assert!(quantity_in("180", "g/mol", Equivalences::default()).is_err());
    }
}
