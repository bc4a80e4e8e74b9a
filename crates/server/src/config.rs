//! Server settings: defaults, then a TOML file, then `VHT_*` environment
//! variables, then command-line flags (the caller applies those last).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `vht serve` and `vht worker` can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SQLite file (by default), artifacts, uploaded archives.
    pub data_dir: PathBuf,
    pub bind: String,
    pub port: u16,
    /// `sqlite://FILE` or `postgres://...`; default: `vht.db` in the data dir.
    pub database: Option<String>,
    /// In-process worker tasks (0: jobs only run in `vht worker` processes).
    pub workers: usize,
    /// How long a claimed job stays with its worker without a heartbeat.
    pub lease_secs: u64,
    /// On shutdown, how long running jobs get to finish before they are put back.
    pub grace_secs: u64,
    /// Log lines as JSON objects instead of text.
    pub log_json: bool,
    /// The first administrator's token (otherwise one is generated on first
    /// start and written to `admin-token` in the data dir).
    pub admin_token: Option<String>,
    /// Load the bundled examples into an empty database.
    pub examples: bool,
    /// Interactive simulations: at most this many output points and seconds.
    pub simulate_max_points: usize,
    pub simulate_max_secs: f64,
    /// Trial runs: at most this many virtual patients.
    pub trial_max_patients: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("vht-data"),
            bind: "127.0.0.1".into(),
            port: 8080,
            database: None,
            workers: 2,
            lease_secs: 30,
            grace_secs: 10,
            log_json: false,
            admin_token: None,
            examples: true,
            simulate_max_points: 5000,
            simulate_max_secs: 10.0,
            trial_max_patients: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("environment variable {name}='{value}': {message}")]
    Env { name: String, value: String, message: String },
}

impl Config {
    /// Defaults, overlaid by the file (if given) and then by the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Toml { path: path.to_path_buf(), message: e.to_string() })?
            }
            None => Config::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    /// `VHT_DATA_DIR`, `VHT_BIND`, `VHT_PORT`, `VHT_DATABASE`, `VHT_WORKERS`,
    /// `VHT_LEASE_SECS`, `VHT_GRACE_SECS`, `VHT_LOG_JSON`, `VHT_ADMIN_TOKEN`,
    /// `VHT_EXAMPLES`, `VHT_SIMULATE_MAX_POINTS`, `VHT_SIMULATE_MAX_SECS`, `VHT_TRIAL_MAX_PATIENTS`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.into(),
                value: value.into(),
                message: e.to_string(),
            })
        }
        fn boolean(name: &str, value: &str) -> Result<bool, ConfigError> {
            match value.trim() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                _ => Err(ConfigError::Env {
                    name: name.into(),
                    value: value.into(),
                    message: "expected true or false".into(),
                }),
            }
        }
        if let Some(v) = get("VHT_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("VHT_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("VHT_PORT") {
            self.port = parse("VHT_PORT", &v)?;
        }
        if let Some(v) = get("VHT_DATABASE") {
            self.database = Some(v);
        }
        if let Some(v) = get("VHT_WORKERS") {
            self.workers = parse("VHT_WORKERS", &v)?;
        }
        if let Some(v) = get("VHT_LEASE_SECS") {
            self.lease_secs = parse("VHT_LEASE_SECS", &v)?;
        }
        if let Some(v) = get("VHT_GRACE_SECS") {
            self.grace_secs = parse("VHT_GRACE_SECS", &v)?;
        }
        if let Some(v) = get("VHT_LOG_JSON") {
            self.log_json = boolean("VHT_LOG_JSON", &v)?;
        }
        if let Some(v) = get("VHT_ADMIN_TOKEN") {
            self.admin_token = Some(v);
        }
        if let Some(v) = get("VHT_EXAMPLES") {
            self.examples = boolean("VHT_EXAMPLES", &v)?;
        }
        if let Some(v) = get("VHT_SIMULATE_MAX_POINTS") {
            self.simulate_max_points = parse("VHT_SIMULATE_MAX_POINTS", &v)?;
        }
        if let Some(v) = get("VHT_SIMULATE_MAX_SECS") {
            self.simulate_max_secs = parse("VHT_SIMULATE_MAX_SECS", &v)?;
        }
        if let Some(v) = get("VHT_TRIAL_MAX_PATIENTS") {
            self.trial_max_patients = parse("VHT_TRIAL_MAX_PATIENTS", &v)?;
        }
        Ok(())
    }

    /// The database URL: the configured one or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("vht.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_file_and_bad_values_name_the_variable() {
        let mut c: Config = toml::from_str("port = 9000\nworkers = 4").unwrap();
        assert_eq!(c.port, 9000);
        c.apply_env(|k| (k == "VHT_WORKERS").then(|| "1".to_string())).unwrap();
        assert_eq!((c.port, c.workers), (9000, 1));
        let e = c.apply_env(|k| (k == "VHT_PORT").then(|| "eighty".to_string())).unwrap_err();
        assert!(e.to_string().contains("VHT_PORT='eighty'"), "{e}");
        assert!(toml::from_str::<Config>("prot = 1").is_err(), "unknown keys are refused");
    }
}
