//! Password hashing and verification: argon2id with argon2 0.6's defaults (m=19456 KiB,
//! t=2, p=1), on `spawn_blocking`, at most `limits.password_hash_concurrency` at once.
//!
//! A hash costs ~19 MiB and tens of milliseconds of a core, so a flood of sign-ins could
//! starve bidding: at most `password_queue_max` callers wait for a slot, and the next get
//! 503 `busy`. A sign-in for an unknown username still verifies against a fixed dummy hash,
//! so the time taken does not tell whether the account exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::config::LimitConfig;
use crate::error::{Problem, codes};
use crate::telemetry;

/// Shortest password, characters.
pub const PASSWORD_CHARS_MIN: usize = 8;
/// Longest password, characters.
pub const PASSWORD_CHARS_MAX: usize = 128;

/// An argon2id hash (default parameters) of a password nobody knows, verified when the
/// username is unknown so that both paths cost the same.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bWFydGVsby1kdW1teS1zYWx0$\
                          3r+qK/0Wq8v0oJ2c1oQ1m3yQ9m0Wc2m3A9uQ4pS6Z7w";

/// Hashes `password` with argon2id and the crate's default parameters (m=19456 KiB, t=2,
/// p=1, a fresh random salt) into a PHC string: the one place the parameters are chosen.
/// Slow (tens of milliseconds of a core): callers on an async runtime go through
/// [`Passwords::hash`]; the `martelo user create` CLI calls it directly.
pub fn hash_phc(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// Checks a new password's length: 8 to 128 characters.
pub fn check_new_password(password: &str) -> Result<(), Problem> {
    let chars = password.chars().count();
    if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&chars) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PASSWORD,
            format!(
                "a password has {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters, \
                 this one has {chars}"
            ),
        ));
    }
    Ok(())
}

/// The bounded password hasher.
#[derive(Debug)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    /// Hashes running or waiting for a slot.
    in_flight: AtomicUsize,
    /// Most hashes running or waiting: the slots plus the queue.
    in_flight_max: usize,
}

/// Decrements the in-flight count (and its gauge) when a hashing call ends, however.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(telemetry::PASSWORD_HASHES_IN_FLIGHT).decrement(1.0);
    }
}

impl Passwords {
    /// A hasher sized by the limits.
    pub fn new(limits: &LimitConfig) -> Passwords {
        let slots = limits.password_hash_concurrency.max(1);
        Passwords {
            slots: Arc::new(Semaphore::new(slots)),
            in_flight: AtomicUsize::new(0),
            in_flight_max: slots.saturating_add(limits.password_queue_max),
        }
    }

    /// Hashes a new password (already length-checked) into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, Problem> {
        let password = password.to_owned();
        self.run(move || hash_phc(&password))
            .await?
            .map_err(|error| {
                tracing::error!(%error, "password hashing failed");
                Problem::internal()
            })
    }

    /// Whether `password` matches the PHC string `hash`; `None` verifies against the dummy
    /// hash (and answers false), for unknown usernames.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, Problem> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(hash) => (hash.to_owned(), true),
            None => (DUMMY_HASH.to_owned(), false),
        };
        let matches = self
            .run(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(real && matches)
    }

    /// Runs `work` on the blocking pool once a slot is free; 503 `busy` when too many wait.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let waiting = self.in_flight.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!(telemetry::PASSWORD_HASHES_IN_FLIGHT).increment(1.0);
        let _in_flight = InFlight(&self.in_flight);
        if waiting >= self.in_flight_max {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::BUSY,
                "too many sign-ins at once: retry shortly",
            )
            .retry_after(1));
        }
        let _permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Problem::internal())?;
        tokio::task::spawn_blocking(work).await.map_err(|error| {
            tracing::error!(%error, "password task failed");
            Problem::internal()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_8_to_128_characters() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password(&"é".repeat(128)).is_ok(), "characters");
        let error = check_new_password(&"x".repeat(129)).expect_err("long");
        assert_eq!(error.code, "invalid_password");
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_unknown_users_never_match() {
        let passwords = Passwords::new(&LimitConfig::default());
        let hash = passwords.hash("correct horse").await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            passwords
                .verify("correct horse", Some(&hash))
                .await
                .expect("ok")
        );
        assert!(
            !passwords
                .verify("wrong horse", Some(&hash))
                .await
                .expect("ok")
        );
        assert!(!passwords.verify("anything", None).await.expect("ok"));
    }

    #[tokio::test]
    async fn past_the_queue_callers_get_busy_and_the_slots_come_back() {
        let limits = LimitConfig {
            password_hash_concurrency: 1,
            password_queue_max: 1,
            ..LimitConfig::default()
        };
        let passwords = Passwords::new(&limits);
        let (a, b, c) = tokio::join!(
            passwords.hash("password-a"),
            passwords.hash("password-b"),
            passwords.hash("password-c"),
        );
        let codes: Vec<_> = [a, b, c]
            .into_iter()
            .map(|result| result.err().map(|problem| problem.code.into_owned()))
            .collect();
        assert_eq!(
            codes.iter().filter(|code| code.is_none()).count(),
            2,
            "{codes:?}"
        );
        assert!(codes.contains(&Some("busy".to_owned())), "{codes:?}");
        assert!(
            passwords.hash("password-d").await.is_ok(),
            "slots are released"
        );
    }

    #[test]
    fn the_dummy_hash_is_a_valid_phc_string() {
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
