//! The shipped example config documents every option: it must parse (no
//! unknown keys), validate, and name every field the config structs have.

use shardgate::config::Config;

#[test]
fn example_config_parses_and_validates() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/shardgate.example.toml"
    ))
    .unwrap();
    // Every documented default matches the code's default.
    let d = Config::default();
    let mut config = Config::from_toml(&text).unwrap();
    config
        .resolve_keys(|_| Some("sk-example-0123456789".into()))
        .unwrap();
    shardgate::providers::validate(&config).unwrap();
    assert_eq!(config.models.len(), 2);
    assert_eq!((config.keys.len(), config.teams.len()), (1, 1));
    assert_eq!(
        config.governance.default_max_output_tokens,
        d.governance.default_max_output_tokens
    );
    assert_eq!(config.state.flush_interval_ms, d.state.flush_interval_ms);
    // Every [tracing] option is shown, at its default (tracing off).
    assert_eq!(config.tracing, d.tracing);

    assert_eq!(config.server.listen, d.server.listen);
    let (log, dlog) = (&config.access_log, &d.access_log);
    assert_eq!(
        (&log.target, &log.path, log.max_bytes, log.keep),
        (&dlog.target, &dlog.path, dlog.max_bytes, dlog.keep)
    );
    assert_eq!(config.admin.listen, d.admin.listen);
    assert_eq!(config.server.incoming_cpu, d.server.incoming_cpu);
    assert_eq!(config.limits.max_body_bytes, d.limits.max_body_bytes);
    assert_eq!(config.limits.max_head_bytes, d.limits.max_head_bytes);
    assert_eq!(config.limits.max_headers, d.limits.max_headers);
    assert_eq!(
        config.limits.header_read_timeout_ms,
        d.limits.header_read_timeout_ms
    );
    assert_eq!(
        config.limits.body_read_timeout_ms,
        d.limits.body_read_timeout_ms
    );
    assert_eq!(
        config.limits.keepalive_idle_timeout_ms,
        d.limits.keepalive_idle_timeout_ms
    );
    assert_eq!(
        config.limits.max_connections_per_shard,
        d.limits.max_connections_per_shard
    );
    assert_eq!(
        config.limits.max_in_flight_per_upstream,
        d.limits.max_in_flight_per_upstream
    );
    assert_eq!(
        config.upstream.first_byte_timeout_ms,
        d.upstream.first_byte_timeout_ms
    );
    assert_eq!(
        config.upstream.connect_timeout_ms,
        d.upstream.connect_timeout_ms
    );
    assert_eq!(config.upstream.idle_timeout_ms, d.upstream.idle_timeout_ms);
    assert_eq!(
        config.upstream.total_timeout_ms,
        d.upstream.total_timeout_ms
    );
    assert_eq!(config.upstream.pool_max_idle, d.upstream.pool_max_idle);
    for (got, want) in [
        (
            config.limits.max_response_head_bytes,
            d.limits.max_response_head_bytes,
        ),
        (
            config.limits.max_response_headers,
            d.limits.max_response_headers,
        ),
        (
            config.limits.max_held_body_bytes,
            d.limits.max_held_body_bytes,
        ),
        (
            config.limits.max_lingering_connections,
            d.limits.max_lingering_connections,
        ),
    ] {
        assert_eq!(got, want);
    }
    // The per-provider override shown resolves over [upstream].
    let local = shardgate::upstream::timeouts::Timeouts::for_provider(
        &config.providers["local"],
        &config.upstream,
    );
    assert_eq!(local.first_byte.as_millis(), 600_000);
    assert_eq!(
        local.idle.as_millis(),
        config.upstream.idle_timeout_ms.as_millis()
    );
}
