//! Routing: a client's `model` value → a provider and the model name to send
//! upstream. Built once per config; lookups borrow, never allocate.
//!
//! Rules, in order: an exact configured model name or alias; then a
//! `provider/model` prefix naming a configured provider (prefix stripped);
//! then, for a name with a `/` whose prefix is not a provider, 404; then a
//! bare name goes to the default provider unchanged.

use std::collections::HashMap;

use crate::config::{Config, ConfigError};
use crate::error::{Error, Kind};
use crate::providers::prices::PriceTable;
use crate::providers::Provider;

pub struct Router {
    pub providers: Vec<Provider>,
    by_name: HashMap<String, usize>,
    /// public name or alias → (provider index, upstream model name)
    models: HashMap<String, (usize, String)>,
    default: Option<usize>,
    /// The `/v1/models` response body, rendered once.
    pub models_body: Vec<u8>,
    /// Prices for the cost of each request.
    pub prices: PriceTable,
    pub has_models: bool,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub provider: usize,
    pub upstream_model: &'a str,
}

impl Router {
    pub fn new(config: &Config) -> Result<Router, ConfigError> {
        let mut providers = Vec::new();
        let mut by_name = HashMap::new();
        for (name, p) in &config.providers {
            by_name.insert(name.clone(), providers.len());
            providers.push(Provider::from_config(name, p)?);
        }
        let mut models = HashMap::new();
        for m in &config.models {
            let idx = by_name[&m.provider];
            let upstream = m.upstream_model.clone().unwrap_or_else(|| m.name.clone());
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                models.insert(n.clone(), (idx, upstream.clone()));
            }
        }
        let default = config.default_provider_name().map(|d| by_name[d]);
        let models_body = render_models(config);
        Ok(Router {
            providers,
            by_name,
            models,
            default,
            models_body,
            prices: PriceTable::new(&config.prices),
            has_models: !config.models.is_empty(),
        })
    }

    pub fn route<'a>(&'a self, model: &'a str) -> Result<Target<'a>, Error> {
        if let Some((provider, upstream)) = self.models.get(model) {
            return Ok(Target {
                provider: *provider,
                upstream_model: upstream,
            });
        }
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some(&provider) = self.by_name.get(prefix) {
                if rest.is_empty() {
                    return Err(model_not_found(model));
                }
                // A provider-qualified name may still be a configured model.
                if let Some((p, upstream)) = self.models.get(rest) {
                    if *p == provider {
                        return Ok(Target {
                            provider,
                            upstream_model: upstream,
                        });
                    }
                }
                return Ok(Target {
                    provider,
                    upstream_model: rest,
                });
            }
            return Err(Error::client(
                Kind::ModelNotFound,
                format!("The model `{model}` does not exist: no provider named `{prefix}` is configured."),
            )
            .with_param("model"));
        }
        match self.default {
            Some(provider) => Ok(Target {
                provider,
                upstream_model: model,
            }),
            None => Err(model_not_found(model)),
        }
    }

    pub fn default_provider(&self) -> Option<usize> {
        self.default
    }
}

fn model_not_found(model: &str) -> Error {
    Error::client(
        Kind::ModelNotFound,
        format!("The model `{model}` does not exist or you do not have access to it."),
    )
    .with_param("model")
}

/// OpenAI's list format: `{"object":"list","data":[{"id","object","created","owned_by"}]}`.
fn render_models(config: &Config) -> Vec<u8> {
    let mut out = b"{\"object\":\"list\",\"data\":[".to_vec();
    let mut first = true;
    for m in &config.models {
        for n in std::iter::once(&m.name).chain(&m.aliases) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(b"{\"id\":");
            crate::json::push_json_string(&mut out, n);
            out.extend_from_slice(b",\"object\":\"model\",\"created\":0,\"owned_by\":");
            crate::json::push_json_string(&mut out, &m.provider);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let c = Config::from_toml(
            r#"
            default_provider = "a"
            [providers.a]
            base_url = "http://127.0.0.1:1/v1"
            [providers.b]
            base_url = "http://127.0.0.1:2/v1"
            [[models]]
            name = "fast"
            provider = "b"
            upstream_model = "b-fast-2"
            aliases = ["quick"]
            [[models]]
            name = "org/llama"
            provider = "b"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        Router::new(&c).unwrap()
    }

    #[test]
    fn routes_by_model_alias_prefix_and_default() {
        let r = router();
        let (a, b) = (r.by_name["a"], r.by_name["b"]);
        assert_eq!(
            r.route("fast").unwrap(),
            Target {
                provider: b,
                upstream_model: "b-fast-2"
            }
        );
        assert_eq!(
            r.route("quick").unwrap(),
            Target {
                provider: b,
                upstream_model: "b-fast-2"
            }
        );
        assert_eq!(
            r.route("b/anything").unwrap(),
            Target {
                provider: b,
                upstream_model: "anything"
            }
        );
        assert_eq!(
            r.route("a/gpt-4o").unwrap(),
            Target {
                provider: a,
                upstream_model: "gpt-4o"
            }
        );
        assert_eq!(
            r.route("gpt-4o").unwrap(),
            Target {
                provider: a,
                upstream_model: "gpt-4o"
            }
        );
        assert_eq!(
            r.route("org/llama").unwrap(),
            Target {
                provider: b,
                upstream_model: "org/llama"
            }
        );
        assert_eq!(
            r.route("b/fast").unwrap(),
            Target {
                provider: b,
                upstream_model: "b-fast-2"
            }
        );
    }

    #[test]
    fn unknown_provider_prefix_is_404() {
        let e = router().route("nope/gpt-4o").unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(e.param.as_deref(), Some("model"));
        assert_eq!(router().route("a/").unwrap_err().status(), 404);
    }

    #[test]
    fn models_list_is_openai_shaped() {
        let v: serde_json::Value = serde_json::from_slice(&router().models_body).unwrap();
        assert_eq!(v["object"], "list");
        let ids: Vec<_> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["fast", "quick", "org/llama"]);
        assert_eq!(v["data"][0]["object"], "model");
    }
}
