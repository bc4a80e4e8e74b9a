//! Every bundled trial spec reads and builds (so the documented examples stay runnable).

use vht_trial::plan::Plan;
use vht_trial::spec::Spec;

#[test]
fn every_example_spec_builds() {
    let dir = std::path::Path::new("../../examples/trials");
    let mut found = 0;
    for entry in std::fs::read_dir(dir).expect("examples/trials exists") {
        let sub = entry.expect("a folder entry").path();
        let Ok(files) = std::fs::read_dir(&sub) else { continue };
        for f in files {
            let path = f.expect("a file").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let spec = Spec::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                Plan::new(spec).unwrap_or_else(|e| panic!("{e}"));
                found += 1;
            }
        }
    }
    assert!(found >= 2, "found {found} example specs");
}
