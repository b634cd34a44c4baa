//! Rafiki's request signatures: `t=<unix ms>, v1=<hex HMAC-SHA256(secret, "<t>." + canonical
//! JSON)>`, on the admin GraphQL API's requests (the node signs exactly the bytes it sends) and on
//! its webhooks (the node re-canonicalizes the body it received, which Rafiki does not send in
//! canonical order, and checks the signature within a time window, in constant time).
//!
//! Canonical JSON is RFC 8785 (JCS) for the values these bodies hold: object members sorted by
//! their names' UTF-16 code units, no whitespace, strings escaped as JCS says, integers as
//! digits. A number with a fraction or exponent is refused rather than guessed at (Rafiki's
//! amounts are strings).

use ring::hmac;
use serde_json::Value;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a webhook's `t` may be from the node's clock, either way (Rafiki's own API accepts 30 s
/// past and bounds nothing ahead; the node bounds both).
pub const SIGNATURE_AGE_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("a number with a fraction or an exponent has no canonical form here: {0}")]
    Number(String),
    #[error("the signature header is not `t=<ms>, v1=<hex>`")]
    Malformed,
    #[error("the signature's time is {0} ms away from now, more than the window allows")]
    Stale(u128),
    #[error("the signature does not match")]
    Mismatch,
}

/// `value` as RFC 8785 canonical JSON.
pub fn canonical(value: &Value) -> Result<String, SignatureError> {
    let mut out = String::new();
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) -> Result<(), SignatureError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => write!(out, "{u}").expect("a String takes writes"),
            (_, Some(i)) => write!(out, "{i}").expect("a String takes writes"),
            _ => return Err(SignatureError::Number(n.to_string())),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut names: Vec<&String> = members.keys().collect();
            // By UTF-16 code units, as JCS sorts (not by UTF-8 bytes).
            names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_canonical(&members[name], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// JCS string escaping: `"` `\\` and the short forms for \b \f \n \r \t, `\u00xx` (lowercase) for
/// the other control characters, everything else as it is.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).expect("a String takes writes"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn mac(secret: &[u8], t_ms: u128, canonical: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, format!("{t_ms}.{canonical}").as_bytes())
}

/// The header for a body the node sends: its canonical bytes are what it must send.
pub fn sign(secret: &[u8], at: SystemTime, canonical: &str) -> String {
    let t_ms = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    format!("t={t_ms}, v1={}", hex::encode(mac(secret, t_ms, canonical).as_ref()))
}

/// Checks a received signature header against `body` (re-canonicalized here), within
/// [`SIGNATURE_AGE_MAX`] of `now` either way, comparing in constant time.
pub fn verify(secret: &[u8], header: &str, body: &Value, now: SystemTime) -> Result<(), SignatureError> {
    let (t, v1) = header.split_once(", ").ok_or(SignatureError::Malformed)?;
    let t_ms: u128 = t.strip_prefix("t=").and_then(|t| t.parse().ok()).ok_or(SignatureError::Malformed)?;
    let given = v1.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()).ok_or(SignatureError::Malformed)?;
    let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let away = now_ms.abs_diff(t_ms);
    if away > SIGNATURE_AGE_MAX.as_millis() {
        return Err(SignatureError::Stale(away));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let message = format!("{t_ms}.{}", canonical(body)?);
    hmac::verify(&key, message.as_bytes(), &given).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_is_rfc_8785_for_these_values() {
        // Members sorted, no whitespace, nested too.
        let v = json!({"type": "peer.liquidity_low", "id": "e1", "data": {"z": [1, true, null], "a": "x"}});
        assert_eq!(
            canonical(&v).unwrap(),
            r#"{"data":{"a":"x","z":[1,true,null]},"id":"e1","type":"peer.liquidity_low"}"#
        );
        // UTF-16 order: U+1F600 (0xD83D 0xDE00) sorts before U+E000, unlike their UTF-8 bytes
        // (0xF0... after 0xEE...).
        let v = json!({"\u{E000}": 2, "\u{1F600}": 1});
        assert_eq!(canonical(&v).unwrap(), "{\"\u{1F600}\":1,\"\u{E000}\":2}");
        assert_eq!(canonical(&json!("a\"b\\c\n\u{1}é/")).unwrap(), "\"a\\\"b\\\\c\\n\\u0001é/\"");
        assert_eq!(canonical(&json!(-42)).unwrap(), "-42");
        assert_eq!(canonical(&json!(18446744073709551615u64)).unwrap(), "18446744073709551615");
        assert!(matches!(canonical(&json!(1.5)), Err(SignatureError::Number(_))));
    }

    #[test]
    fn a_signature_verifies_once_made_and_only_within_its_window() {
        let body = json!({"id": "e1", "type": "peer.liquidity_low", "data": {"balance": "700"}});
        let now = SystemTime::now();
        let header = sign(b"secret", now, &canonical(&body).unwrap());
        assert!(header.starts_with("t=") && header.contains(", v1="), "{header}");
        assert_eq!(verify(b"secret", &header, &body, now), Ok(()));
        // The same body in another member order verifies: it is checked canonically.
        let reordered: Value =
            serde_json::from_str(r#"{"data": {"balance": "700"}, "type": "peer.liquidity_low", "id": "e1"}"#)
                .unwrap();
        assert_eq!(verify(b"secret", &header, &reordered, now), Ok(()));
        assert_eq!(verify(b"other", &header, &body, now), Err(SignatureError::Mismatch));
        let changed = json!({"id": "e1", "type": "peer.liquidity_low", "data": {"balance": "701"}});
        assert_eq!(verify(b"secret", &header, &changed, now), Err(SignatureError::Mismatch));
        assert!(matches!(
            verify(b"secret", &header, &body, now + Duration::from_secs(31)),
            Err(SignatureError::Stale(_))
        ));
        assert!(matches!(
            verify(b"secret", &header, &body, now - Duration::from_secs(31)),
            Err(SignatureError::Stale(_))
        ));
        assert_eq!(verify(b"secret", &header, &body, now + Duration::from_secs(29)), Ok(()));
        for bad in ["", "t=1,v1=00", "t=x, v1=00", "t=1, v2=00", "t=1, v1=zz"] {
            assert_eq!(verify(b"secret", bad, &body, now), Err(SignatureError::Malformed), "{bad}");
        }
    }
}
