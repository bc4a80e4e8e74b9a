//! Interventions a twin can be asked about, in the mapping file's
//! vocabulary: a medication code with an amount and a time, exactly as the
//! FHIR data would have recorded it, e.g. `oral-glucose=60 g@310` (the map
//! says what the code does to the model and in which unit); or a direct
//! change of a model quantity in model units, `bolus:I_p=100@60` (adds) and
//! `set:V_mX=0.06@0` (sets), the vocabulary of `vht trial` arms.
//! A time is in the model's time unit unless it carries a UCUM unit (`@5 h`).

use vht_fhir::ucum::{self, Equivalences};
use vht_fhir::{DoseKind, MapFile, ModelDose};

use crate::TwinError;

#[derive(Clone, Debug, PartialEq)]
pub enum Intervention {
    Medication { code: String, amount: f64, unit: String, time: f64, time_unit: Option<String> },
    Direct { kind: DoseKind, target: String, amount: f64, time: f64, time_unit: Option<String> },
}

/// Splits "60 g" or "60g" into the number and the (possibly empty) unit.
fn number_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || ((c == 'e' || c == 'E') && i > 0)))
        .map_or(s.len(), |(i, _)| i);
    // "5e" followed by a letter is a number and a unit starting with e.
    let (mut num, mut unit) = s.split_at(end);
    if num.ends_with(['e', 'E']) {
        num = &num[..num.len() - 1];
        unit = &s[num.len()..];
    }
    let v: f64 = num.parse().ok()?;
    v.is_finite().then(|| (v, unit.trim().to_string()))
}

pub fn parse_intervention(spec: &str) -> Result<Intervention, TwinError> {
    let err = |problem: &str| TwinError::Intervention { spec: spec.into(), problem: problem.into() };
    let (what, when) = spec.rsplit_once('@').ok_or_else(|| err("expected WHAT@TIME, e.g. oral-glucose=60 g@310"))?;
    let (time, tu) = number_unit(when).ok_or_else(|| err("the time after '@' is not a number"))?;
    if time < 0.0 {
        return Err(err("the time must not be negative"));
    }
    let time_unit = (!tu.is_empty()).then_some(tu);
    let (lhs, rhs) = what.split_once('=').ok_or_else(|| err("expected CODE=AMOUNT UNIT or bolus:ID=AMOUNT"))?;
    let (amount, unit) = number_unit(rhs).ok_or_else(|| err("the amount after '=' is not a number"))?;
    if let Some((kind, target)) = lhs.split_once(':') {
        let kind = match kind.trim() {
            "bolus" => DoseKind::Bolus,
            "set" => DoseKind::Set,
            k => return Err(err(&format!("unknown kind '{k}' (bolus or set)"))),
        };
        if !unit.is_empty() {
            return Err(err("a direct change is in model units: give the number without a unit"));
        }
        return Ok(Intervention::Direct { kind, target: target.trim().into(), amount, time, time_unit });
    }
    if unit.is_empty() {
        return Err(err("a medication amount needs a UCUM unit (e.g. 60 g)"));
    }
    Ok(Intervention::Medication { code: lhs.trim().into(), amount, unit, time, time_unit })
}

impl Intervention {
    /// The doses it gives, in model units and model time.
    pub fn doses(&self, map: &MapFile) -> Result<Vec<ModelDose>, TwinError> {
        let spec = format!("{self:?}");
        let err = |problem: String| TwinError::Intervention { spec: spec.clone(), problem };
        let model_time = |t: f64, u: &Option<String>| -> Result<f64, TwinError> {
            match u {
                None => Ok(t),
                Some(u) => Ok(t * ucum::factor(u, map.map.time_unit.get_ref(), Equivalences::default()).map_err(&err)?),
            }
        };
        match self {
            Intervention::Direct { kind, target, amount, time, time_unit } => Ok(vec![ModelDose {
                time: model_time(*time, time_unit)?,
                target: target.clone(),
                kind: *kind,
                amount: *amount,
                also_set: Vec::new(),
            }]),
            Intervention::Medication { code, amount, unit, time, time_unit } => {
                let m = map.map.medications.iter().find(|m| m.code.get_ref() == code).ok_or_else(|| {
                    let known: Vec<&str> = map.map.medications.iter().map(|m| m.code.get_ref().as_str()).collect();
                    err(format!("medication '{code}' is not in the map (known: {known:?})"))
                })?;
                let eq = map.equivalences(&m.code, m.molar_mass.as_deref(), None)?;
                let k = ucum::factor(unit, &m.unit, eq).map_err(|e| err(format!("'{unit}' to '{}': {e}", m.unit)))?;
                Ok(vec![ModelDose {
                    time: model_time(*time, time_unit)?,
                    target: m.target.clone(),
                    kind: if m.kind == "set" { DoseKind::Set } else { DoseKind::Bolus },
                    amount: amount * k,
                    also_set: m.also_set.clone(),
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_intervention("oral-glucose=60 g@310").unwrap(),
            Intervention::Medication {
                code: "oral-glucose".into(),
                amount: 60.0,
                unit: "g".into(),
                time: 310.0,
                time_unit: None
            }
        );
        assert_eq!(
            parse_intervention("bolus:I_p=1e2@5 h").unwrap(),
            Intervention::Direct {
                kind: DoseKind::Bolus,
                target: "I_p".into(),
                amount: 100.0,
                time: 5.0,
                time_unit: Some("h".into())
            }
        );
        for bad in ["oral-glucose=60 g", "oral-glucose=60@3", "bolus:I_p=1 mg@3", "x:y=1@2", "a=b@1", "a=1 g@-1"] {
            assert!(parse_intervention(bad).is_err(), "{bad}");
        }
    }
}
