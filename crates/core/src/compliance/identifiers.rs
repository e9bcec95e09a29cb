//! Buyer identifiers (customs codes, national ids): sealed at rest, masked on display,
//! keyed for cumulative limits without keeping them in clear.
//!
//! A cart or order keeps `Sealed` values: ChaCha20-Poly1305 with a random nonce, under
//! a key derived from the engine's data key. `Debug` never prints them, events never
//! carry them, and only the last characters are ever returned to a client.

use std::collections::BTreeMap;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{CoreError, CoreResult};

/// An encrypted identifier (`v1:` + base64 of nonce and ciphertext).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// Identifiers a buyer gave, by kind (`kr_pccc`), sealed.
pub type SealedIdentifiers = BTreeMap<String, Sealed>;

/// Seals and opens identifiers, and derives the lookup key of a buyer.
#[derive(Clone)]
pub struct IdentifierVault {
    cipher: ChaCha20Poly1305,
    lookup_key: Vec<u8>,
}

impl std::fmt::Debug for IdentifierVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentifierVault(..)")
    }
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl IdentifierVault {
    /// A vault whose keys are derived from `secret` (32 bytes or more). Changing the
    /// secret makes existing sealed values unreadable: rotate by re-sealing.
    pub fn new(secret: &[u8]) -> Self {
        let key = derive(secret, b"jangteo/identifiers/seal/v1");
        IdentifierVault {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            lookup_key: derive(secret, b"jangteo/identifiers/lookup/v1").to_vec(),
        }
    }

    /// Encrypts a value; the kind is bound as associated data so a sealed customs code
    /// cannot be passed off as another kind.
    pub fn seal(&self, kind: &str, value: &str) -> CoreResult<Sealed> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| CoreError::Internal(format!("no randomness: {e}")))?;
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                chacha20poly1305::aead::Payload {
                    msg: value.as_bytes(),
                    aad: kind.as_bytes(),
                },
            )
            .map_err(|_| CoreError::Internal("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(ct);
        Ok(Sealed(format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        )))
    }

    /// Decrypts a value sealed under `kind`.
    pub fn open(&self, kind: &str, sealed: &Sealed) -> CoreResult<String> {
        let bad = || CoreError::Internal(format!("unreadable sealed {kind} (wrong data key?)"));
        let raw = sealed.0.strip_prefix("v1:").ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(raw)
            .map_err(|_| bad())?;
        if bytes.len() < 12 {
            return Err(bad());
        }
        let (nonce, ct) = bytes.split_at(12);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                chacha20poly1305::aead::Payload {
                    msg: ct,
                    aad: kind.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(pt).map_err(|_| bad())
    }

    /// Opens every identifier of a cart or order.
    pub fn open_all(&self, ids: &SealedIdentifiers) -> CoreResult<BTreeMap<String, String>> {
        ids.iter()
            .map(|(k, v)| Ok((k.clone(), self.open(k, v)?)))
            .collect()
    }

    /// A stable, non-reversible key for a buyer's identifier, to add up their past
    /// orders (cumulative limits) without storing the identifier in clear.
    pub fn lookup_key(&self, kind: &str, normalized: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.lookup_key).expect("HMAC takes any key");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(normalized.as_bytes());
        let bytes = mac.finalize().into_bytes();
        format!("{kind}:{}", hex(&bytes[..16]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kinds of identifiers given in a request, for `Debug` output that must never
/// show their values.
pub fn kinds_only<V>(given: &Option<BTreeMap<String, V>>) -> Option<Vec<&str>> {
    given
        .as_ref()
        .map(|m| m.keys().map(String::as_str).collect())
}

/// Shows only the last 3 characters (`*********012`).
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    let keep = if n > 6 { 3 } else { 0 };
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep < n { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_the_kind() {
        let v = IdentifierVault::new(&[7u8; 32]);
        let s = v.seal("kr_pccc", "P123456789012").unwrap();
        assert!(!format!("{s:?}").contains("P123"));
        assert!(!serde_json::to_string(&s).unwrap().contains("P123"));
        assert_eq!(v.open("kr_pccc", &s).unwrap(), "P123456789012");
        assert!(v.open("id_nik", &s).is_err());
        assert!(IdentifierVault::new(&[8u8; 32])
            .open("kr_pccc", &s)
            .is_err());
        // Random nonces: sealing twice gives different text, same lookup key.
        assert_ne!(s, v.seal("kr_pccc", "P123456789012").unwrap());
        assert_eq!(v.lookup_key("kr_pccc", "P1"), v.lookup_key("kr_pccc", "P1"));
        assert_ne!(v.lookup_key("kr_pccc", "P1"), v.lookup_key("kr_pccc", "P2"));
        assert_eq!(mask("P123456789012"), "**********012");
    }
}
