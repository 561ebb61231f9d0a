//! Routing: a client's `model` value → a provider and the model name to send
//! upstream. Built once per config; lookups borrow, never allocate.
//!
//! Rules, in order: an exact configured model name or alias; then a
//! `provider/model` prefix naming a configured provider (prefix stripped);
//! then, for a name with a `/` whose prefix is not a provider, 404; then a
//! bare name goes to the default provider unchanged.
//!
//! The router also holds the provider quotas (per deployment and per
//! provider): their counters are the one piece of routing state shared by
//! every shard, carried from one configuration to the next
//! ([`Router::carry_quotas`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::error::{Error, Kind};
use crate::providers::model_lists::ModelLists;
use crate::providers::prices::PriceTable;
use crate::providers::Provider;
use crate::upstream::balance::Strategy;
use crate::upstream::quota::Quota;
use crate::upstream::retry::Fallbacks;

/// One place a configured model is served.
#[derive(Debug)]
pub struct Deployment {
    pub provider: usize,
    pub upstream_model: String,
    /// The provider's quota for this deployment (`rpm`/`tpm`), if any.
    pub quota: Option<Quota>,
}

/// A configured model: its deployments, how they share traffic, and where
/// a request goes when they fail.
#[derive(Debug)]
pub struct ModelRoute {
    pub name: String,
    pub deployments: Vec<Deployment>,
    pub weights: Vec<u32>,
    pub strategy: Strategy,
    pub fallbacks: Fallbacks,
}

pub struct Router {
    pub providers: Vec<Provider>,
    by_name: HashMap<String, usize>,
    /// public name or alias → index into `model_routes`
    models: HashMap<String, usize>,
    /// The configured models, in config order.
    pub model_routes: Vec<ModelRoute>,
    default: Option<usize>,
    /// The `/v1/models` answer: the configured models and each provider's
    /// own, fetched off the shards.
    pub model_lists: Arc<ModelLists>,
    /// The provider `/v1/models` is passed to as it is: the only one, when
    /// no models are configured (its own list is the whole answer).
    pub models_pass_through: Option<usize>,
    /// Prices for the cost of each request.
    pub prices: PriceTable,
    /// Each provider's own quota (indexed like `providers`), shared by
    /// every request sent to it.
    pub provider_quotas: Vec<Option<Quota>>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub provider: usize,
    pub upstream_model: &'a str,
    /// The configured model (index into `model_routes`) whose deployments
    /// the request may be spread over; `provider`/`upstream_model` are then
    /// its first deployment. `None`: exactly this provider.
    pub model: Option<usize>,
}

impl Router {
    pub fn new(config: &Config) -> Result<Router, ConfigError> {
        let mut providers = Vec::new();
        let mut by_name = HashMap::new();
        let mut provider_quotas = Vec::new();
        for (name, p) in &config.providers {
            by_name.insert(name.clone(), providers.len());
            providers.push(Provider::from_config(name, p, &config.upstream)?);
            provider_quotas.push(Quota::new(p.rpm, p.tpm));
        }
        let mut models = HashMap::new();
        let mut model_routes = Vec::new();
        let decay = config.resilience.latency_decay_ms;
        for (i, m) in config.models.iter().enumerate() {
            let resolved = m.resolved_deployments();
            let deployments = resolved
                .iter()
                .enumerate()
                .map(|(j, &(p, upstream, _))| Deployment {
                    provider: by_name[p],
                    upstream_model: upstream.to_string(),
                    quota: m.deployments.get(j).and_then(|d| Quota::new(d.rpm, d.tpm)),
                })
                .collect();
            let strategy = match m.strategy.as_deref() {
                Some("least_in_flight") => Strategy::LeastInFlight,
                Some("latency") => Strategy::LatencyP2c { decay },
                _ => Strategy::WeightedRoundRobin,
            };
            model_routes.push(ModelRoute {
                name: m.name.clone(),
                deployments,
                weights: resolved.iter().map(|d| d.2).collect(),
                strategy,
                fallbacks: Fallbacks {
                    models: m.fallbacks.clone(),
                    context_window: m.context_window_fallbacks.clone(),
                },
            });
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                models.insert(n.clone(), i);
            }
        }
        let default = config.default_provider_name().map(|d| by_name[d]);
        let models_pass_through = default.filter(|&p| {
            config.models.is_empty() && providers.len() == 1 && providers[p].dialect().is_some()
        });
        let model_lists = ModelLists::start(
            &providers,
            default,
            configured_models(config),
            models_pass_through.is_none(),
        );
        Ok(Router {
            providers,
            by_name,
            models,
            model_routes,
            default,
            model_lists,
            models_pass_through,
            prices: PriceTable::new(&config.prices),
            provider_quotas,
        })
    }

    /// Takes over `old`'s quota counters where the same quota is still
    /// configured: a provider of the same name, a deployment of the same
    /// model on the same provider and upstream model. A reload then keeps
    /// what the last minute used (with the new limits) instead of letting a
    /// fresh minute's worth through.
    pub fn carry_quotas(&mut self, old: &Router) {
        for (p, quota) in self.providers.iter().zip(&mut self.provider_quotas) {
            let previous = old.by_name.get(&p.name).map(|&i| &old.provider_quotas[i]);
            if let (Some(q), Some(Some(o))) = (quota.as_mut(), previous) {
                q.carry_over(o);
            }
        }
        for route in &mut self.model_routes {
            let Some(&o) = old.models.get(&route.name) else {
                continue;
            };
            for d in &mut route.deployments {
                let provider = &self.providers[d.provider].name;
                let found = old.model_routes[o].deployments.iter().find(|od| {
                    &old.providers[od.provider].name == provider
                        && od.upstream_model == d.upstream_model
                });
                if let (Some(q), Some(Some(oq))) = (d.quota.as_mut(), found.map(|od| &od.quota)) {
                    q.carry_over(oq);
                }
            }
        }
    }

    /// The configured model's deployment (model, index) a
    /// `provider/model` name pins (`b/m`: m's deployment on b), when the
    /// name is not itself a configured model.
    pub fn pinned_deployment(&self, name: &str) -> Option<(usize, usize)> {
        let (prefix, rest) = name.split_once('/')?;
        if self.models.contains_key(name) {
            return None;
        }
        let provider = *self.by_name.get(prefix)?;
        let m = *self.models.get(rest)?;
        let index = self.model_routes[m]
            .deployments
            .iter()
            .position(|d| d.provider == provider)?;
        Some((m, index))
    }

    /// The quotas an attempt sent to deployment `index` of configured model
    /// `model` (or, with `None`, straight to `provider`) counts against:
    /// the deployment's own, then its provider's.
    pub fn quotas(
        &self,
        provider: usize,
        deployment: Option<(usize, usize)>,
    ) -> impl Iterator<Item = &Quota> {
        let own = deployment.and_then(|(m, i)| self.model_routes[m].deployments[i].quota.as_ref());
        own.into_iter()
            .chain(self.provider_quotas[provider].as_ref())
    }

    pub fn route<'a>(&'a self, model: &'a str) -> Result<Target<'a>, Error> {
        if let Some(&m) = self.models.get(model) {
            let d = &self.model_routes[m].deployments[0];
            return Ok(Target {
                provider: d.provider,
                upstream_model: &d.upstream_model,
                model: Some(m),
            });
        }
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some(&provider) = self.by_name.get(prefix) {
                if rest.is_empty() {
                    return Err(model_not_found(model));
                }
                // A provider-qualified name may still be a configured model.
                // (pinned to that provider's deployment).
                if let Some(&m) = self.models.get(rest) {
                    let found = self.model_routes[m]
                        .deployments
                        .iter()
                        .find(|d| d.provider == provider);
                    if let Some(d) = found {
                        return Ok(Target {
                            provider,
                            upstream_model: &d.upstream_model,
                            model: None,
                        });
                    }
                }
                return Ok(Target {
                    provider,
                    upstream_model: rest,
                    model: None,
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
                model: None,
            }),
            None if self.providers.is_empty() => Err(Error::client(
                Kind::ModelNotFound,
                format!(
                    "The model `{model}` cannot be served: this gateway has no provider configured \
                     (set a provider's API key in its environment, e.g. OPENAI_API_KEY, or add \
                     a [providers.NAME] table to the config file)."
                ),
            )
            .with_param("model")),
            None => Err(model_not_found(model)),
        }
    }

    /// The configured model named `name` (or alias), as an index into
    /// `model_routes`.
    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.get(name).copied()
    }

    pub fn default_provider(&self) -> Option<usize> {
        self.default
    }

    /// The provider configured under `name`.
    pub fn provider_named(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

fn model_not_found(model: &str) -> Error {
    Error::client(
        Kind::ModelNotFound,
        format!("The model `{model}` does not exist or you do not have access to it."),
    )
    .with_param("model")
}

/// The configured models' `/v1/models` entries (names and aliases).
fn configured_models(config: &Config) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for m in &config.models {
        let first = m.resolved_deployments().first().map(|d| (d.0, d.1));
        let resolved = first.map_or(String::new(), |(p, u)| format!("{p}/{u}"));
        let owner = first.map_or("", |(p, _)| p);
        for n in std::iter::once(&m.name).chain(&m.aliases) {
            out.push((n.clone(), resolved.clone(), owner.to_string()));
        }
    }
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
        crate::providers::validate(&c).unwrap();
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
                upstream_model: "b-fast-2",
                model: Some(0)
            }
        );
        assert_eq!(
            r.route("quick").unwrap(),
            Target {
                provider: b,
                upstream_model: "b-fast-2",
                model: Some(0)
            }
        );
        assert_eq!(
            r.route("b/anything").unwrap(),
            Target {
                provider: b,
                upstream_model: "anything",
                model: None
            }
        );
        assert_eq!(
            r.route("a/gpt-4o").unwrap(),
            Target {
                provider: a,
                upstream_model: "gpt-4o",
                model: None
            }
        );
        assert_eq!(
            r.route("gpt-4o").unwrap(),
            Target {
                provider: a,
                upstream_model: "gpt-4o",
                model: None
            }
        );
        assert_eq!(
            r.route("org/llama").unwrap(),
            Target {
                provider: b,
                upstream_model: "org/llama",
                model: Some(1)
            }
        );
        assert_eq!(
            r.route("b/fast").unwrap(),
            Target {
                provider: b,
                upstream_model: "b-fast-2",
                model: None
            }
        );
    }

    #[test]
    fn a_model_with_deployments_routes_to_its_set_and_a_prefix_pins_one() {
        let c = Config::from_toml(
            r#"
            [providers.a]
            base_url = "http://127.0.0.1:1/v1"
            [providers.b]
            base_url = "http://127.0.0.1:2/v1"
            [[models]]
            name = "m"
            deployments = [{ provider = "a", upstream_model = "a-m", weight = 2 }, { provider = "b" }]
            strategy = "least_in_flight"
            fallbacks = ["n"]
            [[models]]
            name = "n"
            provider = "b"
            "#,
        )
        .unwrap();
        crate::providers::validate(&c).unwrap();
        let r = Router::new(&c).unwrap();
        let (a, b) = (r.by_name["a"], r.by_name["b"]);
        let t = r.route("m").unwrap();
        assert_eq!((t.provider, t.upstream_model, t.model), (a, "a-m", Some(0)));
        let m = &r.model_routes[0];
        assert_eq!(m.weights, [2, 1]);
        assert_eq!(m.strategy, Strategy::LeastInFlight);
        assert_eq!(m.deployments[1].provider, b);
        assert_eq!(m.deployments[1].upstream_model, "m");
        assert_eq!(m.fallbacks.models, ["n"]);
        assert_eq!(r.model_index("n"), Some(1));
        // `b/m` is m's deployment on b, and only that one.
        let t = r.route("b/m").unwrap();
        assert_eq!((t.provider, t.upstream_model, t.model), (b, "m", None));
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
        let body = router().model_lists.snapshot().body.clone();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
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

    #[test]
    fn quotas_are_built_per_deployment_and_provider_and_carried_over_a_reload() {
        let text = r#"
            [providers.a]
            base_url = "http://127.0.0.1:1/v1"
            tpm = 1000
            [providers.b]
            base_url = "http://127.0.0.1:2/v1"
            [[models]]
            name = "m"
            deployments = [{ provider = "a", rpm = 5 }, { provider = "b" }]
            "#;
        let router = |text: &str| {
            let c = Config::from_toml(text).unwrap();
            crate::providers::validate(&c).unwrap();
            Router::new(&c).unwrap()
        };
        let old = router(text);
        let (a, b) = (old.by_name["a"], old.by_name["b"]);
        let q = old.model_routes[0].deployments[0].quota.as_ref().unwrap();
        assert_eq!((q.rpm, q.tpm), (Some(5), None));
        assert!(old.model_routes[0].deployments[1].quota.is_none());
        assert_eq!(old.provider_quotas[a].as_ref().unwrap().tpm, Some(1000));
        assert!(old.provider_quotas[b].is_none());
        assert_eq!(old.quotas(a, Some((0, 0))).count(), 2);
        assert_eq!(old.quotas(b, Some((0, 1))).count(), 0);
        assert_eq!(old.quotas(a, None).count(), 1);
        assert_eq!(old.pinned_deployment("a/m"), Some((0, 0)));
        assert_eq!(old.pinned_deployment("b/m"), Some((0, 1)));
        assert_eq!(old.pinned_deployment("a/x"), None);
        assert_eq!(old.pinned_deployment("m"), None);
        q.count_request(7);
        old.provider_quotas[a]
            .as_ref()
            .unwrap()
            .count_tokens(7, 300);
        // A reload with new limits keeps the counts; a changed deployment
        // starts afresh.
        let mut new = router(&text.replace("rpm = 5", "rpm = 6"));
        new.carry_quotas(&old);
        let nq = new.model_routes[0].deployments[0].quota.as_ref().unwrap();
        assert_eq!(nq.rpm, Some(6));
        assert_eq!(nq.counters().requests.used(7), 1);
        let np = new.provider_quotas[a].as_ref().unwrap();
        assert_eq!(np.counters().tokens.used(7), 300);
        let mut moved = router(&text.replace(
            "provider = \"a\", rpm",
            "provider = \"a\", upstream_model = \"x\", rpm",
        ));
        moved.carry_quotas(&old);
        let mq = moved.model_routes[0].deployments[0].quota.as_ref().unwrap();
        assert_eq!(mq.counters().requests.used(7), 0);
    }
}
