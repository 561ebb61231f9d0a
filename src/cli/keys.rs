//! `shardgate keys create|list|revoke`: a thin client of the admin key API
//! (`governance::admin_api`: `POST /admin/keys`, `GET /admin/keys`,
//! `DELETE /admin/keys/{id}`), with its fields as flags, a table for
//! `list`, and the API's own words when it refuses.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value};

use super::{api_message, connect, AdminArgs, AdminClient, KeysCommand, TOKEN_ENV};

/// `keys create`: the fields `POST /admin/keys` takes.
#[derive(Clone, Debug, Args)]
pub struct CreateKey {
    /// A name for the key, to know it by (required)
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The team it belongs to (a team id; the team's limits and budget
    /// apply too)
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Allow only the models matching this glob, e.g. `gpt-4o*` (repeat
    /// for more) [default: every model]
    #[arg(long = "model", value_name = "GLOB")]
    pub models: Vec<String>,
    /// Requests per minute
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,
    /// Requests in flight at once
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u64>,
    /// A spending limit in US dollars, per --budget-period
    #[arg(long, value_name = "USD")]
    pub budget_usd: Option<f64>,
    /// What the budget counts over [default: total]
    #[arg(long, value_name = "PERIOD", value_parser = ["day", "week", "month", "total"])]
    pub budget_period: Option<String>,
    /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// A label kept with the key (repeat for more)
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = key_value)]
    pub metadata: Vec<(String, String)>,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Print the gateway's JSON answer as it came (the secret is its `key`)
    #[arg(long)]
    pub json: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, not `{s}`")),
    }
}

impl CreateKey {
    /// The `POST /admin/keys` body.
    fn body(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), self.name.clone().into());
        if let Some(team) = &self.team {
            out.insert("team".into(), team.clone().into());
        }
        if !self.models.is_empty() {
            out.insert("models".into(), self.models.clone().into());
        }
        for (field, value) in [
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("max_concurrent", self.max_concurrent),
        ] {
            if let Some(v) = value {
                out.insert(field.into(), v.into());
            }
        }
        if let Some(usd) = self.budget_usd {
            out.insert("budget_usd".into(), usd.into());
        }
        if let Some(p) = &self.budget_period {
            out.insert("budget_period".into(), p.clone().into());
        }
        if let Some(t) = &self.expires_at {
            out.insert("expires_at".into(), t.clone().into());
        }
        if !self.metadata.is_empty() {
            let m: Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            out.insert("metadata".into(), m.into());
        }
        Value::Object(out)
    }
}

pub(super) fn run(action: KeysCommand, config: Option<&Path>) -> Result<ExitCode, String> {
    match action {
        KeysCommand::Create(create) => {
            let client = connect(&create.admin, config)?;
            let body = create.body().to_string();
            let v = call(
                &client,
                "POST",
                "/admin/keys",
                Some(body.as_bytes()),
                create.json,
            )?;
            if !create.json {
                print!("{}", created(&v));
            }
        }
        KeysCommand::List { admin, json } => {
            let client = connect(&admin, config)?;
            let v = call(&client, "GET", "/admin/keys", None, json)?;
            if !json {
                print!("{}", table(v["data"].as_array().map_or(&[][..], |d| d)));
            }
        }
        KeysCommand::Revoke { id, admin, json } => {
            if id.is_empty()
                || id
                    .bytes()
                    .any(|b| !b.is_ascii_graphic() || b"/?#%".contains(&b))
            {
                return Err(format!(
                    "`{id}` is not a key id (key_...; see `shardgate keys list`)"
                ));
            }
            let client = connect(&admin, config)?;
            call(&client, "DELETE", &format!("/admin/keys/{id}"), None, json)?;
            if !json {
                println!("revoked key {id}: refused from the next request on every shard");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One call of the key API: its JSON on a 2xx (printed as it came with
/// `json`), else what went wrong in words.
fn call(
    client: &AdminClient,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    json: bool,
) -> Result<Value, String> {
    let addr = client.addr();
    let answer = client
        .request(method, path, body)
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&answer.status) {
        return Err(refusal(client, answer.status, &answer.body));
    }
    if json {
        println!("{}", String::from_utf8_lossy(&answer.body));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| format!("the admin listener at {addr} answered JSON that does not parse: {e}"))
}

/// Why the API said no, with what to do about it.
fn refusal(client: &AdminClient, status: u16, body: &[u8]) -> String {
    let addr = client.addr();
    let message = api_message(body);
    match status {
        401 if !client.has_token() => format!(
            "the admin API at {addr} needs its token: set {TOKEN_ENV}, pass --token TOKEN, or \
             --config PATH with admin.token"
        ),
        401 => format!("the admin API at {addr} refused the admin token (401): {message}"),
        // The collection itself missing: the gateway has no token, so no key API.
        404 if message == "not found" => format!(
            "the gateway at {addr} has no key API: it runs without an admin token (set \
             admin.token or {TOKEN_ENV} in its configuration to turn virtual keys on)"
        ),
        _ => format!("the admin API at {addr} refused ({status}): {message}"),
    }
}

/// What `keys create` prints: the id, and the secret, once.
fn created(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "created key {} ({})",
        v["id"].as_str().unwrap_or("?"),
        v["name"].as_str().unwrap_or("")
    );
    let _ = writeln!(out, "secret: {}", v["key"].as_str().unwrap_or("?"));
    let _ = writeln!(
        out,
        "Store the secret now: it is not shown again. Clients send it as \
         `Authorization: Bearer <secret>`."
    );
    out
}

fn usd(v: &Value) -> Option<String> {
    v.as_f64().map(|u| {
        if u == 0.0 {
            "$0".to_string()
        } else if u < 0.01 {
            format!("${u:.4}")
        } else {
            format!("${u:.2}")
        }
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        v => v.to_string(),
    }
}

/// `keys list`'s table, one key a row.
fn table(keys: &[Value]) -> String {
    if keys.is_empty() {
        return "no keys (create one with `shardgate keys create --name NAME`)\n".into();
    }
    let head = [
        "ID", "NAME", "TEAM", "MODELS", "RPM", "TPM", "BUDGET", "SPENT", "REQUESTS", "EXPIRES",
    ];
    let rows: Vec<[String; 10]> = keys
        .iter()
        .map(|k| {
            let budget = match usd(&k["budget_usd"]) {
                Some(b) => format!("{b}/{}", text(&k["budget_period"])),
                None => "-".into(),
            };
            [
                text(&k["id"]),
                text(&k["name"]),
                text(&k["team"]),
                match &k["models"] {
                    Value::Null => "*".into(),
                    m => text(m),
                },
                text(&k["rpm"]),
                text(&k["tpm"]),
                budget,
                usd(&k["spend_usd"]).unwrap_or_else(|| "-".into()),
                text(&k["requests"]),
                text(&k["expires_at"]),
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (cell, w) in cells.zip(widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut head.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        create: CreateKey,
    }

    #[test]
    fn create_flags_become_the_api_fields() {
        let cli = Cli::parse_from([
            "x",
            "--name",
            "ci",
            "--team",
            "team_1",
            "--model",
            "gpt-4o*",
            "--model",
            "claude-*",
            "--rpm",
            "60",
            "--budget-usd",
            "2.5",
            "--budget-period",
            "month",
            "--expires-at",
            "2027-01-01T00:00:00Z",
            "--metadata",
            "owner=ops",
        ]);
        assert_eq!(
            cli.create.body(),
            serde_json::json!({
                "name": "ci", "team": "team_1", "models": ["gpt-4o*", "claude-*"],
                "rpm": 60, "budget_usd": 2.5, "budget_period": "month",
                "expires_at": "2027-01-01T00:00:00Z", "metadata": {"owner": "ops"}
            })
        );
        let bare = Cli::parse_from(["x", "--name", "n"]);
        assert_eq!(bare.create.body(), serde_json::json!({"name": "n"}));
        assert!(Cli::try_parse_from(["x", "--name", "n", "--budget-period", "year"]).is_err());
        assert!(Cli::try_parse_from(["x", "--name", "n", "--metadata", "novalue"]).is_err());
    }

    #[test]
    fn the_table_lines_up_and_shows_limits() {
        let keys = [
            serde_json::json!({"id": "key_a", "name": "ci", "team": null, "models": null,
                "rpm": 60, "tpm": null, "budget_usd": 10.0, "budget_period": "month",
                "spend_usd": 0.0012, "requests": 3, "expires_at": null}),
            serde_json::json!({"id": "key_bb", "name": "a longer name", "team": "team_x",
                "models": ["gpt-*", "o1"], "rpm": null, "tpm": 1000, "budget_usd": null,
                "budget_period": "total", "spend_usd": 0.0, "requests": 0,
                "expires_at": "2027-01-01T00:00:00Z"}),
        ];
        let t = table(&keys);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ID      NAME           TEAM"), "{t}");
        assert!(
            lines[1].contains("$10.00/month") && lines[1].contains("$0.0012"),
            "{t}"
        );
        assert!(
            lines[2].contains("gpt-*,o1") && lines[2].contains("2027-01-01T00:00:00Z"),
            "{t}"
        );
        // Columns start at the same offset on every line.
        let col = lines[0].find("NAME").unwrap();
        assert_eq!(&lines[2][col..col + 13], "a longer name");
        assert!(table(&[]).starts_with("no keys"));
    }
}
