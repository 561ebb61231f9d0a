//! Tests of parsing, defaults, the environment fallback and validation.

use super::*;

#[test]
fn forwarding_trusts_no_one_by_default_and_parses_address_blocks() {
    let d = ServerConfig::default();
    assert_eq!(d.forwarded_for, ForwardedFor::Append);
    assert!(d.trusted_proxies.is_empty());
    let c = Config::from_toml(
        "[server]\nforwarded_for = \"off\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"fd00::/8\", \"192.168.1.7\"]\n",
    )
    .unwrap();
    assert_eq!(c.server.forwarded_for, ForwardedFor::Off);
    let nets = &c.server.trusted_proxies;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(nets[0].contains(ip("10.255.0.1")));
    assert!(nets[0].contains(ip("::ffff:10.1.1.1")));
    assert!(!nets[0].contains(ip("11.0.0.1")));
    assert!(nets[1].contains(ip("::1")) && !nets[1].contains(ip("::2")));
    assert!(nets[2].contains(ip("fd12::1")) && !nets[2].contains(ip("fe80::1")));
    assert!(nets[3].contains(ip("192.168.1.7")) && !nets[3].contains(ip("192.168.1.8")));
    assert!(!nets[3].contains(ip("::1")));
    let all: IpNet = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("1.2.3.4")) && !all.contains(ip("::2")));
    for bad_net in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "nope",
        "10.0.0/8",
    ] {
        let e = Config::from_toml(&format!("[server]\ntrusted_proxies = [\"{bad_net}\"]\n"))
            .unwrap_err();
        assert_eq!(e.field, "server.trusted_proxies", "{bad_net}: {e}");
    }
    let e = Config::from_toml("[server]\nforwarded_for = \"replace\"\n").unwrap_err();
    assert_eq!(e.field, "server.forwarded_for", "{e}");
}

#[test]
fn defaults_listen_on_loopback_8080() {
    let c = Config::from_env(|_| None);
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert!(c.providers.is_empty());
    c.validate().unwrap();
}

#[test]
fn openai_enabled_by_key_variable_with_base_url_override() {
    let c = Config::from_env(|k| match k {
        "OPENAI_API_KEY" => Some("sk-test".into()),
        "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".into()),
        _ => None,
    });
    let p = &c.providers["openai"];
    assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
    assert_eq!(p.api_key.as_deref(), Some("sk-test"));
    assert_eq!(c.default_provider_name(), Some("openai"));
}

#[test]
fn a_bad_value_is_reported_under_its_key() {
    let e = Config::from_toml("[upstream]\nconnect_timeout_ms = \"soon\"\n").unwrap_err();
    assert_eq!(e.field, "upstream.connect_timeout_ms", "{e}");
    let e = Config::from_toml("[server]\nshards = -1\n").unwrap_err();
    assert_eq!(e.field, "server.shards", "{e}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
    assert!(e.message.contains("lisen"), "{e}");
    assert_eq!(e.field, "server.lisen");
}

#[test]
fn validation_names_the_field() {
    let c = Config::from_toml("[server]\nlisten = \"nope\"\n").unwrap();
    assert_eq!(c.validate().unwrap_err().field, "server.listen");

    let c = Config::from_toml("[providers.a]\nbase_url = \"ftp://x\"\n").unwrap();
    assert_eq!(c.validate().unwrap_err().field, "providers.a.base_url");

    let c = Config::from_toml(
        "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"b\"\n",
    )
    .unwrap();
    assert_eq!(c.validate().unwrap_err().field, "models[0].provider");

    let c = Config::from_toml("[limits]\nmax_body_bytes = 0\n").unwrap();
    assert_eq!(c.validate().unwrap_err().field, "limits.max_body_bytes");
    for key in [
        "header_read_timeout_ms",
        "body_read_timeout_ms",
        "keepalive_idle_timeout_ms",
        "client_write_timeout_ms",
        "max_connections_per_shard",
        "max_in_flight_per_upstream",
        "max_translated_messages",
        "max_translated_blocks",
    ] {
        let c = Config::from_toml(&format!("[limits]\n{key} = 0\n")).unwrap();
        assert_eq!(c.validate().unwrap_err().field, format!("limits.{key}"));
    }
}

#[test]
fn provider_timeouts_are_validated_naming_the_field() {
    const A: &str = "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n";
    for key in [
        "connect_timeout_ms",
        "first_byte_timeout_ms",
        "idle_timeout_ms",
    ] {
        let c = Config::from_toml(&format!("{A}{key} = 0\n")).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, format!("providers.a.{key}"), "{e}");
        let e = Config::from_toml(&format!("{A}{key} = \"soon\"\n")).unwrap_err();
        assert_eq!(e.field, format!("providers.a.{key}"), "{e}");
    }
    let c = Config::from_toml(&format!("{A}total_timeout_ms = 0\n")).unwrap();
    c.validate().unwrap();
    let c = Config::from_toml("[upstream]\nidle_timeout_ms = 0\n").unwrap();
    assert_eq!(c.validate().unwrap_err().field, "upstream.idle_timeout_ms");
}

#[test]
fn duplicate_model_names_are_refused() {
    let c = Config::from_toml(
        "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"a\"\n[[models]]\nname = \"n\"\nprovider = \"a\"\naliases = [\"m\"]\n",
    )
    .unwrap();
    let e = c.validate().unwrap_err();
    assert_eq!(e.field, "models[1].name");
}

#[test]
fn api_key_env_must_exist() {
    let mut c = Config::from_toml(
        "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"NOPE_KEY\"\n",
    )
    .unwrap();
    let e = c.resolve_keys(|_| None).unwrap_err();
    assert_eq!(e.field, "providers.a.api_key_env");
    c.resolve_keys(|_| Some("k".into())).unwrap();
    assert_eq!(c.providers["a"].api_key.as_deref(), Some("k"));
}

/// A fake environment from pairs.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn every_hosted_provider_is_enabled_by_its_key_variable_alone() {
    for entry in catalog::CATALOG.iter().filter(|e| !e.local) {
        let key_var = entry.key_var.unwrap();
        let c = Config::from_env(env(&[(key_var, "k-1")]));
        if entry.family == Family::Azure {
            assert!(c.providers.is_empty(), "azure needs its endpoint too");
            continue;
        }
        c.validate().unwrap();
        let p = &c.providers[entry.name];
        assert_eq!(p.kind.as_deref(), Some(entry.name));
        assert_eq!(p.base_url.as_deref(), entry.default_base_url);
        assert_eq!(p.api_key.as_deref(), Some("k-1"));
        assert_eq!(
            c.providers.len(),
            1,
            "{key_var} enables only {}",
            entry.name
        );
    }
}

#[test]
fn zero_config_catalogue_urls() {
    let c = Config::from_env(env(&[
        ("GEMINI_API_KEY", "g"),
        ("GROQ_API_KEY", "q"),
        ("PERPLEXITY_API_KEY", "p"),
        ("ANTHROPIC_API_KEY", "a"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
    ]));
    c.validate().unwrap();
    let url = |n: &str| c.providers[n].base_url.clone().unwrap();
    assert_eq!(
        url("gemini"),
        "https://generativelanguage.googleapis.com/v1beta/openai"
    );
    assert_eq!(url("groq"), "https://api.groq.com/openai/v1");
    assert_eq!(url("perplexity"), "https://api.perplexity.ai");
    assert_eq!(url("anthropic"), "http://127.0.0.1:9");
    // Several providers and none named the default: bare names are 404.
    assert_eq!(c.default_provider_name(), None);
}

#[test]
fn azure_needs_key_and_endpoint_and_takes_the_api_version() {
    let c = Config::from_env(env(&[
        ("AZURE_OPENAI_API_KEY", "az"),
        ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
        ("OPENAI_API_VERSION", "2025-01-01-preview"),
    ]));
    c.validate().unwrap();
    let p = &c.providers["azure"];
    assert_eq!(p.kind.as_deref(), Some("azure"));
    assert_eq!(p.base_url.as_deref(), Some("https://res.openai.azure.com/"));
    assert_eq!(p.api_version.as_deref(), Some("2025-01-01-preview"));
    let c = Config::from_env(env(&[(
        "AZURE_OPENAI_ENDPOINT",
        "https://r.openai.azure.com",
    )]));
    assert!(c.providers.is_empty());
}

#[test]
fn local_servers_only_by_their_url_variable() {
    let c = Config::from_env(env(&[("VLLM_API_KEY", "v")]));
    assert!(
        c.providers.is_empty(),
        "a key alone says nothing about a server"
    );
    let c = Config::from_env(env(&[
        ("VLLM_BASE_URL", "http://gpu:8000/v1"),
        ("VLLM_API_KEY", "v"),
        ("OLLAMA_HOST", "0.0.0.0:11500"),
        ("LMSTUDIO_BASE_URL", "http://127.0.0.1:1234/v1"),
        ("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1"),
    ]));
    c.validate().unwrap();
    let p = |n: &str| &c.providers[n];
    assert_eq!(p("vllm").base_url.as_deref(), Some("http://gpu:8000/v1"));
    assert_eq!(p("vllm").api_key.as_deref(), Some("v"));
    assert_eq!(
        p("ollama").base_url.as_deref(),
        Some("http://127.0.0.1:11500/v1")
    );
    assert_eq!(p("ollama").api_key, None);
    assert_eq!(p("lmstudio").kind.as_deref(), Some("lmstudio"));
    assert_eq!(p("llamacpp").kind.as_deref(), Some("llamacpp"));
    // OLLAMA_BASE_URL is taken as is and wins over OLLAMA_HOST.
    let c = Config::from_env(env(&[
        ("OLLAMA_BASE_URL", "http://box:1/v1"),
        ("OLLAMA_HOST", "other"),
    ]));
    assert_eq!(
        c.providers["ollama"].base_url.as_deref(),
        Some("http://box:1/v1")
    );
}

#[test]
fn kind_defaults_to_a_catalogue_name_and_brings_its_base_url() {
    let c = Config::from_toml(
        "[providers.groq]\napi_key = \"k\"\n[providers.mine]\nkind = \"mistral\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    let (entry, url) = c.providers["groq"].resolve_kind("groq").unwrap();
    assert_eq!(entry.name, "groq");
    assert_eq!(url, Some("https://api.groq.com/openai/v1"));
    let (entry, url) = c.providers["mine"].resolve_kind("mine").unwrap();
    assert_eq!(entry.name, "mistral");
    assert_eq!(url, Some("https://api.mistral.ai/v1"));
    // A custom name is OpenAI-compatible and needs a base URL.
    let c = Config::from_toml("[providers.mine]\napi_key = \"k\"\n").unwrap();
    assert_eq!(c.validate().unwrap_err().field, "providers.mine.base_url");
}

#[test]
fn deployments_fallbacks_and_resilience_are_validated_naming_the_field() {
    const P: &str = "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[providers.b]\nbase_url = \"http://127.0.0.1:2/v1\"\n";
    let field = |text: &str| {
        Config::from_toml(&format!("{P}{text}"))
            .unwrap()
            .validate()
            .err()
            .map(|e| e.field)
    };
    let ok = "[[models]]\nname = \"m\"\nupstream_model = \"x\"\ndeployments = [{ provider = \"a\", weight = 3 }, { provider = \"b\", upstream_model = \"y\" }]\nstrategy = \"latency\"\nfallbacks = [\"n\"]\ncontext_window_fallbacks = [\"n\"]\n[[models]]\nname = \"n\"\nprovider = \"b\"\n";
    assert_eq!(field(ok), None);
    let c = Config::from_toml(&format!("{P}{ok}")).unwrap();
    assert_eq!(
        c.models[0].resolved_deployments(),
        [("a", "x", 3), ("b", "y", 1)]
    );
    assert_eq!(c.models[1].resolved_deployments(), [("b", "n", 1)]);
    for (text, want) in [
        ("[[models]]\nname = \"m\"\n", "models[0].provider"),
        (
            "[[models]]\nname = \"m\"\nprovider = \"a\"\ndeployments = [{ provider = \"a\" }]\n",
            "models[0].deployments",
        ),
        (
            "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\" }, { provider = \"z\" }]\n",
            "models[0].deployments[1].provider",
        ),
        (
            "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", weight = 0 }]\n",
            "models[0].deployments[0].weight",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"a\"\nstrategy = \"random\"\n",
            "models[0].strategy",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"a\"\nfallbacks = [\"nope\"]\n",
            "models[0].fallbacks",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"a\"\ncontext_window_fallbacks = [\"m\"]\n",
            "models[0].context_window_fallbacks",
        ),
        ("[resilience]\nbackoff_base_ms = 0\n", "resilience.backoff_base_ms"),
        (
            "[resilience]\nbackoff_base_ms = 100\nbackoff_cap_ms = 10\n",
            "resilience.backoff_cap_ms",
        ),
        (
            "[resilience]\nretry_budget_ratio = -1.0\n",
            "resilience.retry_budget_ratio",
        ),
        (
            "[resilience]\nbreaker_consecutive_failures = 0\n",
            "resilience.breaker_consecutive_failures",
        ),
        (
            "[resilience]\nbreaker_base_ejection_ms = 5000\nbreaker_max_ejection_ms = 10\n",
            "resilience.breaker_max_ejection_ms",
        ),
    ] {
        assert_eq!(field(text).as_deref(), Some(want), "{text}");
    }
    // Unknown keys in a deployment are refused at parse time.
    assert!(Config::from_toml(&format!(
        "{P}[[models]]\nname = \"m\"\ndeployments = [{{ provider = \"a\", wieght = 2 }}]\n"
    ))
    .is_err());
}

#[test]
fn provider_validation_names_the_field() {
    let err = |toml: &str| Config::from_toml(toml).unwrap().validate().unwrap_err();
    let e = err("[providers.a]\nkind = \"bedrock\"\n");
    assert_eq!(e.field, "providers.a.kind");
    assert!(
        e.message.contains("\"azure\"") && e.message.contains("\"ollama\""),
        "{e}"
    );
    assert_eq!(
        err("[providers.a]\nkind = \"azure\"\n").field,
        "providers.a.base_url"
    );
    assert_eq!(
        err("[providers.openai]\napi_version = \"2024-10-21\"\n").field,
        "providers.openai.api_version"
    );
    assert_eq!(
        err("[providers.azure]\nbase_url = \"https://r\"\napi_version = \"x&y=1\"\n").field,
        "providers.azure.api_version"
    );
    assert_eq!(
        err("[providers.openai]\napi_key = \"sk\\r\\nx-evil: 1\"\n").field,
        "providers.openai.api_key"
    );
    assert_eq!(
        err("[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\ntls_insecure_skip_verify = true\n").field,
        "providers.a.tls_insecure_skip_verify"
    );
    let e = err("[providers.a]\nbase_url = \"https://h/v1\"\nca_file = \"/nonexistent/ca.pem\"\n");
    assert_eq!(e.field, "providers.a.ca_file");
    assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
    assert_eq!(
        err("[providers.a]\nbase_url = \"https://h/v1\"\nca_file = \"/x\"\ntls_insecure_skip_verify = true\n").field,
        "providers.a.tls_insecure_skip_verify"
    );
}
