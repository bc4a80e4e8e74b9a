//! Clinical data in: FHIR R4 to a PEtab problem for one patient.
//!
//! A personalised twin is a model fitted to one patient's data, and clinical
//! data arrives as HL7 FHIR. This crate reads FHIR R4 JSON (a Bundle, or
//! bulk-data NDJSON with one resource per line): Patient, Observation
//! (quantity, time, LOINC code), MedicationAdministration and
//! MedicationStatement (dose, time, code). A mapping file says what each
//! LOINC code is in the model (an observable formula, its unit and noise
//! model), what each medication does (a bolus or a set of a model quantity),
//! which covariates fix which parameters, and which parameters to estimate.
//! [`import`] turns both into a PEtab v1 problem that `vht_fit` reads.
//!
//! Design choices:
//! - Units are converted with a clinical subset of UCUM ([`ucum`]); a
//!   conversion across mass and substance needs a molar mass from the map,
//!   never an assumed one.
//! - PEtab v1 has no dosing, so doses are written into the patient's copy of
//!   the SBML model as events ([`sbml`]).
//! - The patient is known only by a keyed hash (HMAC-SHA256) of an
//!   identifier. Names, addresses, telecom, birth date (unless the map keeps
//!   the year or the age), free text and absolute dates are never read into
//!   the records that outputs are written from.
//!
//! ```no_run
//! let map = vht_fhir::MapFile::read(std::path::Path::new("examples/twins/map.toml"))?;
//! let key = vht_fhir::key(None)?; // $VHT_PSEUDONYM_KEY
//! let (imported, written) = vht_fhir::import(
//!     std::path::Path::new("examples/twins/patient-001.json"), &map, &key, std::path::Path::new("out/p1"))?;
//! println!("{} measurements -> {}", imported.measurements.len(), written.yaml.display());
//! # Ok::<(), vht_fhir::FhirError>(())
//! ```
//!
//! Architecture invariant: knows FHIR JSON, UCUM and the PEtab files it
//! writes; knows nothing of optimisation (that is `vht_fit`), and touches
//! SBML only as text to add events.

mod error;
mod import;
pub mod map;
pub mod resource;
pub mod sbml;
pub mod synth;
pub mod ucum;
pub mod validate;

pub use error::{FhirError, Loc};
pub use import::{
    extract, extract_many, import, key, pseudonym, write_petab, Covariate, Imported, MeasurementRow, Written, KEY_ENV,
};
pub use map::{Map, MapFile};
pub use sbml::{DoseKind, ModelDose};
