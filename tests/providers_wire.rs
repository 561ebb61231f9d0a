//! What each provider family puts on the wire, seen by a recording upstream
//! behind the real gateway binary: Azure's deployment path, `api-version` and
//! `api-key`; Anthropic's `/v1`, `x-api-key` and `anthropic-version`;
//! catalogue kinds implied by the provider's name; key-less local servers.
//! The client's own credentials never reach the provider.

mod common;

use common::{each_driver, post, Gateway, GatewayOpts, MockUpstream};

const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

/// `[server]` plus `body`, with `default_provider` first (top-level keys
/// must precede the tables).
fn config(default_provider: &str, body: &str) -> String {
    format!(
        "default_provider = \"{default_provider}\"\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n{body}\n"
    )
}

/// The mock's address as a base URL without a path.
fn root(mock: &MockUpstream) -> String {
    format!("http://{}", mock.addr)
}

const CLIENT_CREDENTIALS: &[&str] = &[
    "authorization: Bearer client-token",
    "api-key: client-key",
    "x-api-key: client-key",
];

#[test]
fn azure_deployment_path_api_version_and_api_key() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let gw = Gateway::start(GatewayOpts::config(
            d,
            config(
                "az",
                &format!(
                    "[providers.az]\nkind = \"azure\"\nbase_url = \"{}/\"\napi_key = \"az-key\"\n\
                     [[models]]\nname = \"fast\"\nprovider = \"az\"\nupstream_model = \"my-deployment\"\n",
                    root(&mock)
                ),
            ),
        ));
        let mut c = gw.connect();
        c.request(post("/v1/chat/completions", CHAT, CLIENT_CREDENTIALS))
            .unwrap();
        let body = CHAT.replace("gpt-4o", "fast");
        c.request(post(
            "/v1/chat/completions?api-version=2025-01-01-preview",
            &body,
            &[],
        ))
        .unwrap();
        let seen = mock.requests();
        assert_eq!(
            seen[0].target,
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(seen[0].header_all("api-key"), ["az-key"]);
        assert!(seen[0].header("authorization").is_none());
        assert!(seen[0].header("x-api-key").is_none());
        // A configured model maps to its deployment; the client's
        // api-version wins over the default.
        assert_eq!(
            seen[1].target,
            "/openai/deployments/my-deployment/chat/completions?api-version=2025-01-01-preview"
        );
        assert_eq!(seen[1].json()["model"], "my-deployment");
    });
}

#[test]
fn anthropic_adds_v1_api_key_and_its_own_version_header() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let gw = Gateway::start(GatewayOpts::config(
            d,
            config(
                "anthropic",
                &format!(
                    "[providers.anthropic]\nbase_url = \"{}\"\napi_key = \"sk-ant\"\n",
                    root(&mock)
                ),
            ),
        ));
        // With no models configured, /v1/models is the default provider's.
        let r = gw
            .connect()
            .request(
                "GET /v1/models HTTP/1.1\r\nhost: t\r\nanthropic-version: 2020-01-01\r\n\
                 x-api-key: client-key\r\nanthropic-beta: tools-1\r\n\r\n",
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = mock.last();
        assert_eq!(seen.target, "/v1/models");
        assert_eq!(seen.header_all("x-api-key"), ["sk-ant"]);
        assert_eq!(seen.header_all("anthropic-version"), ["2023-06-01"]);
        assert_eq!(seen.header_all("anthropic-beta"), ["tools-1"]);
        assert!(seen.header("authorization").is_none());
    });
}

#[test]
fn catalogue_kind_from_the_name_and_keyless_local_servers() {
    each_driver(|d| {
        let groq = MockUpstream::start();
        let ollama = MockUpstream::start();
        let gw = Gateway::start(GatewayOpts::config(
            d,
            config(
                "groq",
                &format!(
                    "[providers.groq]\nbase_url = \"{}\"\napi_key = \"gsk-1\"\n\
                     [providers.ollama]\nbase_url = \"{}\"\n",
                    groq.base_url(),
                    ollama.base_url()
                ),
            ),
        ));
        let mut c = gw.connect();
        let r = c
            .request(post("/v1/chat/completions", CHAT, CLIENT_CREDENTIALS))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let body = CHAT.replace("gpt-4o", "ollama/llama3.2");
        let r = c
            .request(post("/v1/chat/completions", &body, CLIENT_CREDENTIALS))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());

        let g = groq.last();
        assert_eq!(g.target, "/v1/chat/completions");
        assert_eq!(g.header_all("authorization"), ["Bearer gsk-1"]);
        let o = ollama.last();
        assert_eq!(o.target, "/v1/chat/completions");
        assert_eq!(o.json()["model"], "llama3.2");
        for h in ["authorization", "api-key", "x-api-key"] {
            assert!(o.header(h).is_none(), "{h} reached a key-less server");
        }
    });
}
