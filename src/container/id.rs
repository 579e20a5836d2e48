//! Container IDs: the characters runc accepts, nothing that could escape the state root.

use anyhow::{bail, Result};

const MAX_LEN: usize = 1024;

/// Rejects IDs runc rejects: empty, `.`/`..`, anything but `[A-Za-z0-9_+.-]`, over 1024 bytes.
pub fn validate(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("invalid container ID: must not be empty");
    }
    if id == "." || id == ".." {
        bail!("invalid container ID {id:?}: must not be \".\" or \"..\"");
    }
    if id.len() > MAX_LEN {
        bail!("invalid container ID: longer than {MAX_LEN} bytes");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_+-.".contains(*c)))
    {
        bail!("invalid container ID {id:?}: character {c:?} is not allowed (use letters, digits, _ + - .)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_runc_ids() {
        for id in ["a", "abc-123", "x_y.z+1", "0123456789abcdef", "..a", "a.."] {
            validate(id).unwrap();
        }
        validate(&"a".repeat(1024)).unwrap();
    }

    #[test]
    fn rejects_bad_ids() {
        for id in [
            "", ".", "..", "a/b", "/", "../x", "a b", "a\nb", "ä", "a:b", "a*",
        ] {
            assert!(validate(id).is_err(), "{id:?} accepted");
        }
        assert!(validate(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn error_names_the_bad_character() {
        let e = validate("a/b").unwrap_err().to_string();
        assert!(e.contains("'/'"), "{e}");
    }
}
