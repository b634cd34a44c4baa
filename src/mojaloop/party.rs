//! Parties as FSPIOP names them (v1.1 § 7.3.24 PartyIdInfo): a type, an identifier of that type,
//! and the DFSP that holds it. Checked before they go into a request or a URL path: an id can
//! never add a path segment or a query to the Connector's URL.

use std::fmt;

/// Longest FSPIOP PartyIdentifier.
const ID_VALUE_CHARS_MAX: usize = 128;
/// Longest FSPIOP FspId.
const FSP_ID_CHARS_MAX: usize = 32;

/// FSPIOP v1.1's PartyIdType values.
pub const ID_TYPES: [&str; 8] =
    ["MSISDN", "EMAIL", "PERSONAL_ID", "BUSINESS", "DEVICE", "ACCOUNT_ID", "IBAN", "ALIAS"];

/// One party: who is paid, or who pays.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Party {
    pub id_type: &'static str,
    pub id_value: String,
    /// The DFSP holding the party, when known (a lookup finds it otherwise).
    pub fsp_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartyError {
    #[error("id_type {0:?} is not an FSPIOP party id type (one of {types})", types = ID_TYPES.join(", "))]
    IdType(String),
    #[error("id_value must be 1 to 128 characters of letters, digits, '@', '.', '+', '-' and '_'")]
    IdValue,
    #[error("fsp_id must be 1 to 32 characters of letters, digits, '-' and '_'")]
    FspId,
}

impl Party {
    pub fn new(id_type: &str, id_value: &str, fsp_id: Option<&str>) -> Result<Party, PartyError> {
        let id_type =
            ID_TYPES.iter().find(|t| **t == id_type).ok_or_else(|| PartyError::IdType(id_type.into()))?;
        if !id_value_ok(id_value) {
            return Err(PartyError::IdValue);
        }
        if let Some(fsp_id) = fsp_id {
            if !fsp_id_ok(fsp_id) {
                return Err(PartyError::FspId);
            }
        }
        Ok(Party { id_type, id_value: id_value.to_string(), fsp_id: fsp_id.map(str::to_string) })
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.id_type, self.id_value)?;
        match &self.fsp_id {
            Some(fsp) => write!(f, "@{fsp}"),
            None => Ok(()),
        }
    }
}

/// What an id may hold: the characters of phone numbers, emails, account numbers and aliases,
/// none that a URL path or query gives a meaning to.
pub fn id_value_ok(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_');
    (1..=ID_VALUE_CHARS_MAX).contains(&id.chars().count())
        && id.chars().all(allowed)
        && id != "."
        && id != ".."
}

pub fn fsp_id_ok(id: &str) -> bool {
    (1..=FSP_ID_CHARS_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_are_checked_before_they_reach_a_url() {
        let p = Party::new("MSISDN", "5215550001", Some("cu-mx")).unwrap();
        assert_eq!(p.to_string(), "MSISDN/5215550001@cu-mx");
        assert!(Party::new("EMAIL", "ana.lopez+mfi@example.org", None).is_ok());
        assert_eq!(Party::new("PHONE", "1", None), Err(PartyError::IdType("PHONE".into())));
        for bad in ["", "a/b", "a?b", "a b", "..", "%2F", &"1".repeat(129)] {
            assert_eq!(Party::new("ALIAS", bad, None), Err(PartyError::IdValue), "{bad:?}");
        }
        assert!(Party::new("ALIAS", &"1".repeat(128), None).is_ok());
        for bad in ["", "a.b", &"f".repeat(33)] {
            assert_eq!(Party::new("ALIAS", "x", Some(bad)), Err(PartyError::FspId), "{bad:?}");
        }
    }
}
