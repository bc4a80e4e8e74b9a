//! Nanoseconds per right-hand-side (and Jacobian) evaluation, interpreter vs
//! JIT, on a generated mass-action model.
//!
//! `cargo run -p vht-codegen --example rhs_bench [-- STATES [SEED]]`
//! (default 100 states, seed 1). Prints a table; it asserts nothing.
//! For representative interpreter numbers without a release build of the
//! whole workspace, add `--config 'profile.dev.package.vht-codegen.opt-level=3'
//! --config 'profile.dev.package.vht-ir.opt-level=3' --config 'profile.dev.debug-assertions=false'`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use vht_codegen::{compile, Backend, Function, NoDelays, Options};

/// Mean time per call of `f.eval`, over enough calls to fill ~0.3 s.
fn time_eval(f: &Function, y: &[f64], p: &[f64]) -> f64 {
    let mut out = vec![0.0; f.len()];
    let mut calls = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            f.eval(0.0, black_box(y), black_box(p), &mut out, &NoDelays);
            black_box(&out);
        }
        let took = start.elapsed();
        if took > Duration::from_millis(300) {
            return took.as_nanos() as f64 / calls as f64;
        }
        calls *= 4;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let model = common::mass_action(n, seed);
    println!(
        "mass-action model: {n} states, {} reactions, seed {seed} ({})",
        2 * n,
        if cfg!(debug_assertions) {
            "debug build: the interpreter's figures are pessimistic"
        } else {
            "optimised build"
        }
    );
    println!(
        "{:<12} {:>12} {:>10} {:>12} {:>14} {:>14}",
        "backend", "compile ms", "rhs instr", "jac entries", "rhs ns/eval", "jac ns/eval"
    );
    for backend in [Backend::Interpreter, Backend::Jit] {
        let start = Instant::now();
        let cm = match compile(&model, &Options { backend }) {
            Ok(cm) => cm,
            Err(e) => {
                eprintln!("{backend:?}: {e}");
                continue;
            }
        };
        let compile_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut rng = common::Rng(seed.max(1));
        let y: Vec<f64> = (0..cm.layout.y.len()).map(|_| rng.next_f64()).collect();
        let p: Vec<f64> = (0..cm.layout.p.len()).map(|_| rng.next_f64()).collect();
        let rhs_ns = time_eval(&cm.rhs, &y, &p);
        let jac_ns = time_eval(&cm.jac, &y, &p);
        println!(
            "{:<12} {:>12.1} {:>10} {:>12} {:>14.1} {:>14.1}",
            format!("{backend:?}"),
            compile_ms,
            cm.rhs.instructions(),
            cm.jac_pattern.len(),
            rhs_ns,
            jac_ns
        );
    }
}
