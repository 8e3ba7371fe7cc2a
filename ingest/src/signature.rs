//! `x-vercel-signature`: lowercase hex HMAC-SHA1 of the raw body.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Checks the signature against the body as received, then (for gzip deliveries) against the
/// decompressed body: Vercel does not document which one it signs. Constant-time comparison.
pub fn verify_vercel_signature(
    secret: &[u8],
    signature_hex: &str,
    raw: &[u8],
    decompressed: Option<&[u8]>,
) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let check = |body: &[u8]| {
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    };
    check(raw) || decompressed.is_some_and(check)
}

/// Computes the signature (for tests and the load generator).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("hmac accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
