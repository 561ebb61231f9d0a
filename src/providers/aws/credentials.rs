//! AWS credentials and region, resolved the way the AWS CLI and SDKs do
//! from the standard environment variables and the shared files, sans-IO:
//! [`resolve`] takes the environment as a lookup function and the two
//! files' contents as strings, so it is tested without a home directory,
//! and the caller decides where (off the shards) and how often it runs.
//!
//! Order, as in the AWS docs ("Configuration and credential file settings"):
//! - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+
//!   `AWS_SESSION_TOKEN`) when both are set; else the profile's section in
//!   the credentials file (`[name]`); else its section in the config file
//!   (`[profile name]`, or `[default]` for the default profile).
//! - region: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the profile's
//!   `region` in the config file, then in the credentials file.
//! - profile: `AWS_PROFILE`, else `default`; files at
//!   `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`, else
//!   `~/.aws/credentials` / `~/.aws/config` ([`shared_file_paths`]).
//!
//! Invariant: no secret reaches a log. [`Credentials`]' `Debug` shows the
//! access key id only (it is not secret; AWS prints it in errors), and a
//! parse error names a line number, never the line.
//!
//! Not here: process/SSO/IMDS/web-identity providers. The loop that re-runs
//! [`resolve`] while the gateway runs is `providers::bedrock`'s.

use std::path::PathBuf;

/// A key pair, with the session token that temporary credentials carry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where resolved credentials came from, for the startup log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    CredentialsFile,
    ConfigFile,
}

/// What [`resolve`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub profile: String,
    pub credentials: Option<(Credentials, Source)>,
    pub region: Option<String>,
}

/// Why resolving failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsError {
    /// A shared file is not the INI subset AWS reads; the 1-based line.
    Parse { file: &'static str, line: usize },
    /// A section has one half of a key pair.
    Incomplete { file: &'static str, profile: String },
}

impl std::fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialsError::Parse { file, line } => {
                write!(f, "AWS {file} file: line {line} is not `[section]`, `key = value` or a comment")
            }
            CredentialsError::Incomplete { file, profile } => write!(
                f,
                "AWS {file} file: profile `{profile}` has only one of aws_access_key_id and aws_secret_access_key"
            ),
        }
    }
}

impl std::error::Error for CredentialsError {}

/// One `[section]` and its `key = value` pairs, keys lowercased.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Section {
    pub name: String,
    pub pairs: Vec<(String, String)>,
}

impl Section {
    /// The last value for `key`, as the CLI takes the last of a repeat.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the INI subset of the AWS shared files: `[section]` headers,
/// `key = value` pairs, `#`/`;` comment lines and inline comments after
/// whitespace, blank lines, and indented lines that continue a nested
/// value (`s3 =` followed by indented settings), which are skipped because
/// nothing here reads them. On error, the 1-based line number.
pub fn parse_ini(text: &str) -> Result<Vec<Section>, usize> {
    let mut sections: Vec<Section> = Vec::new();
    // After `key =` with no value, indented lines are that key's block.
    let mut nested = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let indented = raw.starts_with([' ', '\t']);
        let line = strip_inline_comment(raw.trim());
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if indented && nested {
            continue;
        }
        nested = false;
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or(line_no)?.trim();
            if name.is_empty() {
                return Err(line_no);
            }
            sections.push(Section {
                name: name.to_owned(),
                pairs: Vec::new(),
            });
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(line_no)?;
        let k = k.trim();
        let section = sections.last_mut().ok_or(line_no)?;
        if k.is_empty() {
            return Err(line_no);
        }
        nested = v.trim().is_empty();
        section
            .pairs
            .push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    Ok(sections)
}

/// `value # note` → `value`; a `#` or `;` inside a word stays.
fn strip_inline_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for i in 1..b.len() {
        if matches!(b[i], b'#' | b';') && matches!(b[i - 1], b' ' | b'\t') {
            return line[..i].trim_end();
        }
    }
    line
}

/// The credentials file's section for `profile`: `[name]` as it stands.
fn credentials_section<'a>(sections: &'a [Section], profile: &str) -> Option<&'a Section> {
    sections.iter().rev().find(|s| s.name == profile)
}

/// The config file's section for `profile`: `[profile name]`, or for the
/// default profile `[default]` as well (the CLI writes the latter).
fn config_section<'a>(sections: &'a [Section], profile: &str) -> Option<&'a Section> {
    let named = |s: &&Section| {
        s.name
            .strip_prefix("profile")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .is_some_and(|rest| rest.trim() == profile)
    };
    sections
        .iter()
        .rev()
        .find(named)
        .or_else(|| (profile == "default").then(|| credentials_section(sections, "default"))?)
}

fn keys_in(
    section: Option<&Section>,
    file: &'static str,
    profile: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    let Some(section) = section else {
        return Ok(None);
    };
    let nonempty = |k: &str| section.get(k).filter(|v| !v.is_empty());
    match (
        nonempty("aws_access_key_id"),
        nonempty("aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: nonempty("aws_session_token").map(str::to_owned),
        })),
        (None, None) => Ok(None),
        _ => Err(CredentialsError::Incomplete {
            file,
            profile: profile.to_owned(),
        }),
    }
}

/// Where the two shared files are, given the environment and the home
/// directory (`None` when there is none: then only the overrides count).
pub fn shared_file_paths(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<PathBuf>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let pick = |var: &str, name: &str| {
        nonempty_env(env, var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    (
        pick("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        pick("AWS_CONFIG_FILE", "config"),
    )
}

fn nonempty_env(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    env(var).filter(|v| !v.is_empty())
}

/// Resolves credentials and region from `env` and the shared files'
/// contents (`None` for a file that does not exist).
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    credentials_file: Option<&str>,
    config_file: Option<&str>,
) -> Result<Resolved, CredentialsError> {
    let profile = nonempty_env(env, "AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let parse = |text: Option<&str>, file: &'static str| match text {
        None => Ok(Vec::new()),
        Some(t) => parse_ini(t).map_err(|line| CredentialsError::Parse { file, line }),
    };
    let cred_sections = parse(credentials_file, "credentials")?;
    let config_sections = parse(config_file, "config")?;
    let cred_section = credentials_section(&cred_sections, &profile);
    let config_section = config_section(&config_sections, &profile);

    let from_env = match (
        nonempty_env(env, "AWS_ACCESS_KEY_ID"),
        nonempty_env(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: nonempty_env(env, "AWS_SESSION_TOKEN"),
        }),
        _ => None,
    };
    let credentials = match from_env {
        Some(c) => Some((c, Source::Environment)),
        None => match keys_in(cred_section, "credentials", &profile)? {
            Some(c) => Some((c, Source::CredentialsFile)),
            None => keys_in(config_section, "config", &profile)?.map(|c| (c, Source::ConfigFile)),
        },
    };
    let region = nonempty_env(env, "AWS_REGION")
        .or_else(|| nonempty_env(env, "AWS_DEFAULT_REGION"))
        .or_else(|| {
            config_section
                .and_then(|s| s.get("region"))
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
        })
        .or_else(|| {
            cred_section
                .and_then(|s| s.get("region"))
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
        });
    Ok(Resolved {
        profile,
        credentials,
        region,
    })
}

/// [`resolve`] against the process environment and the real files. Reads
/// files, so it belongs off the shards (at start and in the refresh loop).
pub fn resolve_from_process() -> Result<Resolved, CredentialsError> {
    let env = |k: &str| std::env::var(k).ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let (cred_path, config_path) = shared_file_paths(&env, home);
    let read = |p: Option<PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok());
    resolve(
        &env,
        read(cred_path).as_deref(),
        read(config_path).as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const CREDS: &str = "\
# written by aws configure
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret/default+key

[work]
aws_access_key_id=AKIDWORK
aws_secret_access_key=secretwork ; inline comment
aws_session_token = tokenwork
region = eu-west-1
";

    const CONFIG: &str = "\
[default]
region = us-east-1
s3 =
    max_concurrent_requests = 20

[profile work]
region = us-west-2

[profile cfgonly]
aws_access_key_id = AKIDCFG
aws_secret_access_key = secretcfg

[cfgonly]
region = ignored-without-profile-prefix
";

    #[test]
    fn parser_reads_the_subset() {
        let s = parse_ini(CONFIG).unwrap();
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["default", "profile work", "profile cfgonly", "cfgonly"]
        );
        // The nested `s3` block's indented line is not a top-level key.
        assert_eq!(s[0].get("s3"), Some(""));
        assert_eq!(s[0].get("max_concurrent_requests"), None);
        assert_eq!(s[0].get("region"), Some("us-east-1"));
        let c = parse_ini(CREDS).unwrap();
        assert_eq!(c[1].get("aws_secret_access_key"), Some("secretwork"));
        assert_eq!(
            c[0].get("aws_secret_access_key"),
            Some("secret/default+key")
        );
    }

    #[test]
    fn indented_pairs_outside_a_nested_block_count() {
        let s = parse_ini("[a]\n  region = x\nblock =\n  inner = y\nafter = z\n").unwrap();
        assert_eq!(s[0].get("region"), Some("x"));
        assert_eq!(s[0].get("inner"), None);
        assert_eq!(s[0].get("after"), Some("z"));
    }

    #[test]
    fn parser_rejects_what_is_not_ini_by_line() {
        assert_eq!(parse_ini("[a]\nkey value\n"), Err(2));
        assert_eq!(parse_ini("key = before any section\n"), Err(1));
        assert_eq!(parse_ini("[unclosed\n"), Err(1));
        assert_eq!(parse_ini("[]\n"), Err(1));
        assert_eq!(parse_ini("[a]\n= v\n"), Err(2));
        assert_eq!(parse_ini("").unwrap(), vec![]);
    }

    #[test]
    fn environment_wins_over_files() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secretenv"),
            ("AWS_SESSION_TOKEN", "tokenenv"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ]);
        let r = resolve(&env, Some(CREDS), Some(CONFIG)).unwrap();
        let (c, src) = r.credentials.unwrap();
        assert_eq!(src, Source::Environment);
        assert_eq!(c.access_key_id, "AKIDENV");
        assert_eq!(c.session_token.as_deref(), Some("tokenenv"));
        assert_eq!(r.region.as_deref(), Some("ap-south-1"));
        // AWS_REGION beats AWS_DEFAULT_REGION.
        let env = env_of(&[
            ("AWS_REGION", "eu-central-1"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ]);
        assert_eq!(
            resolve(&env, None, None).unwrap().region.as_deref(),
            Some("eu-central-1")
        );
    }

    #[test]
    fn half_a_pair_in_the_environment_falls_through_to_the_files() {
        let env = env_of(&[("AWS_ACCESS_KEY_ID", "AKIDENV")]);
        let r = resolve(&env, Some(CREDS), Some(CONFIG)).unwrap();
        let (c, src) = r.credentials.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), src),
            ("AKIDDEFAULT", Source::CredentialsFile)
        );
        assert_eq!(c.session_token, None);
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        assert_eq!(r.profile, "default");
    }

    #[test]
    fn named_profile_from_both_files() {
        let env = env_of(&[("AWS_PROFILE", "work")]);
        let r = resolve(&env, Some(CREDS), Some(CONFIG)).unwrap();
        let (c, src) = r.credentials.unwrap();
        assert_eq!(src, Source::CredentialsFile);
        assert_eq!(c.access_key_id, "AKIDWORK");
        assert_eq!(c.session_token.as_deref(), Some("tokenwork"));
        // The config file's region beats the credentials file's.
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
    }

    #[test]
    fn keys_in_the_config_file_under_profile_prefix_only() {
        let env = env_of(&[("AWS_PROFILE", "cfgonly")]);
        let r = resolve(&env, Some(CREDS), Some(CONFIG)).unwrap();
        let (c, src) = r.credentials.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), src),
            ("AKIDCFG", Source::ConfigFile)
        );
        // `[cfgonly]` without the prefix is not that profile in config.
        assert_eq!(r.region, None);
        // `[profile default]` is the default profile in config as well.
        let r = resolve(
            &env_of(&[]),
            None,
            Some("[profile default]\nregion = sa-east-1\n"),
        )
        .unwrap();
        assert_eq!(r.region.as_deref(), Some("sa-east-1"));
    }

    #[test]
    fn missing_profile_and_missing_files_give_nothing() {
        let env = env_of(&[("AWS_PROFILE", "nosuch")]);
        let r = resolve(&env, Some(CREDS), Some(CONFIG)).unwrap();
        assert_eq!((r.credentials, r.region), (None, None));
        let r = resolve(&env_of(&[]), None, None).unwrap();
        assert_eq!(
            (r.profile.as_str(), r.credentials, r.region),
            ("default", None, None)
        );
    }

    #[test]
    fn errors_name_the_line_not_the_secret() {
        let bad = "[default]\naws_secret_access_key wJalrXUtnFEMI\n";
        let e = resolve(&env_of(&[]), Some(bad), None).unwrap_err();
        assert_eq!(
            e,
            CredentialsError::Parse {
                file: "credentials",
                line: 2
            }
        );
        assert!(!e.to_string().contains("wJalr"));
        let half = "[default]\naws_secret_access_key = wJalrXUtnFEMI\n";
        let e = resolve(&env_of(&[]), Some(half), None).unwrap_err();
        assert!(matches!(
            e,
            CredentialsError::Incomplete {
                file: "credentials",
                ..
            }
        ));
        assert!(!e.to_string().contains("wJalr"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("SESSIONTOKENVALUE".into()),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(
            !shown.contains("wJalr") && !shown.contains("SESSIONTOKENVALUE"),
            "{shown}"
        );
        let r = Resolved {
            profile: "p".into(),
            credentials: Some((c, Source::Environment)),
            region: None,
        };
        assert!(!format!("{r:?}").contains("wJalr"));
    }

    #[test]
    fn file_paths_from_overrides_or_home() {
        let home = Some(PathBuf::from("/home/u"));
        let (c, f) = shared_file_paths(&env_of(&[]), home.clone());
        assert_eq!(c, Some(PathBuf::from("/home/u/.aws/credentials")));
        assert_eq!(f, Some(PathBuf::from("/home/u/.aws/config")));
        let env = env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", "/etc/c"),
            ("AWS_CONFIG_FILE", "/etc/f"),
        ]);
        assert_eq!(
            shared_file_paths(&env, home),
            (Some("/etc/c".into()), Some("/etc/f".into()))
        );
        assert_eq!(shared_file_paths(&env_of(&[]), None), (None, None));
    }
}
