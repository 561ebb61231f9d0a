//! The one error type: what failed, who failed (client, upstream, gateway),
//! and whether a retry is safe. Every error the gateway itself answers with
//! is rendered as an OpenAI-shaped JSON body with the matching status.

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
}

/// An error with its provenance. `retryable` means the request can safely be
/// sent again (no byte of it can have been acted upon upstream).
#[derive(Clone, Debug)]
pub struct Error {
    pub kind: Kind,
    pub source: Source,
    pub retryable: bool,
    pub message: Cow<'static, str>,
    pub param: Option<Cow<'static, str>>,
}

impl Error {
    pub fn client(kind: Kind, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            kind,
            source: Source::Client,
            retryable: false,
            message: message.into(),
            param: None,
        }
    }

    pub fn upstream(kind: Kind, retryable: bool, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            kind,
            source: Source::Upstream,
            retryable,
            message: message.into(),
            param: None,
        }
    }

    pub fn gateway(kind: Kind, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            kind,
            source: Source::Gateway,
            retryable: false,
            message: message.into(),
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Error {
        self.param = Some(param.into());
        self
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
            Kind::Overloaded => 503,
            Kind::Internal => 500,
        }
    }

    /// OpenAI's `error.type`.
    pub fn type_name(&self) -> &'static str {
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
            Kind::BadRequest | Kind::Internal => return None,
        })
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
    }
}
