//! The optional TOML configuration file (`--config`) and the precedence rule: command-line
//! flags, then `SWITCHBOARD_*` environment variables, then the file, then built-in
//! defaults. Owns reading and checking the file; the settings themselves are
//! [`crate::config::Config`]'s.
//!
//! The file's keys are the long flag names with underscores (`http_addr = "0.0.0.0:8080"`,
//! `public_ip = ["203.0.113.7"]`, `drain_timeout = "5m"`). Each value is checked with the
//! same parser as its flag, so a bad value is reported with the file, the key and the
//! reason, before anything starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::Config;

/// Why the configuration could not be loaded. Its `Display` is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad command line or environment (clap's own message, with usage).
    #[error("{0}")]
    Args(#[from] clap::Error),
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, or a key or value is wrong.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The settings contradict each other or miss something a choice needs.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Keys the file may not set: the file's own path, and one-shot actions.
const NOT_IN_FILE: &[&str] = &["config", "print_config", "help", "version"];

/// The file key of a flag: its long name with underscores.
fn key_of(arg: &clap::Arg) -> Option<String> {
    arg.get_long()
        .map(|l| l.replace('-', "_"))
        .filter(|k| !NOT_IN_FILE.contains(&k.as_str()))
}

/// Parse `args` (the first is the program name) and the environment, then fill what
/// neither set from the `--config` file, then validate.
pub fn load_from<I, T>(args: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = Config::command().try_get_matches_from(&args)?;
    let first = Config::from_arg_matches(&matches)?;
    let Some(path) = first.config.clone() else {
        first.validate()?;
        return Ok(first);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let extra = file_args(&path, &text, |id| {
        // Only what the command line and the environment left at its default.
        matches!(
            matches.value_source(id),
            None | Some(ValueSource::DefaultValue)
        )
    })?;
    // The file's settings go right after the program name, before any subcommand (their
    // keys are never on the command line, so nothing is given twice).
    let mut all = args;
    let at = all.len().min(1);
    all.splice(at..at, extra);
    let config = Config::try_parse_from(all)?;
    config.validate()?;
    Ok(config)
}

/// The file's settings as extra command-line arguments, for keys `unset` says the command
/// line and environment did not set. Every key is checked (known, allowed, value parses)
/// whether or not it is used.
fn file_args(
    path: &Path,
    text: &str,
    unset: impl Fn(&str) -> bool,
) -> Result<Vec<OsString>, ConfigError> {
    let err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.to_string()))?;
    let cmd = Config::command();
    let known: Vec<String> = cmd.get_arguments().filter_map(key_of).collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| key_of(a).as_deref() == Some(key.as_str()))
        else {
            return Err(err(format!(
                "unknown key `{key}`; keys are the long flag names with underscores: {}",
                known.join(", ")
            )));
        };
        let Some(long) = arg.get_long() else {
            return Err(err(format!("`{key}` cannot be set in the file")));
        };
        let values = scalar_strings(value).ok_or_else(|| {
            err(format!(
                "`{key}`: expected a string, number, boolean or list"
            ))
        })?;
        let flag = format!("--{long}");
        let mut pairs: Vec<OsString> = Vec::new();
        for v in &values {
            pairs.push(OsString::from(&flag));
            pairs.push(OsString::from(v));
        }
        // Check the value with the flag's own parser, alone, so the message names the key.
        let mut probe = vec![OsString::from("switchboard")];
        probe.extend(pairs.iter().cloned());
        Config::command()
            .try_get_matches_from(probe)
            .map_err(|e| err(format!("`{key}`: {}", first_line(&e.to_string()))))?;
        if unset(arg.get_id().as_str()) {
            out.extend(pairs);
        }
    }
    Ok(out)
}

/// A TOML value as the strings a flag would get (a list repeats the flag).
fn scalar_strings(v: &toml::Value) -> Option<Vec<String>> {
    match v {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Integer(i) => Some(vec![i.to_string()]),
        toml::Value::Float(f) => Some(vec![f.to_string()]),
        toml::Value::Boolean(b) => Some(vec![b.to_string()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::Array(_) | toml::Value::Table(_) => None,
                other => scalar_strings(other).map(|mut v| v.remove(0)),
            })
            .collect(),
        _ => None,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim_start_matches("error: ")
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
