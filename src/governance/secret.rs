//! Virtual key secrets: made from the system's CSPRNG, shown once, stored
//! only as their SHA-256. A secret is `sk-sg-` and 43 base64url characters
//! (256 random bits), so it is told apart from provider keys in logs and
//! secret scanners.

use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

pub const PREFIX: &str = "sk-sg-";

/// The SHA-256 of a presented secret.
pub fn hash(secret: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, secret).as_ref());
    out
}

/// A new secret, or `None` if the system cannot give random bytes.
pub fn generate() -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!("{PREFIX}{}", base64url(&bytes)))
}

/// A short random identifier (`key_…`, `team_…`): 12 base64url characters.
pub fn new_id(prefix: &str) -> Option<String> {
    let mut bytes = [0u8; 9];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!("{prefix}_{}", base64url(&bytes)))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 64-digit hex SHA-256, as `[[keys]] key_sha256` gives it.
pub fn from_hex(hex: &str) -> Option<[u8; 32]> {
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_vector() {
        // FIPS 180-2 example: SHA-256("abc").
        assert_eq!(
            to_hex(&hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(from_hex(&to_hex(&hash(b"abc"))), Some(hash(b"abc")));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn secrets_are_long_distinct_and_url_safe() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert!(a[PREFIX.len()..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(base64url(b"\xff\xff\xff"), "____");
        assert_eq!(base64url(b"Ma"), "TWE");
        assert!(new_id("key").unwrap().starts_with("key_"));
    }
}
