//! What a request asks of the cache, from its `Cache-Control` header
//! (RFC 9111 §5.2.1) and the gateway's own `x-shardgate-cache: bypass`:
//! whether an entry may answer it, how old one may be, and whether its
//! answer may be stored. Sans-IO: header values in, a [`Directive`] out.
//!
//! - `no-store`: neither read nor written.
//! - `no-cache`: not answered from the cache (revalidation means going
//!   upstream), but the fresh answer replaces the entry.
//! - `max-age=N`: an entry no older than N **seconds** answers it.
//! - `x-shardgate-cache: bypass`: the cache is not involved at all.
//!
//! Directive names are case-insensitive; unknown ones are ignored, as the
//! RFC says; a `max-age` whose value is not a whole number of seconds is
//! ignored too (a malformed directive does not stop the cache, nor make it
//! stricter than asked). Where one is repeated, the strictest wins.

/// How the cache treats one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directive {
    /// An entry may answer it.
    pub read: bool,
    /// Its answer may be stored.
    pub write: bool,
    /// The oldest entry (seconds since stored) that may answer it.
    pub max_age: Option<u64>,
}

impl Directive {
    /// What no header asks: read and write, any age within the TTL.
    pub const DEFAULT: Directive = Directive {
        read: true,
        write: true,
        max_age: None,
    };

    /// The cache stays out of it.
    pub const BYPASS: Directive = Directive {
        read: false,
        write: false,
        max_age: None,
    };
}

/// The directive of a request with these `Cache-Control` values (each
/// header line's value, comma-separated lists allowed) and this
/// `x-shardgate-cache` value.
pub fn directive<'a>(
    cache_control: impl IntoIterator<Item = &'a [u8]>,
    gateway_header: Option<&[u8]>,
) -> Directive {
    if gateway_header.is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"bypass")) {
        return Directive::BYPASS;
    }
    let mut d = Directive::DEFAULT;
    for value in cache_control {
        for item in value.split(|&b| b == b',') {
            let item = item.trim_ascii();
            let (name, arg) = match item.iter().position(|&b| b == b'=') {
                Some(eq) => (item[..eq].trim_ascii(), Some(item[eq + 1..].trim_ascii())),
                None => (item, None),
            };
            if name.eq_ignore_ascii_case(b"no-store") {
                d.read = false;
                d.write = false;
            } else if name.eq_ignore_ascii_case(b"no-cache") {
                d.read = false;
            } else if name.eq_ignore_ascii_case(b"max-age") {
                if let Some(age) = arg.and_then(seconds) {
                    d.max_age = Some(d.max_age.map_or(age, |a| a.min(age)));
                }
            }
        }
    }
    d
}

/// A delta-seconds value (RFC 9111 §1.2.2): digits, optionally quoted.
fn seconds(arg: &[u8]) -> Option<u64> {
    let arg = arg
        .strip_prefix(b"\"")
        .and_then(|a| a.strip_suffix(b"\""))
        .unwrap_or(arg);
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // A value too large to hold means "no limit", as the RFC's 2^31 cap does.
    Some(std::str::from_utf8(arg).ok()?.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[&str]) -> Directive {
        directive(values.iter().map(|v| v.as_bytes()), None)
    }

    #[test]
    fn each_directive_in_seconds() {
        assert_eq!(of(&[]), Directive::DEFAULT);
        assert_eq!(
            of(&["max-age=30"]),
            Directive {
                max_age: Some(30),
                ..Directive::DEFAULT
            }
        );
        assert_eq!(
            of(&["No-Cache"]),
            Directive {
                read: false,
                ..Directive::DEFAULT
            }
        );
        assert_eq!(of(&["no-store"]), Directive::BYPASS);
        assert_eq!(
            of(&["public, max-age=\"600\" , no-cache"]),
            Directive {
                read: false,
                write: true,
                max_age: Some(600)
            }
        );
    }

    #[test]
    fn the_strictest_wins_and_malformed_ages_are_ignored() {
        assert_eq!(of(&["max-age=60", "max-age=5"]).max_age, Some(5));
        for bad in [
            "max-age=",
            "max-age=-1",
            "max-age=1.5",
            "max-age=ten",
            "max-age",
        ] {
            assert_eq!(of(&[bad]), Directive::DEFAULT, "{bad}");
        }
        assert_eq!(
            of(&["max-age=99999999999999999999999"]).max_age,
            Some(u64::MAX)
        );
        assert_eq!(of(&["x-unknown=1, private"]), Directive::DEFAULT);
    }

    #[test]
    fn the_gateway_header_bypasses_everything() {
        assert_eq!(
            directive([&b"max-age=5"[..]], Some(b" Bypass ")),
            Directive::BYPASS
        );
        assert_eq!(directive([], Some(b"refresh")), Directive::DEFAULT);
    }
}
