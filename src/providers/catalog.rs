//! The provider catalogue: every provider shardgate knows by name, with its
//! family (wire protocol and auth), default base URL and the environment
//! variables its own SDK uses. Config `kind` values and zero-config both
//! come from this table (the latter through `zero_config`).
//!
//! Invariants: names are unique, lowercase and contain no `/` (they double as
//! provider names and `name/model` prefixes in zero-config); every entry
//! without a default base URL names a variable that supplies one; every
//! entry cites the provider's own page for its URL and auth (`doc`), and a
//! fact that page did not confirm is said so in a comment on the entry.

use std::borrow::Cow;

use crate::config::{ConfigError, ProviderConfig};
use Family::{Anthropic, OpenAi};
use UrlVar::{BaseUrl, OllamaHost, Template};

/// How a provider speaks: request shape, URL layout and auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// OpenAI's API under a base URL ending in the version (`/v1`), with
    /// `Authorization: Bearer`. Also every OpenAI-compatible server.
    OpenAi,
    /// Azure OpenAI: per-deployment paths, `api-version` query, `api-key`.
    Azure,
    /// Anthropic's native Messages API: `x-api-key` and `anthropic-version`.
    Anthropic,
    /// AWS Bedrock's runtime API: the model in the path, Converse and
    /// InvokeModel bodies, SigV4-signed (or a Bedrock API key as Bearer).
    Bedrock,
    /// Google's Gemini API in its own shape (`generateContent`), the model
    /// in the path, the key in `x-goog-api-key`.
    Gemini,
    /// Cohere's v2 API (`/v2/chat`, `/v2/embed`, `/v2/rerank`), Bearer.
    Cohere,
    /// Google Cloud's Vertex AI: Gemini models in the Gemini shape,
    /// Anthropic's in theirs, under a project and location; a service
    /// account's OAuth 2.0 token as Bearer.
    Vertex,
}

/// How an OpenAI-family provider carries its key (the Azure and Anthropic
/// families have their own rules). Rendered into header bytes once, when the
/// provider is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone as the value of this header (Azure's `api-key`).
    Header(&'static str),
}

/// Where a zero-config base URL comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlVar {
    /// The variable holds the base URL as it is.
    BaseUrl(&'static str),
    /// Ollama's `OLLAMA_HOST`: `host[:port]` or a URL without the API path.
    OllamaHost(&'static str),
    /// The variable holds one path segment of the base URL (an account id):
    /// the URL is the template with `{}` replaced by it.
    Template(&'static str, &'static str),
}

impl UrlVar {
    /// The environment variable this reads.
    pub fn var(&self) -> &'static str {
        match *self {
            BaseUrl(n) | OllamaHost(n) | Template(n, _) => n,
        }
    }
}

#[derive(Debug)]
pub struct CatalogEntry {
    /// The `kind` value and zero-config provider name.
    pub name: &'static str,
    pub family: Family,
    /// `None` where every deployment has its own (Azure).
    pub default_base_url: Option<&'static str>,
    /// The SDK's key variable.
    pub key_var: Option<&'static str>,
    /// Local servers need no key and are enabled in zero-config only when one
    /// of their URL variables is set (a key variable alone cannot tell that a
    /// server is running).
    pub local: bool,
    /// Base URL variables, first set wins.
    pub url_vars: &'static [UrlVar],
    /// How the key goes on the wire (read by the OpenAI family only).
    pub auth: Auth,
    /// The provider's own page that states the base URL and the auth.
    pub doc: &'static str,
}

const fn cloud(
    name: &'static str,
    family: Family,
    base_url: &'static str,
    key_var: &'static str,
    url_vars: &'static [UrlVar],
    doc: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        name,
        family,
        default_base_url: Some(base_url),
        key_var: Some(key_var),
        local: false,
        url_vars,
        auth: Auth::Bearer,
        doc,
    }
}

/// A hosted OpenAI-compatible API with `Authorization: Bearer` and no
/// conventional base URL variable.
const fn compatible(
    name: &'static str,
    base_url: &'static str,
    key_var: &'static str,
    doc: &'static str,
) -> CatalogEntry {
    cloud(name, OpenAi, base_url, key_var, &[], doc)
}

const fn local(
    name: &'static str,
    base_url: &'static str,
    key_var: Option<&'static str>,
    url_vars: &'static [UrlVar],
    doc: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        name,
        family: Family::OpenAi,
        default_base_url: Some(base_url),
        key_var,
        local: true,
        url_vars,
        auth: Auth::Bearer,
        doc,
    }
}

// The first seventeen entries (to llamacpp) predate the `doc` field: their
// links are the providers' API reference pages, not re-read for this table.
// From huggingface on, each entry's facts were checked against the page in
// `doc` unless its comment says otherwise.
pub static CATALOG: &[CatalogEntry] = &[
    cloud(
        "openai",
        OpenAi,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        &[BaseUrl("OPENAI_BASE_URL")],
        "https://platform.openai.com/docs/api-reference/authentication",
    ),
    CatalogEntry {
        name: "azure",
        family: Family::Azure,
        default_base_url: None,
        key_var: Some("AZURE_OPENAI_API_KEY"),
        local: false,
        url_vars: &[BaseUrl("AZURE_OPENAI_ENDPOINT")],
        auth: Auth::Bearer,
        doc: "https://learn.microsoft.com/en-us/azure/ai-services/openai/reference",
    },
    // The Anthropic SDK's base URL has no `/v1`; the family adds it.
    cloud(
        "anthropic",
        Anthropic,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        &[BaseUrl("ANTHROPIC_BASE_URL")],
        "https://docs.anthropic.com/en/api/overview",
    ),
    compatible(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "GEMINI_API_KEY",
        "https://ai.google.dev/gemini-api/docs/openai",
    ),
    // The Gemini API in its own shape, beside its OpenAI-compatible
    // endpoint above: the translation reaches what that endpoint lacks
    // (thinking budgets, every part type, Google's usage details).
    // GOOGLE_API_KEY is the other variable Google's SDK reads, so one key
    // does not enable both entries.
    CatalogEntry {
        name: "google",
        family: Family::Gemini,
        default_base_url: Some("https://generativelanguage.googleapis.com"),
        key_var: Some("GOOGLE_API_KEY"),
        local: false,
        url_vars: &[],
        auth: Auth::Header("x-goog-api-key"),
        doc: "https://ai.google.dev/api/generate-content",
    },
    // Vertex AI: the location names the host, so there is no default base
    // URL (config's `region`, else GOOGLE_CLOUD_LOCATION, makes it).
    // GOOGLE_APPLICATION_CREDENTIALS, the key file Google's libraries
    // read, is set on many machines for other services: it never enables
    // Vertex AI by itself in zero-config.
    CatalogEntry {
        name: "vertex",
        family: Family::Vertex,
        default_base_url: None,
        key_var: Some("GOOGLE_APPLICATION_CREDENTIALS"),
        local: false,
        url_vars: &[Template(
            "GOOGLE_CLOUD_LOCATION",
            "https://{}-aiplatform.googleapis.com",
        )],
        auth: Auth::Bearer,
        doc: "https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models/generateContent",
    },
    // Cohere's own v2 API (chat, embed, rerank). CO_API_KEY is the variable
    // Cohere's SDKs read.
    cloud(
        "cohere",
        Family::Cohere,
        "https://api.cohere.com",
        "CO_API_KEY",
        &[],
        "https://docs.cohere.com/reference/chat",
    ),
    compatible(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "https://console.groq.com/docs/openai",
    ),
    compatible(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "https://docs.mistral.ai/api/",
    ),
    compatible(
        "xai",
        "https://api.x.ai/v1",
        "XAI_API_KEY",
        "https://docs.x.ai/docs/api-reference",
    ),
    compatible(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        "https://api-docs.deepseek.com/",
    ),
    compatible(
        "together",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "https://docs.together.ai/docs/openai-api-compatibility",
    ),
    compatible(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "https://docs.fireworks.ai/tools-sdks/openai-compatibility",
    ),
    compatible(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "https://openrouter.ai/docs/api-reference/overview",
    ),
    compatible(
        "cerebras",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
        "https://inference-docs.cerebras.ai/resources/openai",
    ),
    // Perplexity serves its API at the root, without a version segment.
    compatible(
        "perplexity",
        "https://api.perplexity.ai",
        "PERPLEXITY_API_KEY",
        "https://docs.perplexity.ai/api-reference/chat-completions-post",
    ),
    // vLLM checks a key only when started with `--api-key` / VLLM_API_KEY.
    local(
        "vllm",
        "http://localhost:8000/v1",
        Some("VLLM_API_KEY"),
        &[BaseUrl("VLLM_BASE_URL")],
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    local(
        "ollama",
        "http://localhost:11434/v1",
        None,
        &[BaseUrl("OLLAMA_BASE_URL"), OllamaHost("OLLAMA_HOST")],
        "https://github.com/ollama/ollama/blob/main/docs/openai.md",
    ),
    local(
        "lmstudio",
        "http://localhost:1234/v1",
        None,
        &[BaseUrl("LMSTUDIO_BASE_URL")],
        "https://lmstudio.ai/docs/app/api/endpoints/openai",
    ),
    local(
        "llamacpp",
        "http://localhost:8080/v1",
        None,
        &[BaseUrl("LLAMACPP_BASE_URL")],
        "https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
    ),
    // Hugging Face's router in front of its partner providers.
    compatible(
        "huggingface",
        "https://router.huggingface.co/v1",
        "HF_TOKEN",
        "https://huggingface.co/docs/inference-providers/tasks/chat-completion",
    ),
    // NVIDIA NIM's hosted API catalogue.
    compatible(
        "nvidia",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_API_KEY",
        "https://build.nvidia.com/",
    ),
    // The page states the endpoint; Bearer auth and SAMBANOVA_API_KEY come
    // from integrations' docs (Pipecat, LlamaIndex), not a SambaNova page.
    compatible(
        "sambanova",
        "https://api.sambanova.ai/v1",
        "SAMBANOVA_API_KEY",
        "https://docs.sambanova.ai/cloud/docs/resources/glossary",
    ),
    // Nebius Token Factory (formerly AI Studio, api.studio.nebius.com).
    compatible(
        "nebius",
        "https://api.tokenfactory.nebius.com/v1",
        "NEBIUS_API_KEY",
        "https://docs.tokenfactory.nebius.com/api-reference/examples/text-generation",
    ),
    // The page gives the base URL; NOVITA_API_KEY is the name integrations
    // (LiteLLM, Promptfoo) use, not one the page states.
    compatible(
        "novita",
        "https://api.novita.ai/v3/openai",
        "NOVITA_API_KEY",
        "https://novita.ai/docs/guides/llm-api",
    ),
    compatible(
        "hyperbolic",
        "https://api.hyperbolic.xyz/v1",
        "HYPERBOLIC_API_KEY",
        "https://docs.hyperbolic.xyz/docs/rest-api",
    ),
    // DeepInfra's OpenAI API sits under `/v1/openai`. Its page names the
    // key only as a token; DEEPINFRA_API_KEY is the integrations' name.
    compatible(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        "DEEPINFRA_API_KEY",
        "https://deepinfra.com/docs/advanced/openai_api",
    ),
    // Not confirmed from a stored Moonshot page: the base URL (global; China
    // is api.moonshot.cn), Bearer and MOONSHOT_API_KEY come from
    // integrations' docs.
    compatible(
        "moonshot",
        "https://api.moonshot.ai/v1",
        "MOONSHOT_API_KEY",
        "https://platform.moonshot.ai/docs/api/chat",
    ),
    // Alibaba Cloud Model Studio (Qwen), the Singapore region; Beijing is
    // dashscope.aliyuncs.com, set with `base_url`.
    compatible(
        "dashscope",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "DASHSCOPE_API_KEY",
        "https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope",
    ),
    // Not confirmed from a stored Zhipu page: base URL, Bearer and
    // ZHIPUAI_API_KEY come from integrations' docs.
    compatible(
        "zhipu",
        "https://open.bigmodel.cn/api/paas/v4",
        "ZHIPUAI_API_KEY",
        "https://docs.bigmodel.cn/",
    ),
    // Zhipu's international platform. Base URL and Bearer from a provider
    // request citing docs.z.ai; ZAI_API_KEY is not confirmed.
    compatible(
        "zai",
        "https://api.z.ai/api/paas/v4",
        "ZAI_API_KEY",
        "https://docs.z.ai/",
    ),
    // Baseten Model APIs. Its reference names the `Api-Key` scheme, but its
    // own OpenAI SDK examples send Bearer, which Baseten accepts too.
    compatible(
        "baseten",
        "https://inference.baseten.co/v1",
        "BASETEN_API_KEY",
        "https://docs.baseten.co/reference/inference-api/chat-completions",
    ),
    // Workers AI: the account id is in the path, so there is no default
    // base URL; CLOUDFLARE_ACCOUNT_ID fills it in zero-config.
    CatalogEntry {
        name: "cloudflare",
        family: Family::OpenAi,
        default_base_url: None,
        key_var: Some("CLOUDFLARE_API_KEY"),
        local: false,
        url_vars: &[Template(
            "CLOUDFLARE_ACCOUNT_ID",
            "https://api.cloudflare.com/client/v4/accounts/{}/ai/v1",
        )],
        auth: Auth::Bearer,
        doc: "https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility",
    },
    // Bedrock: the URL names the region, so there is no default base URL
    // (config's `region`, else the AWS environment's, makes it; AWS_REGION
    // in zero-config). Only a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK, the
    // variable the AWS SDKs read) enables it in zero-config: AWS key pairs
    // are set on many machines for other reasons. Without an API key,
    // requests are SigV4-signed with the AWS environment's credentials.
    CatalogEntry {
        name: "bedrock",
        family: Family::Bedrock,
        default_base_url: None,
        key_var: Some("AWS_BEARER_TOKEN_BEDROCK"),
        local: false,
        url_vars: &[Template(
            "AWS_REGION",
            "https://bedrock-runtime.{}.amazonaws.com",
        )],
        auth: Auth::Bearer,
        doc: "https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html",
    },
    // GitHub Models. The page confirms the token needs `models: read`; the
    // base URL and Bearer auth are from GitHub's quickstart, not seen on a
    // stored page.
    compatible(
        "github",
        "https://models.github.ai/inference",
        "GITHUB_TOKEN",
        "https://docs.github.com/en/rest/models/inference",
    ),
    // Azure AI Foundry's OpenAI v1 API (`https://NAME.openai.azure.com/openai/v1`
    // or `https://NAME.services.ai.azure.com/openai/v1`): plain OpenAI paths,
    // no deployment segment or api-version, the key in Azure's `api-key`
    // header. AZURE_INFERENCE_CREDENTIAL is the key variable of Foundry's
    // own endpoint samples; AZURE_INFERENCE_ENDPOINT is the endpoint
    // variable of its inference SDK samples (not seen on a stored page),
    // and must hold the `/openai/v1` URL here.
    CatalogEntry {
        name: "foundry",
        family: Family::OpenAi,
        default_base_url: None,
        key_var: Some("AZURE_INFERENCE_CREDENTIAL"),
        local: false,
        url_vars: &[BaseUrl("AZURE_INFERENCE_ENDPOINT")],
        auth: Auth::Header("api-key"),
        doc: "https://learn.microsoft.com/en-us/azure/ai-services/openai/api-version-deprecation",
    },
    // Embeddings and rerank only. Base URL, Bearer and VOYAGE_API_KEY come
    // from Voyage's OpenAPI spec (shipped with its TypeScript SDK) and its
    // docs on mongodb.com; the page in `doc` is the one that spec cites.
    compatible(
        "voyage",
        "https://api.voyageai.com/v1",
        "VOYAGE_API_KEY",
        "https://docs.voyageai.com/reference/embeddings-api",
    ),
    // Embeddings and rerank only. JINA_API_KEY is not confirmed from a
    // stored page (its example leaves the Bearer token blank).
    compatible(
        "jina",
        "https://api.jina.ai/v1",
        "JINA_API_KEY",
        "https://jina.ai/embeddings/",
    ),
    // AI21's SDK reads AI21_API_KEY (the page shows a client built with no
    // key argument; the name itself is not on it).
    compatible(
        "ai21",
        "https://api.ai21.com/studio/v1",
        "AI21_API_KEY",
        "https://docs.ai21.com/reference/jamba-1-6-api-ref",
    ),
    compatible(
        "nscale",
        "https://inference.api.nscale.com/v1",
        "NSCALE_SERVICE_TOKEN",
        "https://docs.nscale.com/docs/use-cases/chat",
    ),
    compatible(
        "featherless",
        "https://api.featherless.ai/v1",
        "FEATHERLESS_API_KEY",
        "https://featherless.ai/docs/api-overview-and-common-options",
    ),
    // The international endpoint (China: api.siliconflow.cn). The key
    // variable name is not confirmed from a stored page.
    compatible(
        "siliconflow",
        "https://api.siliconflow.com/v1",
        "SILICONFLOW_API_KEY",
        "https://docs.siliconflow.com/en/api-reference/chat-completions/chat-completions",
    ),
    // Upstage's documented chat path is `/v1/solar/chat/completions`;
    // UPSTAGE_API_KEY is the integrations' name, not on the page.
    compatible(
        "upstage",
        "https://api.upstage.ai/v1/solar",
        "UPSTAGE_API_KEY",
        "https://developers.upstage.ai/docs/apis/chat",
    ),
    // Scaleway Generative APIs: the secret key of an IAM API key.
    compatible(
        "scaleway",
        "https://api.scaleway.ai/v1",
        "SCW_SECRET_KEY",
        "https://www.scaleway.com/en/developers/api/generative-apis/",
    ),
    // OVHcloud AI Endpoints' unified OpenAI-compatible endpoint.
    compatible(
        "ovhcloud",
        "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1",
        "OVH_AI_ENDPOINTS_ACCESS_TOKEN",
        "https://www.ovhcloud.com/en-in/public-cloud/ai-endpoints/catalog/gpt-oss-20b",
    ),
    // Friendli serverless endpoints. FRIENDLI_TOKEN is not confirmed from a
    // stored page (it calls the key a "Friendli Token").
    compatible(
        "friendli",
        "https://api.friendli.ai/serverless/v1",
        "FRIENDLI_TOKEN",
        "https://friendli.ai/docs/openapi/create-chat-completions",
    ),
];

/// The catalogue entry for a `kind` value.
pub fn lookup(kind: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == kind)
}

/// Every known kind, quoted, for error messages.
pub fn known_kinds() -> String {
    CATALOG
        .iter()
        .map(|e| format!("{:?}", e.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The catalogue entry for a provider's kind and its base URL: the
/// configured one, else the catalogue's default, which a provider with
/// neither a catalogue name nor a `kind` does not get (its key must not go
/// to api.openai.com by accident); Bedrock's is made from its region. The
/// `kind` defaults to the provider's name when that is a catalogue name,
/// else "openai".
pub fn resolve_kind<'a>(
    name: &str,
    p: &'a ProviderConfig,
) -> Result<(&'static CatalogEntry, Option<Cow<'a, str>>), ConfigError> {
    let kind = match &p.kind {
        Some(k) => k.as_str(),
        None if lookup(name).is_some() => name,
        None => {
            let entry = lookup("openai").expect("openai is in the catalogue");
            return Ok((entry, p.base_url.as_deref().map(Cow::Borrowed)));
        }
    };
    let entry = lookup(kind).ok_or_else(|| ConfigError {
        field: format!("providers.{name}.kind"),
        message: format!("unknown provider kind {kind:?} (known: {})", known_kinds()),
    })?;
    if let Some(url) = p.base_url.as_deref().or(entry.default_base_url) {
        return Ok((entry, Some(Cow::Borrowed(url))));
    }
    let derived = match entry.family {
        Family::Bedrock => super::bedrock::region(name, p)?.map(|r| super::bedrock::base_url(&r)),
        Family::Vertex => {
            super::google::vertex::region(name, p)?.map(|r| super::google::vertex::base_url(&r))
        }
        _ => None,
    };
    Ok((entry, derived.map(Cow::Owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_prefix_safe() {
        let mut seen = std::collections::HashSet::new();
        for e in CATALOG {
            assert!(seen.insert(e.name), "{} twice", e.name);
            assert!(
                e.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{}",
                e.name
            );
            assert!(
                e.default_base_url.is_some() || !e.url_vars.is_empty(),
                "{} has no way to get a base URL",
                e.name
            );
            if let Some(u) = e.default_base_url {
                crate::upstream::UpstreamUrl::parse(u).unwrap();
            }
        }
    }

    #[test]
    fn every_entry_cites_its_https_doc_page() {
        assert!(CATALOG.len() >= 35, "{} entries", CATALOG.len());
        for e in CATALOG {
            let rest = e.doc.strip_prefix("https://");
            assert!(
                rest.is_some_and(|r| r.len() > 3 && !r.contains(char::is_whitespace)),
                "{}: doc {:?}",
                e.name,
                e.doc
            );
        }
    }

    #[test]
    fn url_templates_have_one_slot_and_fill_to_a_valid_url() {
        let mut templates = 0;
        for v in CATALOG.iter().flat_map(|e| e.url_vars) {
            if let Template(var, t) = *v {
                templates += 1;
                assert_eq!(t.matches("{}").count(), 1, "{var}: {t}");
                crate::upstream::UpstreamUrl::parse(&t.replace("{}", "acct-1")).unwrap();
            }
        }
        assert!(templates > 0);
    }
}
