//! The layers of the node's settings and how they merge: defaults < config file <
//! environment < flags. figment merges them and extracts [`Settings`]; this module reads each
//! layer into figment's values and remembers where every key came from, so an error can name
//! the flag, environment variable or file that set the value.
//!
//! Environment variables are read from an explicit list (the process's at start, a fixed one
//! in tests), never from the process behind the caller's back.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::args::NodeArgs;
use super::check::{ConfigError, Problem};
use super::settings::{
    KEYS, NOT_SETTINGS, Settings, VARIABLE_ALIASES, VARIABLE_PREFIX, flag, variable,
};

/// Largest TOML config file read, in bytes.
pub const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Variable(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Variable(name) => write!(f, "environment variable {name}"),
            Source::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// The three layers above the defaults, each as figment values in the shape of
/// [`Settings`].
#[derive(Debug)]
pub struct Layers {
    file: Option<(PathBuf, Value)>,
    environment: Value,
    /// The variable that set each key present in `environment`.
    variables: BTreeMap<&'static str, String>,
    flags: Value,
}

impl Layers {
    /// Reads the config file named by `args.config` (if any), the `MARTELO_*` variables among
    /// `environment`, and the flags given in `args`.
    pub fn gather(
        args: &NodeArgs,
        environment: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Layers, ConfigError> {
        let file = match &args.config {
            None => None,
            Some(path) => Some((path.clone(), read_file(path)?)),
        };
        let (environment, variables) = read_environment(environment)?;
        let flags = Value::serialize(args).map_err(|error| ConfigError::Internal {
            what: format!("the flags do not serialize: {error}"),
        })?;
        Ok(Layers {
            file,
            environment,
            variables,
            flags,
        })
    }

    /// The settings with every layer applied, or what figment found wrong (an unknown key
    /// in the file, a value of the wrong type), naming its source. Extraction stops at the
    /// first such problem.
    pub fn extract(&self) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        if let Some((_, file)) = &self.file {
            figment = figment.merge(Layer::new("config file", file));
        }
        let figment = figment
            .merge(Layer::new("environment", &self.environment))
            .merge(Layer::new("flags", &self.flags));
        figment.extract::<Settings>().map_err(|errors| {
            let problems = errors
                .into_iter()
                .map(|error| {
                    // The path ends with the key itself, an unknown one included.
                    let key = error.path.join(".");
                    Problem {
                        value: self.value_text(&key),
                        source: self.source(&key),
                        rule: error.kind.to_string(),
                        key,
                    }
                })
                .collect();
            ConfigError::Invalid { problems }
        })
    }

    /// Which layer set `key` (a dotted path such as `raft.heartbeat_ms`), the highest first.
    pub fn source(&self, key: &str) -> Source {
        if self.flags.find_ref(key).is_some() {
            return Source::Flag(flag(key));
        }
        if let Some(name) = self.variables.get(key) {
            return Source::Variable(name.clone());
        }
        match &self.file {
            Some((path, file)) if file.find_ref(key).is_some() => Source::File(path.clone()),
            _ => Source::Default,
        }
    }

    /// The value of `key` as its layer gave it, in TOML syntax.
    fn value_text(&self, key: &str) -> Option<String> {
        let value = [
            Some(&self.flags),
            Some(&self.environment),
            self.file.as_ref().map(|(_, file)| file),
        ]
        .into_iter()
        .flatten()
        .find_map(|layer| layer.find_ref(key))?;
        Some(
            value
                .deserialize::<toml::Value>()
                .map_or_else(|_| format!("{value:?}"), |value| value.to_string()),
        )
    }
}

/// One layer as a figment provider.
struct Layer {
    name: &'static str,
    data: Dict,
}

impl Layer {
    fn new(name: &'static str, value: &Value) -> Layer {
        Layer {
            name,
            data: value.as_dict().cloned().unwrap_or_default(),
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let unreadable = |source| ConfigError::FileUnreadable {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > CONFIG_FILE_BYTES_MAX {
        return Err(ConfigError::FileTooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let table: toml::Table = toml::from_str(&text).map_err(|error| ConfigError::FileSyntax {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    Value::serialize(table).map_err(|error| ConfigError::FileSyntax {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// The setting that environment variable `name` sets, if it sets one.
fn key_of_variable(name: &str) -> Option<&'static str> {
    VARIABLE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, key)| *key)
        .or_else(|| KEYS.iter().copied().find(|key| variable(key) == name))
}

/// The `MARTELO_*` variables among `environment` as settings, and the variable behind each
/// key. An empty variable counts as unset. A `MARTELO_*` variable that names no setting is an
/// error (a typo would otherwise be ignored), except those of [`NOT_SETTINGS`].
fn read_environment(
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(Value, BTreeMap<&'static str, String>), ConfigError> {
    let mut settings = Dict::new();
    let mut variables: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, value) in environment {
        if !name
            .as_encoded_bytes()
            .starts_with(VARIABLE_PREFIX.as_bytes())
        {
            continue;
        }
        let name = name.into_string().map_err(|name| ConfigError::NotUtf8 {
            name: name.to_string_lossy().into_owned(),
        })?;
        if NOT_SETTINGS.contains(&name.as_str()) || value.is_empty() {
            continue;
        }
        let key = key_of_variable(&name)
            .ok_or_else(|| ConfigError::UnknownVariable { name: name.clone() })?;
        let value = value
            .into_string()
            .map_err(|_| ConfigError::NotUtf8 { name: name.clone() })?;
        if let Some(first) = variables.insert(key, name.clone()) {
            return Err(ConfigError::VariableTwice {
                key,
                first,
                second: name,
            });
        }
        // figment's parser reads `8` as a number, `true` as a boolean, `[a, b]` as a list
        // and anything else as a string.
        let parsed = Value::from_str(&value).unwrap_or_else(|never| match never {});
        insert(&mut settings, key, parsed);
    }
    Ok((Value::from(settings), variables))
}

/// Puts `value` at the dotted path `key` in `dict`.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((section, rest)) => {
            let entry = dict
                .entry(section.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}
