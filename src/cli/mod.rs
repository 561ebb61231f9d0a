//! The command line's chores, beside running the gateway: `shardgate
//! check-config` (run by the binary itself, with the gateway's own config
//! load), `shardgate status` and `shardgate keys create|list|revoke`, which
//! talk to a running gateway's admin listener ([`admin_client`]).
//!
//! Exit codes: 0 done (and, for `status`, ready); 1 not ready, unreachable
//! or refused, with a line on stderr saying which; 2 a bad argument
//! (clap's).

pub mod admin_client;
mod keys;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use admin_client::{AdminClient, AdminError, AdminResponse};
pub use keys::CreateKey;

/// The admin address when neither `--admin` nor a config names one.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9090";

/// The token's environment variable, as the gateway itself reads it.
pub const TOKEN_ENV: &str = "SHARDGATE_ADMIN_TOKEN";

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file and exit (non-zero if invalid)
    ///
    /// The same as `shardgate --check-config`: loads the file as the
    /// gateway would, checks every provider, and says what is wrong. Exits
    /// 0 when valid, 2 when invalid.
    CheckConfig {
        /// TOML config file (default: none; providers from the environment)
        #[arg(short = 'c', long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Show whether a running gateway is ready, its shards and generation
    ///
    /// Asks the admin listener (`GET /admin/status`, no token needed) and
    /// prints: ready, starting or draining; version and uptime; the
    /// configuration generation (reloads since start); requests in flight;
    /// each shard with its I/O driver (io_uring, or the epoll fallback).
    /// Exits 0 when ready, 1 when not ready or unreachable.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the gateway's JSON answer as it came
        #[arg(long)]
        json: bool,
    },
    /// Create, list and revoke virtual keys on a running gateway
    ///
    /// A client of the gateway's admin key API (`/admin/keys`), which needs
    /// the admin token the gateway runs with (admin.token or
    /// $SHARDGATE_ADMIN_TOKEN). Exits 0 when done, 1 with the reason when
    /// the gateway is unreachable or refuses.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
}

#[derive(Clone, Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown this once)
    Create(Box<keys::CreateKey>),
    /// List the keys with their limits, spend and requests
    List {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the gateway's JSON answer as it came
        #[arg(long)]
        json: bool,
    },
    /// Revoke (delete) a key, refused from its next request on
    Revoke {
        /// The key's id, as `keys list` shows it (key_...)
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the gateway's JSON answer as it came
        #[arg(long)]
        json: bool,
    },
}

/// Where the running gateway's admin listener is, and its token.
#[derive(Clone, Debug, Default, Args)]
pub struct AdminArgs {
    /// The gateway's admin address [default: admin.listen in --config,
    /// else 127.0.0.1:9090]
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// The admin token [default: admin.token in --config, else
    /// $SHARDGATE_ADMIN_TOKEN]; prefer the variable, a flag shows in `ps`
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The gateway's config file, read for admin.listen and admin.token
    #[arg(short = 'c', long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Seconds to wait to connect and for each read of the answer
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

/// Runs `status` or `keys`; `config` is the top-level `--config`, used
/// when the command has none of its own. (`check-config` is the binary's.)
pub fn run(command: Command, config: Option<&Path>) -> ExitCode {
    let outcome = match command {
        Command::CheckConfig { .. } => Err("check-config is run by the binary".to_string()),
        Command::Status { admin, json } => {
            connect(&admin, config).and_then(|client| status::run(&client, json))
        }
        Command::Keys { action } => keys::run(action, config),
    };
    match outcome {
        Ok(code) => code,
        Err(why) => {
            eprintln!("shardgate: {why}");
            ExitCode::from(1)
        }
    }
}

/// The client `args` describe: address and token from the flags, else the
/// config file, else the defaults.
fn connect(args: &AdminArgs, fallback_config: Option<&Path>) -> Result<AdminClient, String> {
    let file = match args.config.as_deref().or(fallback_config) {
        Some(path) => Some(ConfigAdmin::read(path)?),
        None => None,
    };
    let addr = match (&args.admin, &file) {
        (Some(addr), _) => addr.clone(),
        (None, Some(f)) => match &f.listen {
            Some(l) if l.is_empty() => {
                return Err(format!(
                    "{} turns the admin listener off (admin.listen = \"\"); \
                     nothing to ask (pass --admin ADDR if it runs elsewhere)",
                    f.path.display()
                ))
            }
            Some(l) => l.clone(),
            None => DEFAULT_ADMIN.to_string(),
        },
        (None, None) => DEFAULT_ADMIN.to_string(),
    };
    let token = args
        .token
        .clone()
        .or_else(|| file.and_then(|f| f.token))
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.is_empty());
    let addr = admin_client::resolve_admin(&addr).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    Ok(AdminClient::new(addr, token, timeout))
}

/// `[admin]`'s `listen` and `token` from a config file; the rest of the
/// file is not checked here (`check-config` does that).
struct ConfigAdmin {
    path: PathBuf,
    listen: Option<String>,
    token: Option<String>,
}

impl ConfigAdmin {
    fn read(path: &Path) -> Result<ConfigAdmin, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc: toml::Table = text
            .parse()
            .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
        let admin = doc.get("admin").and_then(|a| a.as_table());
        let field = |name: &str| {
            admin
                .and_then(|a| a.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Ok(ConfigAdmin {
            path: path.to_path_buf(),
            listen: field("listen"),
            token: field("token").filter(|t| !t.is_empty()),
        })
    }
}

/// The API's own words for a refusal (`{"error": {"message": ...}}`), else
/// the body as text.
fn api_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().map(|v| &v["error"]) {
        Some(serde_json::Value::Object(e)) => e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("no message")
            .to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(300)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_config(text: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("shardgate-cli-{}-{n}.toml", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_address_and_token_come_from_flags_then_the_config() {
        let path = temp_config("[admin]\nlisten = \"0.0.0.0:9555\"\ntoken = \"from-the-file\"\n");
        let from_file = AdminArgs {
            config: Some(path.clone()),
            ..AdminArgs::default()
        };
        let c = connect(&from_file, None).unwrap();
        assert_eq!(c.addr(), "127.0.0.1:9555".parse().unwrap());
        assert!(c.has_token());
        let flags = AdminArgs {
            admin: Some("127.0.0.2:9001".into()),
            token: Some("flag".into()),
            ..from_file
        };
        assert_eq!(
            connect(&flags, None).unwrap().addr(),
            "127.0.0.2:9001".parse().unwrap()
        );
        // The top-level --config stands in for the command's own.
        let c = connect(&AdminArgs::default(), Some(&path)).unwrap();
        assert_eq!(c.addr(), "127.0.0.1:9555".parse().unwrap());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_config_without_admin_uses_the_default_and_off_is_an_error() {
        let none = temp_config("[server]\nlisten = \"127.0.0.1:8080\"\n");
        let c = connect(
            &AdminArgs {
                config: Some(none.clone()),
                ..AdminArgs::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(c.addr(), DEFAULT_ADMIN.parse().unwrap());
        let off = temp_config("[admin]\nlisten = \"\"\n");
        let e = connect(
            &AdminArgs {
                config: Some(off.clone()),
                ..AdminArgs::default()
            },
            None,
        )
        .err()
        .unwrap();
        assert!(e.contains("turns the admin listener off"), "{e}");
        let e = connect(
            &AdminArgs {
                config: Some("/nonexistent/shardgate.toml".into()),
                ..AdminArgs::default()
            },
            None,
        )
        .err()
        .unwrap();
        assert!(e.contains("cannot read /nonexistent/shardgate.toml"), "{e}");
        std::fs::remove_file(none).unwrap();
        std::fs::remove_file(off).unwrap();
    }

    #[test]
    fn api_messages_in_each_shape() {
        assert_eq!(
            api_message(br#"{"error":{"message":"no key with id `k`","type":"x"}}"#),
            "no key with id `k`"
        );
        assert_eq!(api_message(br#"{"error":"not found"}"#), "not found");
        assert_eq!(api_message(b"plain words\n"), "plain words");
    }
}
