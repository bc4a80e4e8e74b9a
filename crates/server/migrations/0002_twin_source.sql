-- Twins made by a run of kind "twin" (vht-twin: FHIR import, fit, posterior)
-- keep their folder (relative to the data dir) for predictions.
ALTER TABLE twins ADD COLUMN source TEXT;
ALTER TABLE twins ADD COLUMN twin_dir TEXT;
ALTER TABLE twins ADD COLUMN run_id TEXT;
