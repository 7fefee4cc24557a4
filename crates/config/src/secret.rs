//! How configs refer to secrets: by the name of an environment variable or the path of a file — never the
//! secret itself. A value that does not look like a variable name is rejected as a probable literal secret.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The name of an environment variable holding a secret (`GITHUB_CLIENT_SECRET`). Only upper-case letters,
/// digits and `_`, not starting with a digit: anything else is most likely the secret pasted in by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "`{}` is not an environment variable name: a secret is never written in the file — give the \
                 NAME of a variable (upper case, digits, `_`) that holds it",
                redact(name)
            ))
        }
    }

    /// A name written in code (a default), taken as is; [`EnvName::check`] still applies.
    pub fn from_static(name: &'static str) -> Self {
        Self(name.to_string())
    }

    /// Checks the name: `Err` explains why it is not a variable name (without echoing a possible secret).
    /// Deserialization accepts any string so that a file's every problem can be reported at once; callers
    /// validate with this.
    pub fn check(&self) -> Result<(), String> {
        Self::new(&self.0).map(|_| ())
    }

    /// The variable name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the variable (the one place a secret value is touched).
    pub fn read(&self) -> Result<String, std::env::VarError> {
        std::env::var(&self.0)
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(String::deserialize(d)?))
    }
}

/// A path to a file (a secret, a certificate, a key). Must not be empty or contain NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FilePath(String);

impl FilePath {
    /// Checks `p` and wraps it.
    pub fn new(p: &str) -> Result<Self, String> {
        if p.is_empty() || p.contains('\0') || p.contains('\n') {
            Err("a file path must be non-empty and on one line".to_string())
        } else {
            Ok(Self(p.to_string()))
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FilePath::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Either kind of secret reference, for places that accept both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Read from this environment variable.
    Env(EnvName),
    /// Read from this file.
    File(FilePath),
}

/// Shows only the shape of a value that may be a secret.
fn redact(s: &str) -> String {
    let n = s.chars().count();
    if n <= 2 {
        "*".repeat(n)
    } else {
        let first: String = s.chars().take(1).collect();
        format!("{first}{}", "*".repeat(n.min(12) - 1))
    }
}

/// Key names that, if written in a file, mean a literal secret (the `_env`/`_file` forms are the right ones).
pub(crate) fn looks_like_secret_key(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "community",
        "client_secret",
        "secret_key",
        "access_key",
        "secret_access_key",
        "access_key_id",
        "api_key",
        "private_key",
        "auth_password",
        "privacy_password",
        "priv_password",
        "webhook_url",
        "cookie_secret",
    ];
    let k = key.to_ascii_lowercase();
    EXACT.contains(&k.as_str())
        || k.ends_with("_password")
        || k.ends_with("_secret")
        || k.ends_with("_token")
        || k.ends_with("_api_key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(EnvName::new("GITHUB_CLIENT_SECRET").is_ok());
        assert!(EnvName::new("_X1").is_ok());
        assert!(EnvName::new("public").is_err());
        assert!(EnvName::new("1ABC").is_err());
        assert!(EnvName::new("").is_err());
        let e = EnvName::new("hunter2-secret").unwrap_err();
        assert!(
            !e.contains("hunter2"),
            "error must not echo the secret: {e}"
        );
    }

    #[test]
    fn secret_keys() {
        assert!(looks_like_secret_key("community"));
        assert!(looks_like_secret_key("auth_password"));
        assert!(looks_like_secret_key("client_secret"));
        assert!(!looks_like_secret_key("community_env"));
        assert!(!looks_like_secret_key("client_secret_env"));
    }
}
