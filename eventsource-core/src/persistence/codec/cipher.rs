//! AES-256-GCM: authenticated encryption of payloads and of wrapped keys. A ciphertext
//! decrypts only with its key and its associated data (for a payload, the record it belongs
//! to), so a changed byte, a ciphertext moved to another record and a wrong key all fail the
//! same check.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

/// The nonce's length: 96 bits, random per payload.
pub(crate) const NONCE_LEN: usize = 12;

/// A fresh random nonce.
pub(crate) fn nonce() -> [u8; NONCE_LEN] {
    Aes256Gcm::generate_nonce(&mut OsRng).into()
}

/// The cipher of `key`, ready to seal and open (its key schedule computed).
pub(crate) fn prepare(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// `plain` encrypted with `cipher` under `nonce`, bound to `associated` (ciphertext + 16-byte
/// tag).
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    associated: &[u8],
    plain: &[u8],
) -> Vec<u8> {
    cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plain,
                aad: associated,
            },
        )
        // AES-GCM fails only for inputs over 64 GiB, which no payload reaches (stores refuse
        // far smaller ones); an empty result then fails authentication when read, never panics.
        .unwrap_or_default()
}

/// The plaintext, or `None` if the ciphertext, its associated data or the key is not the one
/// it was sealed with.
pub(crate) fn open(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    associated: &[u8],
    sealed: &[u8],
) -> Option<Vec<u8>> {
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: associated,
            },
        )
        .ok()
}

/// A data key wrapped for storage: nonce, then the sealed key.
pub(crate) fn wrap(master: &[u8; 32], binding: &[u8], key: &[u8; 32]) -> Vec<u8> {
    let nonce = nonce();
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&seal(&prepare(master), &nonce, binding, key));
    wrapped
}

/// The data key from its wrapped form.
pub(crate) fn unwrap(master: &[u8; 32], binding: &[u8], wrapped: &[u8]) -> Option<[u8; 32]> {
    let (nonce, sealed) = wrapped.split_at_checked(NONCE_LEN)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    open(&prepare(master), &nonce, binding, sealed)?
        .try_into()
        .ok()
}
