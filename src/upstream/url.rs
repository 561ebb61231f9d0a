//! A provider's base URL, split once at configuration time into what the hot
//! path needs: TLS or not, host and port to connect to, the `Host` header and
//! the path prefix that request paths are appended to.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host` or `host:port` when the port is not the scheme's default.
    pub host_header: String,
    /// Path prefix without a trailing slash, e.g. `/v1` (may be empty).
    pub path_prefix: String,
}

impl UpstreamUrl {
    /// Parses `http(s)://host[:port][/path]`. Query strings and user info
    /// are refused: a base URL with them is almost certainly a mistake.
    pub fn parse(url: &str) -> Result<UpstreamUrl, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{url:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{url:?}: credentials in the URL are not supported; use api_key"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("{url:?}: a base URL cannot have a query string"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host_header = if port == default_port {
            authority.host().to_string()
        } else {
            format!("{}:{port}", authority.host())
        };
        let path_prefix = uri.path().trim_end_matches('/').to_string();
        Ok(UpstreamUrl {
            tls,
            host,
            port,
            host_header,
            path_prefix,
        })
    }

    /// Resolves the host. Blocking: call it off the shards (start-up, reload).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no addresses", self.host),
            ));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_base_urls() {
        let u = UpstreamUrl::parse("https://api.openai.com/v1/").unwrap();
        assert_eq!(
            u,
            UpstreamUrl {
                tls: true,
                host: "api.openai.com".into(),
                port: 443,
                host_header: "api.openai.com".into(),
                path_prefix: "/v1".into()
            }
        );
        let u = UpstreamUrl::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (
                u.tls,
                u.port,
                u.host_header.as_str(),
                u.path_prefix.as_str()
            ),
            (false, 8000, "127.0.0.1:8000", "")
        );
        let u = UpstreamUrl::parse("http://[::1]:9/v1").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.host_header, "[::1]:9");
    }

    #[test]
    fn refuses_what_cannot_be_a_base_url() {
        for bad in [
            "ftp://x/v1",
            "localhost:8000",
            "http://u:p@host/v1",
            "http://host/v1?x=1",
            "",
        ] {
            assert!(UpstreamUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
