//! The objective's gradient by adjoint sensitivities ([`vht_sim::Adjoint`]):
//! per experiment one forward run that keeps its steps and one backward run
//! of `n + m` unknowns (states plus the model parameters that depend on
//! estimated ones), instead of `n` tangents per estimated parameter.
//!
//! The objective's terms enter as jumps of the adjoint at the measurement
//! times: `∂nllh/∂h · ∂h/∂(y, p)` (and the same for sigma), with assigned
//! symbols that observables read differentiated through (compiled once).
//! What the parameter table does to a run (conditions, overrides,
//! pre-equilibration, initial assignments) reaches the gradient through the
//! tangents of the initial state and of the parameters, `dy0/dv` and
//! `dp/dv`: those are the forward-sensitivity system's initial values
//! ([`crate::sens`]), evaluated without integrating it. Observable and noise
//! parameters that are not model symbols add their partial derivatives
//! directly.
//!
//! There is no Gauss-Newton Hessian (that needs the tangents at every
//! measurement), so this suits optimisers that use only the gradient
//! (L-BFGS). Experiments it does not cover (measurements at steady state,
//! `inf` times) use forward sensitivities. Events at fixed times (doses)
//! are covered; models with events whose time moves with the parameters or
//! that assign parameters, algebraic rules, delays, or switches (piecewise
//! conditions in rates) whose time moves with the estimated parameters are
//! refused when it is built.

use std::collections::HashMap;

use vht_codegen::{compile_jacobian, CompiledJacobian, NoDelays, Slot};
use vht_ir::eval::eval;
use vht_ir::{Expr, Sym};
use vht_sim::{Adjoint, Jump};

use crate::objective::{nllh_term, Experiment, Objective, RowEnv};
use crate::sens::{extras, fill_placeholders, noise_terms, Acc, NoiseTerms, Sensitivities};
use crate::FitError;

/// The compiled adjoint of an [`Objective`].
pub(crate) struct Adjoints {
    adj: Adjoint,
    /// The model parameters (p slots) that depend on estimated rows, with
    /// their tangent symbols in the sensitivity system `(direction, symbol)`.
    params: Vec<(Sym, Vec<(usize, Sym)>)>,
    /// Column of each model p slot among `params`.
    param_col: HashMap<Sym, usize>,
    /// Assigned symbols that observables read, and the Jacobian of their
    /// values with respect to `[states, params]` (rows in that order).
    assigned: HashMap<Sym, usize>,
    assigned_jac: Option<CompiledJacobian>,
}

pub(crate) fn build(obj: &Objective, sens: &Sensitivities) -> Result<Adjoints, FitError> {
    let sim = &obj.sim;
    let layout = &sim.code.layout;
    let params: Vec<(Sym, Vec<(usize, Sym)>)> = layout
        .p
        .iter()
        .filter(|s| !sens.tangent[s.index()].is_empty())
        .map(|&s| (s, sens.tangent[s.index()].clone()))
        .collect();
    let syms: Vec<Sym> = params.iter().map(|(s, _)| *s).collect();
    let file = obj.problem.model.clone();
    let unsupported = |what: String| FitError::Sensitivities { file: file.clone(), what };
    if sens.sim.model.events.len() > sim.model.events.len() {
        return Err(unsupported(
            "a switch of the vector field (a piecewise condition in a rate or rule) moves with the estimated \
             parameters; the adjoint's jumps there are not implemented (forward sensitivities handle it)"
                .into(),
        ));
    }
    let adj = Adjoint::new(sim, &syms).map_err(|e| unsupported(e.to_string()))?;
    let mut assigned = HashMap::new();
    let mut read = Vec::new();
    for d in sens.dh.iter().chain(&sens.dsigma) {
        for (s, _) in d {
            if s.index() < obj.n_model && sim.slot(*s) == Slot::Assigned && !assigned.contains_key(s) {
                assigned.insert(*s, read.len());
                read.push(Expr::Sym(*s));
            }
        }
    }
    let assigned_jac = if read.is_empty() {
        None
    } else {
        let mut wrt: Vec<Sym> = layout.y[..layout.n_ode].to_vec();
        wrt.extend_from_slice(&syms);
        Some(
            compile_jacobian(&sim.model, layout, &read, &wrt, &vht_codegen::Options::default())
                .map_err(|e| unsupported(format!("observables: {e}")))?,
        )
    };
    let param_col = syms.iter().enumerate().map(|(a, &s)| (s, a)).collect();
    Ok(Adjoints { adj, params, param_col, assigned, assigned_jac })
}

impl Adjoints {
    /// The objective terms and gradient (by parameter-table row, then scaled
    /// with `est` and `chain` as the forward path does) of one experiment
    /// without steady-state measurements.
    pub(crate) fn experiment(
        &self,
        obj: &Objective,
        sens: &Sensitivities,
        e: &Experiment,
        values: &[f64],
        pre_row: Option<&[f64]>,
        est: &[Option<usize>],
        chain: &[f64],
    ) -> Result<Acc, FitError> {
        let sim = &obj.sim;
        let layout = &sim.code.layout;
        let n = layout.n_ode;
        let m = self.params.len();
        let ovs = sens.experiment_overrides(obj, e, values, pre_row);
        let plain: Vec<(Sym, f64)> = ovs.iter().map(|o| (o.sym, o.value)).collect();
        let tc = obj.time_course(e.times.clone());
        let fail = |error| FitError::Simulation { condition: e.name.clone(), error };
        let (traj, dense) = vht_sim::simulate_dense(sim, &tc, &obj.outputs, &plain).map_err(fail)?;

        let (mut extra_vals, mut extra_src) = extras(obj, values);
        let mut acc = Acc::new(chain.len());
        // Gradient by parameter-table row, and the adjoint's jumps by time.
        let mut by_row = vec![0.0; values.len()];
        let mut jumps: Vec<Option<Jump>> = vec![None; e.times.len()];
        let mut y = vec![0.0; n];
        let mut aj = self.assigned_jac.as_ref().map(|j| vec![0.0; j.pattern.len()]).unwrap_or_default();
        // The output time `aj` was evaluated at (rows at one time share it).
        let mut aj_at: Option<usize> = None;
        for r in &e.rows {
            let Some(ti) = r.time else {
                return Err(FitError::Sensitivities {
                    file: obj.problem.model.clone(),
                    what: "a steady-state measurement reached the adjoint (a bug: those use forward sensitivities)"
                        .into(),
                });
            };
            let meas = &obj.problem.measurements[r.measurement];
            let code = &obj.observables[r.observable];
            fill_placeholders(code, r, values, &mut extra_vals, &mut extra_src);
            let (row, t) = (traj.row(ti), e.times[ti]);
            let env = RowEnv { col_of: &obj.col_of, row, extras: &extra_vals, n_model: obj.n_model, t };
            let h = eval(&code.h, &env);
            let sigma = eval(&code.sigma, &env);
            acc.f += nllh_term(meas.value, h, sigma, code.transformation, code.noise);
            let NoiseTerms { dt, g_mu, g_sigma, .. } = noise_terms(meas.value, h, sigma, code);

            let jump = jumps[ti].get_or_insert_with(|| Jump { t, dlambda: vec![0.0; n], dmu: vec![0.0; m] });
            for (parts, weight) in [(&sens.dh[r.observable], g_mu * dt), (&sens.dsigma[r.observable], g_sigma)] {
                for (s, d) in parts {
                    let pd = eval(d, &env) * weight;
                    if pd == 0.0 {
                        continue;
                    }
                    if s.index() >= obj.n_model {
                        if let Some(i) = extra_src[s.index() - obj.n_model] {
                            by_row[i] += pd;
                        }
                        continue;
                    }
                    match sim.slot(*s) {
                        Slot::Y(i) if i < n => jump.dlambda[i] += pd,
                        Slot::P(_) => {
                            if let Some(&a) = self.param_col.get(s) {
                                jump.dmu[a] += pd;
                            }
                        }
                        Slot::Assigned => {
                            let (Some(&k), Some(jac)) = (self.assigned.get(s), &self.assigned_jac) else { continue };
                            if aj_at != Some(ti) {
                                for (yi, &(_, vc, _)) in y.iter_mut().zip(&obj.state_cols) {
                                    *yi = row[vc];
                                }
                                jac.values.eval(t, &y, dense.p(), &mut aj, &NoDelays);
                                aj_at = Some(ti);
                            }
                            for (q, &(rr, c)) in jac.pattern.iter().enumerate() {
                                if rr != k {
                                    continue;
                                }
                                if c < n {
                                    jump.dlambda[c] += pd * aj[q];
                                } else {
                                    jump.dmu[c - n] += pd * aj[q];
                                }
                            }
                        }
                        Slot::Y(_) => {}
                    }
                }
            }
        }
        let jumps: Vec<Jump> = jumps.into_iter().flatten().collect();
        let res = self.adj.solve(&dense, &jumps, obj.settings.rtol, obj.settings.max_steps).map_err(fail)?;

        // dJ/dv_j = λ(t0)·dy0/dv_j + μ(t0)·dp/dv_j, the tangents' initial values.
        let init = vht_sim::initial_values(&sens.sim, 0.0, &sens.overrides(&ovs)).map_err(fail)?;
        for (i, &x) in layout.y[..n].iter().enumerate() {
            for &(j, ts) in &sens.tangent[x.index()] {
                by_row[sens.dirs[j]] += res.lambda[i] * init[ts.index()];
            }
        }
        for (a, (_, tangents)) in self.params.iter().enumerate() {
            for &(j, ts) in tangents {
                by_row[sens.dirs[j]] += res.mu[a] * init[ts.index()];
            }
        }
        for (i, g) in by_row.into_iter().enumerate() {
            if let (Some(k), true) = (est[i], g != 0.0) {
                acc.g[k] += g * chain[k];
            }
        }
        Ok(acc)
    }
}
