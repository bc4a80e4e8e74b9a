//! The analytic Jacobian of real published models agrees with central
//! finite differences of the compiled right-hand side.

use std::path::Path;

use vht_codegen::{compile, NoDelays, Options};

fn check(path: &Path) -> Result<(), String> {
    let (model, _) = vht_lower::load(path).map_err(|e| e.to_string())?;
    let code = compile(&model, &Options::default()).map_err(|e| e.to_string())?;
    let layout = &code.layout;
    // Start values: evaluate initial values in order with the tree walker.
    let order = vht_ir::initial_order(&model).map_err(|e| e.to_string())?;
    let mut vals = vec![f64::NAN; model.symbols.len()];
    struct Env<'a>(&'a [f64]);
    impl vht_ir::eval::Env for Env<'_> {
        fn value(&self, s: vht_ir::Sym) -> f64 {
            self.0[s.index()]
        }
        fn time(&self) -> f64 {
            0.0
        }
        fn delayed(&self, e: &vht_ir::Expr, _: f64) -> f64 {
            vht_ir::eval::eval(e, self)
        }
    }
    for s in order {
        let e = match &model.symbol(s).kind {
            vht_ir::SymbolKind::Assigned { expr } => expr.clone(),
            _ => model.symbol(s).initial.clone(),
        };
        vals[s.index()] = vht_ir::eval::eval(&e, &Env(&vals));
    }
    let p: Vec<f64> = layout.p.iter().map(|s| vals[s.index()]).collect();
    let mut y: Vec<f64> = layout.y.iter().map(|s| vals[s.index()]).collect();
    // Move away from the (often degenerate) start: a deterministic nudge.
    for (i, v) in y.iter_mut().enumerate() {
        *v = *v * 1.1 + 0.01 * (1.0 + (i % 7) as f64);
    }
    let n = y.len();
    let mut jac = vec![0.0; code.jac_pattern.len()];
    code.jac.eval(0.5, &y, &p, &mut jac, &NoDelays);
    let mut dense = vec![0.0; n * n];
    for (k, &(r, c)) in code.jac_pattern.iter().enumerate() {
        dense[r * n + c] = jac[k];
    }
    let (mut fp, mut fm) = (vec![0.0; n], vec![0.0; n]);
    for c in 0..n {
        let h = 1e-6 * y[c].abs().max(1e-3);
        let mut yp = y.clone();
        yp[c] += h;
        let mut ym = y.clone();
        ym[c] -= h;
        code.rhs.eval(0.5, &yp, &p, &mut fp, &NoDelays);
        code.rhs.eval(0.5, &ym, &p, &mut fm, &NoDelays);
        for r in 0..n {
            let fd = (fp[r] - fm[r]) / (2.0 * h);
            let an = dense[r * n + c];
            // Central differences: truncation ~h², cancellation ~eps·|f|/h.
            let noise = 1e-13 * (fp[r].abs() + fm[r].abs()) / h;
            if (fd - an).abs() > 1e-3 * fd.abs().max(an.abs()) + noise + 1e-12 {
                return Err(format!(
                    "{}: d(row {r})/d('{}') analytic {an} vs finite difference {fd}",
                    path.display(),
                    model.name(layout.y[c])
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn published_models() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let is_sbml = |p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "xml");
    let mut files: Vec<_> = std::fs::read_dir(&local).unwrap().map(|e| e.unwrap().path()).filter(is_sbml).collect();
    if let Ok(dir) = std::fs::read_dir(&shared) {
        files.extend(dir.map(|e| e.unwrap().path()).filter(is_sbml));
    }
    assert!(!files.is_empty());
    let failures: Vec<String> = files.iter().filter_map(|f| check(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
