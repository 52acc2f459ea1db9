//! Identifiers and secrets made of random bits, and how a secret is shown in logs.

/// `bytes` random bytes as lowercase hex (16 bytes: 128 bits).
pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A stream key: 160 random bits, so guessing one is hopeless.
pub fn new_stream_key() -> String {
    random_hex(20)
}

/// The first characters of a secret, for logs.
pub fn redact(secret: &str) -> String {
    format!("{}…", secret.chars().take(4).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_asked_length_and_secrets_are_cut_in_logs() {
        let id = random_hex(8);
        assert_eq!(id.len(), 16);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(new_stream_key(), new_stream_key());
        assert_eq!(redact("abcdefgh"), "abcd…");
        assert_eq!(redact("ab"), "ab…");
    }
}
