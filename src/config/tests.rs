//! Tests of parsing, defaults and validation.

use super::*;

/// The whole check, as every caller runs it (config's rules with the
/// providers' plugged in), so these tests see the errors users see.
fn validate(c: &Config) -> Result<(), ConfigError> {
    crate::providers::validate(c)
}

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
    // Addresses are checked as they are parsed.
    let e = Config::from_toml("[server]\nlisten = \"nope\"\n").unwrap_err();
    assert_eq!(e.field, "server.listen");
    assert!(
        e.message.contains("\"nope\" is not an IP:port address"),
        "{e}"
    );
    let e = Config::from_toml("[admin]\nlisten = \"nope\"\n").unwrap_err();
    assert_eq!(e.field, "admin.listen");
    let c = Config::from_toml("[admin]\nlisten = \"\"\n").unwrap();
    assert_eq!(c.admin.listen, None);

    let c = Config::from_toml("[providers.a]\nbase_url = \"ftp://x\"\n").unwrap();
    assert_eq!(validate(&c).unwrap_err().field, "providers.a.base_url");

    let c = Config::from_toml(
        "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"b\"\n",
    )
    .unwrap();
    assert_eq!(validate(&c).unwrap_err().field, "models[0].provider");

    let c = Config::from_toml("[limits]\nmax_body_bytes = 0\n").unwrap();
    assert_eq!(validate(&c).unwrap_err().field, "limits.max_body_bytes");
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
        assert_eq!(validate(&c).unwrap_err().field, format!("limits.{key}"));
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
        let e = validate(&c).unwrap_err();
        assert_eq!(e.field, format!("providers.a.{key}"), "{e}");
        let e = Config::from_toml(&format!("{A}{key} = \"soon\"\n")).unwrap_err();
        assert_eq!(e.field, format!("providers.a.{key}"), "{e}");
    }
    let c = Config::from_toml(&format!("{A}total_timeout_ms = 0\n")).unwrap();
    validate(&c).unwrap();
    let c = Config::from_toml("[upstream]\nidle_timeout_ms = 0\n").unwrap();
    assert_eq!(validate(&c).unwrap_err().field, "upstream.idle_timeout_ms");
}

#[test]
fn incoming_cpu_needs_pinned_shards() {
    let c = Config::from_toml("[server]\nincoming_cpu = true\npin_cores = false\n").unwrap();
    let e = validate(&c).unwrap_err();
    assert_eq!(e.field, "server.incoming_cpu");
    assert!(e.message.contains("pin_cores"), "{e}");
    let c = Config::from_toml("[server]\nincoming_cpu = true\n").unwrap();
    validate(&c).unwrap();
}

#[test]
fn duplicate_model_names_are_refused() {
    let c = Config::from_toml(
        "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"a\"\n[[models]]\nname = \"n\"\nprovider = \"a\"\naliases = [\"m\"]\n",
    )
    .unwrap();
    let e = validate(&c).unwrap_err();
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

#[test]
fn deployments_fallbacks_and_resilience_are_validated_naming_the_field() {
    const P: &str = "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[providers.b]\nbase_url = \"http://127.0.0.1:2/v1\"\n";
    let field = |text: &str| {
        Config::from_toml(&format!("{P}{text}"))
            .map(|c| validate(&c))
            .unwrap()
            .err()
            .map(|e| e.field)
    };
    let ok = "[[models]]\nname = \"m\"\nupstream_model = \"x\"\ndeployments = [{ provider = \"a\", weight = 3, rpm = 60, tpm = 1000 }, { provider = \"b\", upstream_model = \"y\" }]\nstrategy = \"latency\"\nfallbacks = [\"n\"]\ncontext_window_fallbacks = [\"n\"]\n[[models]]\nname = \"n\"\nprovider = \"b\"\n";
    assert_eq!(field(ok), None);
    let c = Config::from_toml(&format!("{P}{ok}")).unwrap();
    assert_eq!(
        c.models[0].resolved_deployments(),
        [("a", "x", 3), ("b", "y", 1)]
    );
    assert_eq!(c.models[1].resolved_deployments(), [("b", "n", 1)]);
    let d = &c.models[0].deployments;
    assert_eq!(
        (d[0].rpm, d[0].tpm, d[1].rpm, d[1].tpm),
        (Some(60), Some(1000), None, None)
    );
    let quota = "[providers.q]\nbase_url = \"http://127.0.0.1:3/v1\"\nrpm = 10\ntpm = 0\n";
    assert_eq!(field(quota).as_deref(), Some("providers.q.tpm"));
    assert_eq!(field(&quota.replace("tpm = 0", "tpm = 5")), None);
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
            "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", rpm = 0 }]\n",
            "models[0].deployments[0].rpm",
        ),
        (
            "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\" }, { provider = \"b\", tpm = 0 }]\n",
            "models[0].deployments[1].tpm",
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
fn upstream_response_and_lingering_limits_default_and_parse() {
    let d = LimitsConfig::default();
    assert_eq!(d.max_response_head_bytes, 64 * 1024);
    assert_eq!(d.max_response_headers, 256);
    assert_eq!(d.max_held_body_bytes, 256 * 1024);
    assert_eq!(d.max_lingering_connections, 1024);
    let c = Config::from_toml(
        "[limits]\nmax_response_head_bytes = 2048\nmax_response_headers = 10\n\
         max_held_body_bytes = 0\nmax_lingering_connections = 7\n",
    )
    .unwrap();
    validate(&c).unwrap();
    let l = &c.limits;
    assert_eq!(
        (
            l.max_response_head_bytes,
            l.max_response_headers,
            l.max_held_body_bytes,
            l.max_lingering_connections
        ),
        (2048, 10, 0, 7)
    );
    for (text, field) in [
        (
            "max_response_head_bytes = 0",
            "limits.max_response_head_bytes",
        ),
        (
            "max_response_head_bytes = 63",
            "limits.max_response_head_bytes",
        ),
        ("max_response_headers = 0", "limits.max_response_headers"),
    ] {
        let c = Config::from_toml(&format!("[limits]\n{text}\n")).unwrap();
        assert_eq!(validate(&c).unwrap_err().field, field, "{text}");
    }
}

#[test]
fn syntax_errors_say_where() {
    let e = Config::from_toml("[limits]\nmax_headers = 1\n[server\n").unwrap_err();
    assert!(e.message.contains("line 3, column 8"), "{e}");
    assert!(!e.message.contains('\n'), "{e:?}");
    let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
    assert!(e.message.contains("line 3, column 1"), "{e}");
    // Columns count characters, not bytes.
    let e = Config::from_toml("# é\n[server]\nshards = \"é\"\n").unwrap_err();
    assert!(e.message.contains("line 3, column 10"), "{e}");
}

#[test]
fn type_errors_are_in_plain_words() {
    for (text, field, words) in [
        (
            "[upstream]\nconnect_timeout_ms = \"soon\"\n",
            "upstream.connect_timeout_ms",
            "expected a whole number",
        ),
        (
            "[server]\nshards = -1\n",
            "server.shards",
            "expected a whole number",
        ),
        (
            "[server]\nshards = 1.5\n",
            "server.shards",
            "expected a whole number",
        ),
        (
            "[resilience]\nmax_retries = \"x\"\n",
            "resilience.max_retries",
            "expected a whole number",
        ),
        (
            "[resilience]\nretry_budget_ratio = \"x\"\n",
            "resilience.retry_budget_ratio",
            "expected a number",
        ),
        (
            "[server]\npin_cores = 1\n",
            "server.pin_cores",
            "expected true or false",
        ),
        (
            "[server]\ntrusted_proxies = \"10.0.0.0/8\"\n",
            "server.trusted_proxies",
            "expected a list",
        ),
        ("server = 3\n", "server", "expected a table"),
    ] {
        let e = Config::from_toml(text).unwrap_err();
        assert_eq!(e.field, field, "{text}: {e}");
        assert!(e.message.contains(words), "{text}: {e}");
        for rust in ["usize", "u64", "u32", "f64", "bool", "struct"] {
            assert!(!e.message.contains(rust), "{text}: {e}");
        }
    }
}

#[test]
fn millisecond_keys_are_durations_once_parsed() {
    use std::time::Duration;
    let c = Config::from_toml(
        "[server]\ndrain_timeout_ms = 1500\n[limits]\nheader_read_timeout_ms = 250\n\
         [resilience]\nbackoff_base_ms = 7\n\
         [providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nidle_timeout_ms = 300\n",
    )
    .unwrap();
    assert_eq!(c.server.drain_timeout_ms, Duration::from_millis(1500));
    assert_eq!(c.limits.header_read_timeout_ms, Duration::from_millis(250));
    assert_eq!(c.resilience.backoff_base_ms, Duration::from_millis(7));
    let a = &c.providers["a"];
    assert_eq!(a.idle_timeout_ms, Some(Duration::from_millis(300)));
    assert_eq!(a.connect_timeout_ms, None);
    assert_eq!(
        UpstreamConfig::default().connect_timeout_ms,
        Duration::from_secs(5)
    );
}

#[test]
fn the_redis_backend_needs_a_url_and_reads_its_policies() {
    let ok = |_: &str, _: &ProviderConfig| Ok(());
    let mut c = Config::from_toml("[state]\nbackend = \"redis\"\n").unwrap();
    let e = c.validate_with(ok).unwrap_err();
    assert_eq!(e.field, "state.redis_url");
    c.resolve_keys(|k| (k == "SHARDGATE_REDIS_URL").then(|| "redis://10.0.0.5:6380".into()))
        .unwrap();
    assert_eq!(c.state.redis_url.as_deref(), Some("redis://10.0.0.5:6380"));
    c.validate_with(ok).unwrap();
    assert_eq!(c.state.on_unavailable.budget, Unavailable::FailClosed);
    assert_eq!(c.state.on_unavailable.rate_limit, Unavailable::FailOpen);
    assert_eq!(
        c.state.unavailable_wait_ms,
        std::time::Duration::from_millis(50)
    );
    let c = Config::from_toml(
        "[state]\nbackend = \"redis\"\nredis_url = \"redis://h\"\n\
         on_unavailable = { budget = \"fail_open\", rate_limit = \"fail_closed\" }\n",
    )
    .unwrap();
    assert_eq!(c.state.on_unavailable.budget, Unavailable::FailOpen);
    assert_eq!(c.state.on_unavailable.rate_limit, Unavailable::FailClosed);
    let e = Config::from_toml("[state]\non_unavailable = { budget = \"maybe\" }\n").unwrap_err();
    assert!(e.to_string().contains("fail_closed"), "{e}");
    let c = Config::from_toml("[state]\nbackend = \"etcd\"\n").unwrap();
    assert_eq!(c.validate_with(ok).unwrap_err().field, "state.backend");
    let c = Config::from_toml("[state]\nbackend = \"redis\"\nredis_url = \"http://h\"\n").unwrap();
    assert_eq!(c.validate_with(ok).unwrap_err().field, "state.redis_url");
    let c = Config::from_toml("[state]\nlease_ttl_ms = 150\n").unwrap();
    assert_eq!(c.validate_with(ok).unwrap_err().field, "state.lease_ttl_ms");
}

#[test]
fn prices_take_cache_read_and_write_rates() {
    let c = Config::from_toml(
        "[[prices]]\nmodel = \"a\"\ninput = 1.0\noutput = 2.0\ncache_read = 0.1\ncache_write = 1.25\n\n\
         [[prices]]\nmodel = \"b\"\ninput = 1.0\noutput = 2.0\ncached_input = 0.5\n",
    )
    .unwrap();
    assert_eq!(
        (c.prices[0].cached_input, c.prices[0].cache_write),
        (Some(0.1), Some(1.25)),
        "cache_read is cached_input's other name"
    );
    assert_eq!(
        (c.prices[1].cached_input, c.prices[1].cache_write),
        (Some(0.5), None)
    );
    validate(&c).unwrap();
    let c = Config::from_toml(
        "[[prices]]\nmodel = \"a\"\ninput = 1.0\noutput = 2.0\ncache_write = -1.0\n",
    )
    .unwrap();
    assert_eq!(validate(&c).unwrap_err().field, "prices[0]");
    let c = Config::from_toml(
        "[[prices]]\nmodel = \"a\"\ninput = 1.0\noutput = 2.0\ncache_write_1h = nan\n",
    )
    .unwrap();
    assert_eq!(validate(&c).unwrap_err().field, "prices[0]");
}
