//! Keyed hashing of identifiers (`--hash-uids KEYFILE`): HMAC-SHA-256 (RFC 2104) of each UID
//! under the user's secret key, written as `2.25.<decimal>` so the result is still a valid DICOM
//! UID (PS3.5 B.2: a UUID-derived root) that joins across runs made with the same key, while
//! nobody without the key can test a guessed UID against it.

use sha2::{Digest, Sha256};

/// SHA-256's block size in bytes (FIPS 180-4), which sizes HMAC's padded key.
const BLOCK: usize = 64;

/// HMAC-SHA-256 over `message` with `key` (RFC 2104; keys longer than a block are hashed first).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Replaces UIDs by keyed hashes, or keeps them when no key was given.
#[derive(Clone)]
pub struct UidPolicy {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for UidPolicy {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UidPolicy").field("hashed", &self.key.is_some()).finish()
    }
}

impl UidPolicy {
    /// UIDs written as they are.
    pub fn keep() -> UidPolicy {
        UidPolicy { key: None }
    }

    /// UIDs replaced by HMAC-SHA-256 under `key` (the key file's bytes, trailing newline
    /// included as written: the same file always gives the same hashes).
    pub fn hashed(key: Vec<u8>) -> UidPolicy {
        UidPolicy { key: Some(key) }
    }

    pub fn is_hashed(&self) -> bool {
        self.key.is_some()
    }

    /// A fingerprint of the key (the HMAC of a fixed label), recorded in run.json so a resumed
    /// run refuses a different key instead of mixing two hash spaces; it reveals nothing of
    /// the key.
    pub fn fingerprint(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| hex(&hmac_sha256(k, b"medvqa key fingerprint")[..8]))
    }

    /// The UID as written to outputs.
    pub fn uid(&self, uid: &str) -> String {
        match &self.key {
            None => uid.to_string(),
            Some(k) => {
                let mac = hmac_sha256(k, uid.as_bytes());
                // 128 bits as a decimal under 2.25 (PS3.5 B.2): at most 39 digits + 5 = 44
                // characters, within the 64 a UID may have.
                let mut v = [0u8; 16];
                v.copy_from_slice(&mac[..16]);
                format!("2.25.{}", u128::from_be_bytes(v))
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hashed_uids_are_valid_uids_and_keyed() {
        let a = UidPolicy::hashed(b"secret-a".to_vec());
        let b = UidPolicy::hashed(b"secret-b".to_vec());
        let uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320";
        let ha = a.uid(uid);
        assert!(ha.starts_with("2.25.") && ha.len() <= 64, "{ha}");
        assert!(ha[5..].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(ha, a.uid(uid));
        assert_ne!(ha, b.uid(uid));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(UidPolicy::keep().uid(uid), uid);
    }
}
