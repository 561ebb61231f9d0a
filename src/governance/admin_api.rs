//! The key and team endpoints of the admin listener, sans-IO: a method, a
//! path, the caller's `Authorization` and a body in; a status and a JSON
//! body out. `POST/GET /admin/keys`, `GET/PATCH/DELETE /admin/keys/{id}`,
//! and the same under `/admin/teams`.
//!
//! Invariants: every call needs the admin token (compared by SHA-256, so
//! the compare's timing says nothing of the token); with no token
//! configured the endpoints answer 404, as if absent. A key's secret is
//! in exactly one answer, the 201 to its creation.

use serde_json::{json, Map, Value};

use super::clock::unix_now;
use super::records::{nanos_to_usd, KeySpec, Origin, TeamSpec};
use super::secret;
use super::shared::Record;
use super::table::{KeyEntry, TeamEntry};
use super::Governance;
use crate::config::Config;

/// What an admin call is answered with.
pub struct AdminAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

fn answer(status: u16, body: Value) -> AdminAnswer {
    AdminAnswer {
        status,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

fn error(status: u16, kind: &str, message: impl Into<String>) -> AdminAnswer {
    answer(
        status,
        json!({"error": {"message": message.into(), "type": kind}}),
    )
}

/// Whether `authorization` presents `token` (`Bearer`), compared by
/// SHA-256 so the compare's timing says nothing of the token.
pub fn presents_admin_token(token: &str, authorization: Option<&[u8]>) -> bool {
    let presented = authorization
        .and_then(|a| super::presented_secret(Some(a), None))
        .unwrap_or_default();
    secret::hash(presented) == secret::hash(token.as_bytes())
}

/// Handles `method path` if it is one of the governance endpoints (`None`
/// otherwise, for the caller's other routes).
pub fn handle_admin(
    gov: &Governance,
    config: &Config,
    method: &[u8],
    path: &[u8],
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Option<AdminAnswer> {
    let path = std::str::from_utf8(path).ok()?;
    let (collection, id) = match path.strip_prefix("/admin/") {
        Some(rest) => match rest.split_once('/') {
            Some((c, id)) => (c, Some(id)),
            None => (rest, None),
        },
        None => return None,
    };
    if collection != "keys" && collection != "teams" {
        return None;
    }
    let token = config.admin.token.as_deref()?;
    if !presents_admin_token(token, authorization) {
        return Some(error(
            401,
            "authentication_error",
            "the admin API needs `Authorization: Bearer <admin token>`",
        ));
    }
    let input = || -> Result<Map<String, Value>, AdminAnswer> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(error(
                400,
                "invalid_request_error",
                "the body must be a JSON object",
            )),
            Err(e) => Err(error(
                400,
                "invalid_request_error",
                format!("the body is not JSON: {e}"),
            )),
        }
    };
    let id = id.filter(|id| !id.is_empty());
    let out = match (collection, method, id) {
        ("keys", b"POST", None) => input().map(|i| create_key(gov, &i)),
        ("keys", b"GET", None) => Ok(list(gov.table.keys().iter().map(|k| key_json(k)))),
        ("keys", b"GET", Some(id)) => Ok(match gov.table.key(id) {
            Some(k) => answer(200, Value::Object(key_json(&k))),
            None => not_found("key", id),
        }),
        ("keys", b"PATCH", Some(id)) => input().map(|i| patch_key(gov, id, &i)),
        ("keys", b"DELETE", Some(id)) => Ok(delete_key(gov, id)),
        ("teams", b"POST", None) => input().map(|i| create_team(gov, &i)),
        ("teams", b"GET", None) => Ok(list(gov.table.teams().iter().map(|t| team_json(t)))),
        ("teams", b"GET", Some(id)) => Ok(match gov.table.team(id) {
            Some(t) => answer(200, Value::Object(team_json(&t))),
            None => not_found("team", id),
        }),
        ("teams", b"PATCH", Some(id)) => input().map(|i| patch_team(gov, id, &i)),
        ("teams", b"DELETE", Some(id)) => Ok(delete_team(gov, id)),
        _ => Ok(error(
            405,
            "invalid_request_error",
            "method not allowed here",
        )),
    };
    let out = out.unwrap_or_else(|e| e);
    if (200..300).contains(&out.status) && method != b"GET" {
        gov.refresh_enabled(config);
    }
    Some(out)
}

fn list(items: impl Iterator<Item = Map<String, Value>>) -> AdminAnswer {
    answer(
        200,
        json!({"object": "list", "data": items.map(Value::Object).collect::<Vec<_>>()}),
    )
}

fn not_found(what: &str, id: &str) -> AdminAnswer {
    error(404, "not_found_error", format!("no {what} with id `{id}`"))
}

fn declared(what: &str, id: &str) -> AdminAnswer {
    error(
        409,
        "invalid_request_error",
        format!("{what} `{id}` is declared in the config file; change it there"),
    )
}

fn create_key(gov: &Governance, input: &Map<String, Value>) -> AdminAnswer {
    let (Some(id), Some(key)) = (secret::new_id("key"), secret::generate()) else {
        return error(500, "server_error", "the system gave no random bytes");
    };
    let hash = secret::hash(key.as_bytes());
    let mut spec = KeySpec {
        id,
        created_at: unix_now(),
        key_sha256: secret::to_hex(&hash),
        origin: Origin::Api,
        ..KeySpec::default()
    };
    if let Err(why) = spec.apply(input, |t| gov.table.team(t).is_some()) {
        return error(400, "invalid_request_error", why);
    }
    gov.table.put_key(spec.clone(), hash);
    gov.shared.changed(Record::Key(spec.id.clone()));
    let mut out = gov
        .table
        .key(&spec.id)
        .map(|k| key_json(&k))
        .unwrap_or_default();
    out.insert("key".into(), key.into());
    answer(201, Value::Object(out))
}

fn patch_key(gov: &Governance, id: &str, input: &Map<String, Value>) -> AdminAnswer {
    let Some(old) = gov.table.key(id) else {
        return not_found("key", id);
    };
    if old.spec.origin == Origin::Config {
        return declared("key", id);
    }
    let mut spec = old.spec.clone();
    if let Err(why) = spec.apply(input, |t| gov.table.team(t).is_some()) {
        return error(400, "invalid_request_error", why);
    }
    let Some(hash) = secret::from_hex(&spec.key_sha256) else {
        return error(500, "server_error", "the key's stored hash is damaged");
    };
    gov.table.put_key(spec, hash);
    gov.shared.changed(Record::Key(id.to_string()));
    match gov.table.key(id) {
        Some(k) => answer(200, Value::Object(key_json(&k))),
        None => not_found("key", id),
    }
}

fn delete_key(gov: &Governance, id: &str) -> AdminAnswer {
    match gov.table.key(id) {
        Some(k) if k.spec.origin == Origin::Config => declared("key", id),
        Some(_) if gov.table.remove_key(id) => {
            gov.shared.changed(Record::Key(id.to_string()));
            answer(200, json!({"id": id, "object": "key", "deleted": true}))
        }
        _ => not_found("key", id),
    }
}

fn create_team(gov: &Governance, input: &Map<String, Value>) -> AdminAnswer {
    let Some(id) = secret::new_id("team") else {
        return error(500, "server_error", "the system gave no random bytes");
    };
    let mut spec = TeamSpec {
        id,
        created_at: unix_now(),
        origin: Origin::Api,
        ..TeamSpec::default()
    };
    if let Err(why) = spec.apply(input) {
        return error(400, "invalid_request_error", why);
    }
    gov.table.put_team(spec.clone());
    gov.shared.changed(Record::Team(spec.id.clone()));
    match gov.table.team(&spec.id) {
        Some(t) => answer(201, Value::Object(team_json(&t))),
        None => not_found("team", &spec.id),
    }
}

fn patch_team(gov: &Governance, id: &str, input: &Map<String, Value>) -> AdminAnswer {
    let Some(old) = gov.table.team(id) else {
        return not_found("team", id);
    };
    if old.spec.origin == Origin::Config {
        return declared("team", id);
    }
    let mut spec = old.spec.clone();
    if let Err(why) = spec.apply(input) {
        return error(400, "invalid_request_error", why);
    }
    gov.table.put_team(spec);
    gov.shared.changed(Record::Team(id.to_string()));
    match gov.table.team(id) {
        Some(t) => answer(200, Value::Object(team_json(&t))),
        None => not_found("team", id),
    }
}

fn delete_team(gov: &Governance, id: &str) -> AdminAnswer {
    match gov.table.team(id) {
        Some(t) if t.spec.origin == Origin::Config => declared("team", id),
        Some(_) => match gov.table.remove_team(id) {
            Ok(true) => {
                gov.shared.changed(Record::Team(id.to_string()));
                answer(200, json!({"id": id, "object": "team", "deleted": true}))
            }
            Ok(false) => not_found("team", id),
            Err(keys) => error(
                409,
                "invalid_request_error",
                format!("team `{id}` still has keys: {}", keys.join(", ")),
            ),
        },
        None => not_found("team", id),
    }
}

/// Live usage fields, from a ledger.
fn usage_json(
    out: &mut Map<String, Value>,
    ledger: &super::table::LedgerCell,
    limits: &super::ledger::Limits,
) {
    let now = unix_now();
    let mut l = ledger.lock();
    let spent = l.spent_nanos(limits, now);
    let remaining = l.remaining_nanos(limits, now);
    out.insert("spend_usd".into(), nanos_to_usd(spent).into());
    out.insert(
        "budget_remaining_usd".into(),
        remaining.map(nanos_to_usd).into(),
    );
    out.insert("requests".into(), l.totals.requests.into());
    out.insert("input_tokens".into(), l.totals.input_tokens.into());
    out.insert("output_tokens".into(), l.totals.output_tokens.into());
    out.insert("in_flight".into(), l.in_flight.into());
}

fn key_json(k: &KeyEntry) -> Map<String, Value> {
    let mut out = k.spec.to_json();
    usage_json(&mut out, &k.ledger, &k.limits);
    out
}

fn team_json(t: &TeamEntry) -> Map<String, Value> {
    let mut out = t.spec.to_json();
    usage_json(&mut out, &t.ledger, &t.limits);
    out
}
