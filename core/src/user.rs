//! Who data belongs to.

use crate::tasks::InvalidInput;

/// Longest user id accepted, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;

/// A user id that passed [`UserId::parse`]: 1 to [`MAX_USER_ID_CHARS`] characters without
/// control characters. Every stored row is scoped to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<UserId, InvalidInput> {
        if raw.is_empty()
            || raw.chars().count() > MAX_USER_ID_CHARS
            || raw.chars().any(char::is_control)
        {
            return Err(InvalidInput(format!(
                "a user id must be 1 to {MAX_USER_ID_CHARS} characters without control characters"
            )));
        }
        Ok(UserId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for UserId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for UserId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<UserId> for String {
    fn from(u: UserId) -> String {
        u.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert_eq!(UserId::parse("alice").unwrap(), "alice");
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(&"u".repeat(MAX_USER_ID_CHARS)).is_ok());
        assert!(UserId::parse(&"é".repeat(MAX_USER_ID_CHARS + 1)).is_err());
    }
}
