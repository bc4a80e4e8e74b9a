//! Trajectories as Parquet: one Float64 column per output, `time` first.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use vht_sim::Trajectory;

pub fn write(path: &Path, traj: &Trajectory) -> Result<()> {
    let mut fields = vec![Field::new("time", DataType::Float64, false)];
    fields.extend(traj.names.iter().map(|n| Field::new(n, DataType::Float64, false)));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Float64Array::from(traj.times.clone()))];
    for j in 0..traj.names.len() {
        let col: Vec<f64> = (0..traj.times.len()).map(|i| traj.row(i)[j]).collect();
        columns.push(Arc::new(Float64Array::from(col)));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    // Write beside the target and rename, so a crash never leaves half a file.
    let tmp = path.with_extension("parquet.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
