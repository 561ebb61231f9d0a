//! What a key or a team *is* (as opposed to what it has used): the records
//! the admin API creates and the config file declares, as they are stored,
//! and the reading of admin input into them with errors that name the field.
//!
//! Invariant: a record that left [`KeySpec::apply`] or [`TeamSpec::apply`]
//! is valid: limits are positive, globs non-empty, a budget a finite
//! non-negative amount, dates real. Only the SHA-256 of a secret is kept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::clock::{format_rfc3339, parse_rfc3339, Period};
use super::ledger::Limits;
pub use crate::config::LimitFields;

/// Where a record comes from: the config file's are read-only through the
/// API (the file would bring them back on the next reload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    #[default]
    Api,
    Config,
}

impl LimitFields {
    pub fn limits(&self) -> Limits {
        Limits {
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            budget_nanos: self.budget_usd.map(usd_to_nanos),
            period: self.budget_period,
        }
    }

    pub(super) fn apply(&mut self, input: &Map<String, Value>) -> Result<(), String> {
        for (field, slot) in [
            ("rpm", &mut self.rpm),
            ("tpm", &mut self.tpm),
            ("max_concurrent", &mut self.max_concurrent),
        ] {
            if let Some(v) = input.get(field) {
                *slot = match v {
                    Value::Null => None,
                    v => match v.as_u64() {
                        Some(n) if n > 0 => Some(n),
                        _ => {
                            return Err(format!(
                                "`{field}` must be a whole number above 0, or null"
                            ))
                        }
                    },
                };
            }
        }
        if let Some(v) = input.get("budget_usd") {
            self.budget_usd = match v {
                Value::Null => None,
                v => match v.as_f64() {
                    Some(usd) if usd.is_finite() && (0.0..1e9).contains(&usd) => Some(usd),
                    _ => {
                        return Err(
                            "`budget_usd` must be an amount in US dollars (0 or more), or null"
                                .into(),
                        )
                    }
                },
            };
        }
        if let Some(v) = input.get("budget_period") {
            self.budget_period = match v {
                Value::Null => Period::Total,
                v => match v.as_str() {
                    Some("day") => Period::Day,
                    Some("week") => Period::Week,
                    Some("month") => Period::Month,
                    Some("total") => Period::Total,
                    _ => {
                        return Err("`budget_period` must be one of day, week, month, total".into())
                    }
                },
            };
        }
        Ok(())
    }

    fn to_json(&self, out: &mut Map<String, Value>) {
        out.insert("rpm".into(), self.rpm.into());
        out.insert("tpm".into(), self.tpm.into());
        out.insert("max_concurrent".into(), self.max_concurrent.into());
        out.insert("budget_usd".into(), self.budget_usd.into());
        out.insert(
            "budget_period".into(),
            serde_json::to_value(self.budget_period).unwrap_or(Value::Null),
        );
    }
}

/// US dollars to nano-dollars, rounded to the nearest.
pub fn usd_to_nanos(usd: f64) -> u64 {
    (usd * 1e9).round() as u64
}

pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// A virtual key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeySpec {
    pub id: String,
    pub name: String,
    pub team: Option<String>,
    /// Globs over the public model name; `None` allows every model.
    pub models: Option<Vec<String>>,
    #[serde(flatten)]
    pub limits: LimitFields,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    pub metadata: Map<String, Value>,
    pub created_at: u64,
    /// Hex SHA-256 of the secret.
    pub key_sha256: String,
    pub origin: Origin,
}

/// A team: limits and a budget all its keys share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeamSpec {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub limits: LimitFields,
    pub metadata: Map<String, Value>,
    pub created_at: u64,
    pub origin: Origin,
}

fn name_field(input: &Map<String, Value>, name: &mut String) -> Result<(), String> {
    if let Some(v) = input.get("name") {
        match v.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 256 => *name = s.to_string(),
            _ => return Err("`name` must be a string of 1 to 256 characters".into()),
        }
    }
    Ok(())
}

fn metadata_field(
    input: &Map<String, Value>,
    metadata: &mut Map<String, Value>,
) -> Result<(), String> {
    match input.get("metadata") {
        None => Ok(()),
        Some(Value::Null) => {
            metadata.clear();
            Ok(())
        }
        Some(Value::Object(m)) if m.len() <= 64 => {
            *metadata = m.clone();
            Ok(())
        }
        Some(_) => Err("`metadata` must be an object of at most 64 members".into()),
    }
}

/// The fields an admin call may set on a key; anything else is refused, so a
/// typo is not silently ignored.
const KEY_FIELDS: &[&str] = &[
    "name",
    "team",
    "models",
    "rpm",
    "tpm",
    "max_concurrent",
    "budget_usd",
    "budget_period",
    "expires_at",
    "metadata",
];
const TEAM_FIELDS: &[&str] = &[
    "name",
    "rpm",
    "tpm",
    "max_concurrent",
    "budget_usd",
    "budget_period",
    "metadata",
];

fn only_known(input: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match input.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field `{k}` (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

impl KeySpec {
    /// Sets the fields `input` (a JSON object) names; `team_exists` says
    /// whether a team id is known.
    pub fn apply(
        &mut self,
        input: &Map<String, Value>,
        team_exists: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        only_known(input, KEY_FIELDS)?;
        name_field(input, &mut self.name)?;
        self.limits.apply(input)?;
        metadata_field(input, &mut self.metadata)?;
        if let Some(v) = input.get("team") {
            self.team = match v {
                Value::Null => None,
                Value::String(t) if team_exists(t) => Some(t.clone()),
                Value::String(t) => return Err(format!("no team with id `{t}`")),
                _ => return Err("`team` must be a team id, or null".into()),
            };
        }
        if let Some(v) = input.get("models") {
            self.models = match v {
                Value::Null => None,
                Value::Array(globs) if globs.len() <= 256 => Some(
                    globs
                        .iter()
                        .map(|g| match g.as_str() {
                            Some(s) if !s.is_empty() && s.len() <= 256 => Ok(s.to_string()),
                            _ => {
                                Err("`models` must be a list of non-empty model globs".to_string())
                            }
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    return Err(
                        "`models` must be a list of model globs (at most 256), or null".into(),
                    )
                }
            };
        }
        if let Some(v) = input.get("expires_at") {
            self.expires_at = match v {
                Value::Null => None,
                Value::String(s) => Some(parse_rfc3339(s).ok_or_else(|| {
                    format!("`expires_at` must be an RFC 3339 date-time, like 2027-01-01T00:00:00Z, not `{s}`")
                })?),
                _ => return Err("`expires_at` must be an RFC 3339 date-time, or null".into()),
            };
        }
        if self.name.is_empty() {
            return Err("`name` is required".into());
        }
        Ok(())
    }

    /// The key as the admin API shows it (without usage, which the caller
    /// adds, and never the secret).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), self.id.clone().into());
        out.insert("object".into(), "key".into());
        out.insert("name".into(), self.name.clone().into());
        out.insert("team".into(), self.team.clone().into());
        out.insert("models".into(), self.models.clone().into());
        self.limits.to_json(&mut out);
        out.insert(
            "expires_at".into(),
            self.expires_at.map(format_rfc3339).into(),
        );
        out.insert("metadata".into(), Value::Object(self.metadata.clone()));
        out.insert("created_at".into(), format_rfc3339(self.created_at).into());
        out.insert(
            "origin".into(),
            serde_json::to_value(self.origin).unwrap_or(Value::Null),
        );
        out
    }
}

impl TeamSpec {
    pub fn apply(&mut self, input: &Map<String, Value>) -> Result<(), String> {
        only_known(input, TEAM_FIELDS)?;
        name_field(input, &mut self.name)?;
        self.limits.apply(input)?;
        metadata_field(input, &mut self.metadata)?;
        if self.name.is_empty() {
            return Err("`name` is required".into());
        }
        Ok(())
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), self.id.clone().into());
        out.insert("object".into(), "team".into());
        out.insert("name".into(), self.name.clone().into());
        self.limits.to_json(&mut out);
        out.insert("metadata".into(), Value::Object(self.metadata.clone()));
        out.insert("created_at".into(), format_rfc3339(self.created_at).into());
        out.insert(
            "origin".into(),
            serde_json::to_value(self.origin).unwrap_or(Value::Null),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_key_reads_every_field_and_refuses_nonsense() {
        let mut k = KeySpec::default();
        k.apply(
            &obj(serde_json::json!({
                "name": "ci", "team": "t1", "models": ["openai/*"], "rpm": 60, "tpm": 1000,
                "max_concurrent": 2, "budget_usd": 1.5, "budget_period": "month",
                "expires_at": "2027-01-01T00:00:00Z", "metadata": {"owner": "me"}
            })),
            |t| t == "t1",
        )
        .unwrap();
        assert_eq!(k.limits.limits().budget_nanos, Some(1_500_000_000));
        assert_eq!(k.limits.budget_period, Period::Month);
        assert_eq!(k.to_json()["expires_at"], "2027-01-01T00:00:00Z");
        for (bad, why) in [
            (serde_json::json!({"rpm": 0}), "rpm"),
            (serde_json::json!({"rpm": -1}), "rpm"),
            (serde_json::json!({"budget_usd": "1"}), "budget_usd"),
            (
                serde_json::json!({"budget_period": "year"}),
                "budget_period",
            ),
            (serde_json::json!({"team": "nope"}), "nope"),
            (serde_json::json!({"models": "gpt-4o"}), "models"),
            (serde_json::json!({"expires_at": "tomorrow"}), "expires_at"),
            (serde_json::json!({"colour": 1}), "colour"),
        ] {
            let mut k2 = k.clone();
            let err = k2.apply(&obj(bad), |_| false).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let mut unnamed = KeySpec::default();
        assert!(unnamed
            .apply(&Map::new(), |_| true)
            .unwrap_err()
            .contains("name"));
    }

    #[test]
    fn nulls_clear_limits() {
        let mut t = TeamSpec::default();
        t.apply(&obj(
            serde_json::json!({"name": "a", "rpm": 5, "budget_usd": 2}),
        ))
        .unwrap();
        t.apply(&obj(serde_json::json!({"rpm": null, "budget_usd": null})))
            .unwrap();
        assert_eq!(t.limits.limits(), Limits::default());
    }
}
