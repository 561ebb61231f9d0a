//! The one error type: what failed, who failed (client, upstream, gateway),
//! and whether the request may be sent again ([`Retry`]). Every error the
//! gateway itself answers with is rendered as an OpenAI-shaped JSON body
//! with the matching status; an error that asks the client to come back
//! later carries how long (`retry_after`, sent as `Retry-After`).

use std::borrow::Cow;
use std::fmt;

/// Who caused the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The client sent something we refuse (4xx).
    Client,
    /// The upstream failed or misbehaved (502/504).
    Upstream,
    /// The gateway itself (500/503).
    Gateway,
}

/// What went wrong; decides the status and the OpenAI error `type`/`code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    InvalidJson,
    NotFound,
    ModelNotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    HeadersTooLarge,
    /// The client did not send its request head or body in time.
    RequestTimeout,
    /// The client used a feature we do not implement, e.g. a transfer
    /// coding other than chunked (RFC 9112 §6.1: 501).
    NotImplemented,
    UpstreamConnect,
    UpstreamTimeout,
    UpstreamProtocol,
    /// The upstream closed before a response byte arrived.
    UpstreamClosed,
    Overloaded,
    Internal,
    /// No key, or one that is unknown, revoked or expired (401).
    Unauthorized,
    /// The key may not use this model (403).
    Forbidden,
    /// A rate limit was reached (429): a key's or team's request, token or
    /// concurrency limit, or a provider quota every deployment is at. Set
    /// `Error::retry_after` with it.
    RateLimited,
    /// A key's or team's budget is spent (429, OpenAI's `insufficient_quota`).
    BudgetExceeded,
    /// The shared state store cannot be reached and the limit fails closed (503).
    StateUnavailable,
}

/// Whether a request that failed upstream may be sent again, by what is
/// known of how far it got (pingora's `RetryType`, in these terms). An
/// upstream that read a request may have done, and billed, the work: only
/// what it provably never read is re-sent freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The upstream may have acted on the request: it is not re-sent by the
    /// gateway on its own (the retry policy's `on_broken_response` switch
    /// may still, for a configured model's attempts).
    Never,
    /// A reused keep-alive connection ended after the request was written
    /// and before any response byte. Most likely a close that crossed the
    /// request in flight, but the upstream may have read it: only an
    /// idempotent request is re-sent, once, on a fresh connection.
    ReusedOnly,
    /// The upstream cannot have read the request (the connection failed,
    /// or the write failed before the stream took a byte of it): safe to
    /// send again, anywhere.
    Safe,
}

impl From<bool> for Retry {
    /// `true`: [`Retry::Safe`]; `false`: [`Retry::Never`].
    fn from(safe: bool) -> Retry {
        if safe {
            Retry::Safe
        } else {
            Retry::Never
        }
    }
}

/// An error with its provenance. `retry` says whether the request may be
/// sent again (see [`Retry`]).
#[derive(Clone, Debug)]
pub struct Error {
    pub kind: Kind,
    pub source: Source,
    pub retry: Retry,
    pub message: Cow<'static, str>,
    pub param: Option<Cow<'static, str>>,
    /// Whole seconds the client should wait before sending again, written
    /// as `Retry-After` with the error (at least 1). Any kind may carry it;
    /// `Kind::Overloaded` without one is answered `Retry-After: 1`, and
    /// `Kind::RateLimited` should always have one (see [`Error::with_retry_after`]).
    pub retry_after: Option<u32>,
}

impl Error {
    pub fn client(kind: Kind, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            kind,
            source: Source::Client,
            retry: Retry::Never,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// An upstream failure; `retry` is a [`Retry`], or a bool for the two
    /// plain cases (`true`: [`Retry::Safe`], `false`: [`Retry::Never`]).
    pub fn upstream(
        kind: Kind,
        retry: impl Into<Retry>,
        message: impl Into<Cow<'static, str>>,
    ) -> Error {
        Error {
            kind,
            source: Source::Upstream,
            retry: retry.into(),
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn gateway(kind: Kind, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            kind,
            source: Source::Gateway,
            retry: Retry::Never,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Error {
        self.param = Some(param.into());
        self
    }

    /// Asks the client to wait `seconds` (at least 1; capped at `u32::MAX`)
    /// before sending again.
    pub fn with_retry_after(mut self, seconds: u64) -> Error {
        self.retry_after = Some(seconds.clamp(1, u64::from(u32::MAX)) as u32);
        self
    }

    /// The `Retry-After` the answer carries, if any.
    pub fn retry_after_header(&self) -> Option<u32> {
        self.retry_after
            .or((self.kind == Kind::Overloaded).then_some(1))
    }

    pub fn status(&self) -> u16 {
        match self.kind {
            Kind::BadRequest | Kind::InvalidJson => 400,
            Kind::NotFound | Kind::ModelNotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::PayloadTooLarge => 413,
            Kind::HeadersTooLarge => 431,
            Kind::RequestTimeout => 408,
            Kind::NotImplemented => 501,
            Kind::UpstreamConnect | Kind::UpstreamProtocol | Kind::UpstreamClosed => 502,
            Kind::UpstreamTimeout => 504,
            Kind::Overloaded | Kind::StateUnavailable => 503,
            Kind::Internal => 500,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::RateLimited | Kind::BudgetExceeded => 429,
        }
    }

    /// OpenAI's `error.type`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Unauthorized => return "authentication_error",
            Kind::Forbidden => return "permission_error",
            Kind::RateLimited => return "rate_limit_error",
            Kind::BudgetExceeded => return "insufficient_quota",
            _ => {}
        }
        match self.source {
            Source::Client => "invalid_request_error",
            Source::Upstream => "upstream_error",
            Source::Gateway => "server_error",
        }
    }

    /// OpenAI's `error.code`.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self.kind {
            Kind::InvalidJson => "invalid_json",
            Kind::ModelNotFound => "model_not_found",
            Kind::NotFound => "not_found",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::HeadersTooLarge => "headers_too_large",
            Kind::RequestTimeout => "request_timeout",
            Kind::NotImplemented => "not_implemented",
            Kind::UpstreamConnect => "upstream_connect_failed",
            Kind::UpstreamTimeout => "upstream_timeout",
            Kind::UpstreamProtocol => "upstream_protocol_error",
            Kind::UpstreamClosed => "upstream_closed",
            Kind::Overloaded => "overloaded",
            Kind::Unauthorized => "invalid_api_key",
            Kind::Forbidden => "model_not_allowed",
            Kind::RateLimited => "rate_limit_exceeded",
            Kind::BudgetExceeded => "budget_exceeded",
            Kind::StateUnavailable => "state_unavailable",
            Kind::BadRequest | Kind::Internal => return None,
        })
    }

    /// The error's name in `shardgate_errors_total{kind}`: its code, or
    /// what the code leaves unnamed.
    pub fn metric_kind(&self) -> &'static str {
        match self.kind {
            Kind::BadRequest => "bad_request",
            Kind::Internal => "internal",
            _ => self.code().unwrap_or("other"),
        }
    }

    /// Appends `{"error":{"message","type","param","code"}}`.
    pub fn write_openai_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"error\":{\"message\":");
        crate::json::push_json_string(out, &self.message);
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.type_name().as_bytes());
        out.extend_from_slice(b"\",\"param\":");
        match &self.param {
            Some(p) => crate::json::push_json_string(out, p),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"code\":");
        match self.code() {
            Some(c) => {
                out.push(b'"');
                out.extend_from_slice(c.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}}");
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}): {}",
            self.status(),
            self.source,
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_error_shape() {
        let e = Error::client(Kind::ModelNotFound, "The model `x\"y` does not exist")
            .with_param("model");
        let mut out = Vec::new();
        e.write_openai_body(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "The model `x\"y` does not exist");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn upstream_errors_are_5xx_and_null_param() {
        let e = Error::upstream(Kind::UpstreamTimeout, false, "timed out");
        let mut out = Vec::new();
        e.write_openai_body(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
        assert_eq!(e.status(), 504);
        assert_eq!(e.retry_after_header(), None);
    }

    #[test]
    fn rate_limited_is_a_429_with_openai_s_type_and_code_and_a_retry_after() {
        let e = Error::gateway(Kind::RateLimited, "at quota").with_retry_after(0);
        let mut out = Vec::new();
        e.write_openai_body(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(e.status(), 429);
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(e.retry_after_header(), Some(1), "at least a second");
        assert_eq!(e.with_retry_after(37).retry_after_header(), Some(37));
        let o = Error::gateway(Kind::Overloaded, "busy");
        assert_eq!(o.retry_after_header(), Some(1));
        assert_eq!(o.with_retry_after(5).retry_after_header(), Some(5));
    }
}
