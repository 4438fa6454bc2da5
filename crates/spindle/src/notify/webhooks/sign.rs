//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.

use crate::env::Rng;
use base64::Engine as _;

/// A fresh signing secret: `whsec_` and 24 CSPRNG bytes in base64.
pub fn new_secret(rng: &impl Rng) -> String {
    let mut b = [0u8; 24];
    rng.fill(&mut b);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(b))
}

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of
/// `{msg_id}.{timestamp}.{body}`, keyed with the base64-decoded part of
/// the secret after `whsec_`.
pub fn sign(secret: &str, msg_id: &str, timestamp_s: u64, body: &[u8]) -> Result<String, String> {
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "the webhook secret is not base64".to_string())?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| "bad webhook secret".to_string())?;
    mac.update(format!("{msg_id}.{timestamp_s}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeqRng;
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The vector of standard-webhooks' own libraries.
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(sign("whsec_!!!", "m", 1, b"").is_err());
        let s = new_secret(&SeqRng::default());
        assert!(s.starts_with("whsec_") && s.len() == 6 + 32);
    }
}
