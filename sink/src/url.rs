//! [`PostgresUrl`]: the sink's database URL, checked at the edge, never shown with its
//! password (Debug and Display hide it, so logging a config cannot leak it).

use std::fmt;

/// Longest URL accepted.
pub const POSTGRES_URL_BYTES_MAX: usize = 2048;

/// A `postgres://` or `postgresql://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostgresUrlError {
    #[error("not a Postgres URL: it must start with postgres:// or postgresql://")]
    Scheme,
    #[error("longer than {POSTGRES_URL_BYTES_MAX} bytes")]
    TooLong,
    #[error("not a valid Postgres URL: {0}")]
    Invalid(String),
}

impl PostgresUrlError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PostgresUrlError::Scheme => "postgres_url_scheme",
            PostgresUrlError::TooLong => "postgres_url_too_long",
            PostgresUrlError::Invalid(_) => "postgres_url_invalid",
        }
    }
}

impl PostgresUrl {
    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// `url` with the password of its user-info (`user:password@`) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &rest[..at];
    match user_info.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &user_info[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

impl TryFrom<String> for PostgresUrl {
    type Error = PostgresUrlError;

    fn try_from(url: String) -> Result<PostgresUrl, PostgresUrlError> {
        if url.len() > POSTGRES_URL_BYTES_MAX {
            return Err(PostgresUrlError::TooLong);
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PostgresUrlError::Scheme);
        }
        url.parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|error| PostgresUrlError::Invalid(redact(&error.to_string())))?;
        Ok(PostgresUrl(url))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.redacted())
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_debug_display_or_redacted() {
        let url =
            PostgresUrl::try_from("postgres://sink:s3cret@db:5432/martelo".to_owned()).unwrap();
        for shown in [format!("{url:?}"), url.to_string(), url.redacted()] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("sink:***@db:5432/martelo"), "{shown}");
        }
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn urls_without_a_password_are_shown_as_they_are() {
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(redact("postgres:///x?host=/tmp"), "postgres:///x?host=/tmp");
    }

    #[test]
    fn other_schemes_and_oversized_urls_are_refused_with_codes() {
        let scheme = PostgresUrl::try_from("mysql://x".to_owned()).unwrap_err();
        assert_eq!(scheme.code(), "postgres_url_scheme");
        let long = format!("postgres://h/{}", "x".repeat(POSTGRES_URL_BYTES_MAX));
        assert_eq!(
            PostgresUrl::try_from(long).unwrap_err().code(),
            "postgres_url_too_long"
        );
    }
}
