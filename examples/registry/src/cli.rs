//! The command lines of the example servers (this package's `registry`, the root crate's `proxy`
//! and `worker`): `-h`/`--help` and `--version` print to stdout and exit 0; an unknown flag, a
//! flag without its value or a wrong number of arguments prints the usage to stderr and exits 2.
//! A config file is read with Distribution's `REGISTRY_*` environment overrides applied on top
//! ([`load_config`]).

use std::path::Path;

use registry_notify::config::{Config, ConfigError};

/// One server's command line: its name, its usage text and the flags that take a value.
#[derive(Clone, Copy, Debug)]
pub struct Cli {
    name: &'static str,
    usage: &'static str,
    value_flags: &'static [&'static str],
}

/// A command line once `--help` and `--version` are answered: positional arguments and flags
/// with their values, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// Arguments that are not flags (after `--`, everything is one).
    pub positional: Vec<String>,
    /// `--flag value` and `--flag=value`, as `("--flag", "value")`.
    pub flags: Vec<(String, String)>,
}

/// What [`Cli::try_parse`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these arguments.
    Run(Args),
    /// Print this to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

impl Cli {
    /// A command line named `name` (as in `name --version`), whose `usage` lists its forms, and
    /// whose flags in `value_flags` (e.g. `"--addr"`) take a value; any other flag is an error.
    pub const fn new(name: &'static str, usage: &'static str, value_flags: &'static [&'static str]) -> Self {
        Self {
            name,
            usage,
            value_flags,
        }
    }

    /// Parses `args` (without the program name), or says what is wrong with them.
    pub fn try_parse(&self, args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
        let mut out = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Parsed::Print(self.usage.to_owned())),
                "-V" | "--version" => return Ok(Parsed::Print(self.version())),
                "--" => {
                    out.positional.extend(args);
                    break;
                }
                flag if flag.starts_with('-') && flag.len() > 1 => {
                    let (name, inline) = match flag.split_once('=') {
                        Some((name, value)) => (name, Some(value.to_owned())),
                        None => (flag, None),
                    };
                    if !self.value_flags.contains(&name) {
                        return Err(format!("unknown flag {name}"));
                    }
                    let value = match inline {
                        Some(v) => v,
                        None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
                    };
                    out.flags.push((name.to_owned(), value));
                }
                _ => out.positional.push(arg),
            }
        }
        Ok(Parsed::Run(out))
    }

    /// Parses the process's arguments: prints and exits 0 for `--help`/`--version`, and exits 2
    /// with the usage for a bad command line.
    pub fn parse(&self) -> Args {
        match self.try_parse(std::env::args().skip(1)) {
            Ok(Parsed::Run(args)) => args,
            Ok(Parsed::Print(text)) => {
                println!("{}", text.trim_end());
                std::process::exit(0)
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Says what is wrong on stderr, with the usage, and exits 2.
    pub fn fail(&self, problem: &str) -> ! {
        eprintln!("{}: {problem}\n\n{}", self.name, self.usage.trim_end());
        std::process::exit(2)
    }

    /// `name version` (the workspace's version, which is registry-notify's).
    pub fn version(&self) -> String {
        format!("{} {}", self.name, env!("CARGO_PKG_VERSION"))
    }
}

/// Reads the Distribution config file at `path`, then applies the process's `REGISTRY_*`
/// environment overrides (`REGISTRY_HTTP_ADDR`, `REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL`, …; see
/// [`Config::apply_env`]) on top, as Distribution does.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let mut config = Config::from_path(path)?;
    config.apply_env(std::env::vars())?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLI: Cli = Cli::new("demo", "usage: demo [--addr A] FILE\n", &["--addr"]);

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        CLI.try_parse(args.iter().map(|s| s.to_string()))
    }

    fn run(positional: &[&str], flags: &[(&str, &str)]) -> Result<Parsed, String> {
        Ok(Parsed::Run(Args {
            positional: positional.iter().map(|s| s.to_string()).collect(),
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }))
    }

    #[test]
    fn help_and_version_win_wherever_they_are() {
        let help = Ok(Parsed::Print("usage: demo [--addr A] FILE\n".into()));
        assert_eq!(parse(&["-h"]), help);
        assert_eq!(parse(&["a.yml", "--help"]), help);
        let version = Ok(Parsed::Print(format!("demo {}", env!("CARGO_PKG_VERSION"))));
        assert_eq!(parse(&["--version"]), version);
        assert_eq!(parse(&["-V", "--help"]), version);
    }

    #[test]
    fn flags_values_and_positionals() {
        assert_eq!(parse(&[]), run(&[], &[]));
        assert_eq!(
            parse(&["--addr", "x:1", "a.yml"]),
            run(&["a.yml"], &[("--addr", "x:1")])
        );
        assert_eq!(parse(&["--addr=x:2", "-"]), run(&["-"], &[("--addr", "x:2")]));
        assert_eq!(parse(&["--", "--help", "-x"]), run(&["--help", "-x"], &[]));
    }

    #[test]
    fn bad_command_lines_say_why() {
        assert_eq!(parse(&["--port", "1"]), Err("unknown flag --port".into()));
        assert_eq!(parse(&["-x=1"]), Err("unknown flag -x".into()));
        assert_eq!(parse(&["a.yml", "--addr"]), Err("--addr needs a value".into()));
    }
}
