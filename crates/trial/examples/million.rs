//! Throughput benchmark (not a test): the single-arm meal trial for N
//! patients, through the whole pipeline (sampling, simulation, endpoints,
//! Parquet shards, merged table, summary, report).
//!
//! ```sh
//! cargo run --release -p vht-trial --example million -- [PATIENTS] [THREADS] [SPEC]
//! ```
//! Defaults: 100000 patients, all cores, examples/trials/meal/bench.toml.
//! Prints patients per second, peak resident memory, and the projected
//! time for 1,000,000 patients at the measured rate.

use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_mb() -> Option<f64> {
    // Linux: the high-water mark of the resident set, in kB.
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let patients: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let threads: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let spec_path = args.get(2).map(PathBuf::from).unwrap_or_else(|| root.join("examples/trials/meal/bench.toml"));
    let out = root.join("target/trial-bench").join(format!("n{patients}"));
    let _ = std::fs::remove_dir_all(&out);

    let t0 = Instant::now();
    let spec = vht_trial::spec::Spec::from_file(&spec_path)?;
    let plan = vht_trial::plan::Plan::new(spec)?;
    let compile = t0.elapsed();
    let opts = vht_trial::store::RunOptions {
        out: out.clone(),
        threads,
        shard_size: 10_000,
        size: Some(patients),
        ..Default::default()
    };
    let t1 = Instant::now();
    let outcome = vht_trial::store::run(&plan, &opts, &|_| {})?;
    let total = t1.elapsed().as_secs_f64();
    let sim = outcome.simulate_time.as_secs_f64();
    let failed: u64 = outcome.summary.arms.iter().map(|a| a.failed).sum();
    let rate = patients as f64 / sim;
    let threads_used = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    println!("spec                {}", spec_path.display());
    println!("patients            {patients} ({failed} failed), arms {}, threads {threads_used}", plan.arms.len());
    println!("load + compile      {:.3} s", compile.as_secs_f64());
    println!(
        "simulate            {sim:.1} s  ({rate:.0} patients/s, {:.3} ms per patient per thread)",
        1e3 * threads_used as f64 / rate
    );
    println!("whole run           {total:.1} s  (with Parquet, summary, report)");
    println!("peak RSS            {:.0} MB", peak_rss_mb().unwrap_or(f64::NAN));
    println!("1,000,000 patients  {:.1} min projected at this rate", 1e6 / rate / 60.0);
    Ok(())
}
