//! The mapping file (TOML): how one model meets clinical data. Documented in
//! examples/twins/README.md with a JSON schema (examples/twins/map.schema.json).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::ucum::{self, Equivalences};
use crate::FhirError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Map {
    /// The SBML model, relative to the map file.
    pub model: Spanned<String>,
    /// The model's time unit (UCUM, e.g. "min").
    pub time_unit: Spanned<String>,
    pub time_origin: TimeOrigin,
    /// Unknown LOINC or medication codes are errors (else warnings, skipped).
    #[serde(default)]
    pub strict: bool,
    /// Birth date: dropped ("none", the default), or kept as year or age.
    #[serde(default)]
    pub birth_date: BirthDate,
    /// Initial values written into the model copy before anything else (e.g.
    /// to remove a meal the published model starts with).
    #[serde(default)]
    pub initial: BTreeMap<String, f64>,
    #[serde(default)]
    pub observations: Vec<ObservationMap>,
    #[serde(default)]
    pub medications: Vec<MedicationMap>,
    #[serde(default)]
    pub covariates: Vec<CovariateMap>,
    #[serde(default)]
    pub estimate: Vec<EstimateMap>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum TimeOrigin {
    FirstDose,
    FirstObservation,
    /// An RFC 3339 date-time.
    Fixed {
        at: String,
    },
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BirthDate {
    #[default]
    None,
    Year,
    Age,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationMap {
    pub loinc: Spanned<String>,
    /// The PEtab observable id; several LOINC codes may share one.
    pub observable: String,
    /// The observable formula over model symbols, in `unit`.
    pub formula: String,
    /// The unit the formula's value is in (UCUM).
    pub unit: String,
    /// PEtab noise formula (in `unit`), e.g. "2 + 0.04 * G".
    pub noise_formula: String,
    #[serde(default = "normal")]
    pub noise: String,
    #[serde(default = "lin")]
    pub transformation: String,
    /// "Number unit" (e.g. "180.156 g/mol") for mass <-> substance.
    pub molar_mass: Option<String>,
    /// "Number unit" of substance per international unit (e.g. "6 nmol/[IU]" for insulin).
    pub iu_equivalent: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationMap {
    /// The medication's code (any system; `system` narrows it).
    pub code: Spanned<String>,
    pub system: Option<String>,
    /// The model species or parameter the dose goes to.
    pub target: String,
    /// "bolus" adds the dose to the target; "set" sets the target to it.
    #[serde(default = "bolus")]
    pub kind: String,
    /// The unit the model expects the dose in.
    pub unit: String,
    pub molar_mass: Option<String>,
    /// Parameters also set to the dose amount at the dose time (e.g. a meal
    /// model's last-meal size).
    #[serde(default)]
    pub also_set: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CovariateMap {
    pub loinc: Spanned<String>,
    /// The model parameter it fixes; without one the value is only recorded
    /// (in import.json), converted to `unit`.
    pub parameter: Option<String>,
    pub unit: String,
    /// "hba1c": converted between NGSP % and IFCC mmol/mol by the master
    /// equation instead of by unit factors.
    pub analyte: Option<String>,
    pub molar_mass: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateMap {
    pub id: Spanned<String>,
    pub lower: f64,
    pub upper: f64,
    #[serde(default = "log10")]
    pub scale: String,
    /// Defaults to the model's value.
    pub nominal: Option<f64>,
}

fn normal() -> String {
    "normal".into()
}
fn lin() -> String {
    "lin".into()
}
fn bolus() -> String {
    "bolus".into()
}
fn log10() -> String {
    "log10".into()
}

/// A map read from its file, with its folder (for the model path) and text
/// (for line numbers of spans).
#[derive(Clone, Debug)]
pub struct MapFile {
    pub path: PathBuf,
    pub text: String,
    pub map: Map,
    /// A model to use instead of the map's (e.g. `vht twin create --model`).
    pub model_override: Option<PathBuf>,
}

impl MapFile {
    pub fn read(path: &Path) -> Result<MapFile, FhirError> {
        let text = std::fs::read_to_string(path).map_err(|error| FhirError::Io { path: path.to_path_buf(), error })?;
        MapFile::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<MapFile, FhirError> {
        let map: Map = toml::from_str(&text).map_err(|e| FhirError::Map {
            file: path.to_path_buf(),
            line: e.span().map_or(0, |s| line_of(&text, s.start)),
            problem: e.message().to_string(),
        })?;
        let mf = MapFile { path: path.to_path_buf(), text, map, model_override: None };
        mf.check()?;
        Ok(mf)
    }

    pub fn model_path(&self) -> PathBuf {
        if let Some(m) = &self.model_override {
            return m.clone();
        }
        self.path.parent().unwrap_or(Path::new(".")).join(self.map.model.get_ref())
    }

    /// The line of a spanned value.
    pub fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(&self.text, s.span().start)
    }

    pub fn err<T>(&self, at: &Spanned<T>, problem: impl Into<String>) -> FhirError {
        FhirError::Map { file: self.path.clone(), line: self.line(at), problem: problem.into() }
    }

    /// Checks what can be checked without the model: units parse, enums are
    /// known words, bounds are ordered.
    fn check(&self) -> Result<(), FhirError> {
        let m = &self.map;
        ucum::factor(m.time_unit.get_ref(), "s", Equivalences::default())
            .map_err(|e| self.err(&m.time_unit, format!("time_unit: {e}")))?;
        for o in &m.observations {
            let eq = self.equivalences(&o.loinc, o.molar_mass.as_deref(), o.iu_equivalent.as_deref())?;
            let _ = eq;
            ucum::parse(&o.unit).map_err(|e| self.err(&o.loinc, format!("unit: {e}")))?;
            if !matches!(o.noise.as_str(), "normal" | "laplace") {
                return Err(self.err(&o.loinc, format!("noise must be normal or laplace, found '{}'", o.noise)));
            }
            if !matches!(o.transformation.as_str(), "lin" | "log" | "log10") {
                return Err(self
                    .err(&o.loinc, format!("transformation must be lin, log or log10, found '{}'", o.transformation)));
            }
        }
        for d in &m.medications {
            ucum::parse(&d.unit).map_err(|e| self.err(&d.code, format!("unit: {e}")))?;
            self.equivalences(&d.code, d.molar_mass.as_deref(), None)?;
            if !matches!(d.kind.as_str(), "bolus" | "set") {
                return Err(self.err(&d.code, format!("kind must be bolus or set, found '{}'", d.kind)));
            }
        }
        for c in &m.covariates {
            ucum::parse(&c.unit).map_err(|e| self.err(&c.loinc, format!("unit: {e}")))?;
            self.equivalences(&c.loinc, c.molar_mass.as_deref(), None)?;
            if let Some(a) = &c.analyte {
                if a != "hba1c" {
                    return Err(
                        self.err(&c.loinc, format!("the only analyte with its own conversion is hba1c, found '{a}'"))
                    );
                }
            }
        }
        for e in &m.estimate {
            if !matches!(e.scale.as_str(), "lin" | "log" | "log10") {
                return Err(self.err(&e.id, format!("scale must be lin, log or log10, found '{}'", e.scale)));
            }
            // NaN bounds fail the first test too.
            if e.lower.partial_cmp(&e.upper) != Some(std::cmp::Ordering::Less) || (e.scale != "lin" && e.lower <= 0.0) {
                return Err(self.err(
                    &e.id,
                    format!("bounds [{}, {}] must be ordered (and positive on a log scale)", e.lower, e.upper),
                ));
            }
        }
        Ok(())
    }

    /// The molar mass and IU equivalence of an entry, as numbers in g/mol and mol/[IU].
    pub fn equivalences<T>(
        &self,
        at: &Spanned<T>,
        molar_mass: Option<&str>,
        iu: Option<&str>,
    ) -> Result<Equivalences, FhirError> {
        let molar_mass = molar_mass
            .map(|q| ucum::quantity_in(q, "g/mol", Equivalences::default()))
            .transpose()
            .map_err(|e| self.err(at, format!("molar_mass: {e}")))?;
        let mol_per_iu = iu
            .map(|q| ucum::quantity_in(q, "mol/[IU]", Equivalences::default()))
            .transpose()
            .map_err(|e| self.err(at, format!("iu_equivalent: {e}")))?;
        Ok(Equivalences { molar_mass, mol_per_iu })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}
