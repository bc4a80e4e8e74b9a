//! `vht simulate` end to end: the real binary on a bundled model.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vht(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vht")).args(args).output().expect("run vht");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/repressilator.xml").display().to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vht-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn csv_to_stdout_has_a_header_and_one_row_per_point() {
    let (ok, out, err) = vht(&["simulate", &model(), "--end", "10", "--points", "6", "--select", "PX,PY"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "time,PX,PY");
    assert_eq!(lines.len(), 7);
    assert!(lines[6].starts_with("10,"));
}

#[test]
fn parquet_holds_the_same_numbers_as_csv() {
    let csv = tmp("r.csv");
    let pq = tmp("r.parquet");
    for out in [&csv, &pq] {
        let (ok, _, err) =
            vht(&["simulate", &model(), "--end", "20", "--points", "11", "--out", out.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<f64>> =
        text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let file = std::fs::File::open(&pq).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), rows.len());
    for (j, name) in header.iter().enumerate() {
        let col = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        let col = col.as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(col.value(i), row[j], "{name} row {i}");
        }
    }
}

#[test]
fn bad_input_gets_one_clear_line() {
    let (ok, _, err) = vht(&["simulate", "/nonexistent/model.xml"]);
    assert!(!ok);
    assert!(err.contains("model.xml"), "{err}");
    let notxml = tmp("not.xml");
    std::fs::write(&notxml, "this is not xml").unwrap();
    let (ok, _, err) = vht(&["simulate", notxml.to_str().unwrap()]);
    assert!(!ok && err.contains("not.xml"), "{err}");
    let (ok, _, err) = vht(&["simulate", &model(), "--select", "PXX"]);
    assert!(!ok);
    assert!(err.contains("'PXX'") && err.contains("did you mean 'PX'"), "{err}");
    let (ok, _, err) = vht(&["simulate", &model(), "--set", "beta=2"]);
    assert!(!ok && err.contains("only constant parameters can be set"), "{err}");
    let (ok, _, err) = vht(&["simulate", &model(), "--out", tmp("x.xlsx").to_str().unwrap()]);
    assert!(!ok && err.contains("unknown format"), "{err}");
    let (ok, _, err) = vht(&["simulate", &model(), "--end=-1"]);
    assert!(!ok && err.contains("--end"), "{err}");
    for e in err.lines() {
        assert!(!e.contains("panicked"), "{err}");
    }
}
