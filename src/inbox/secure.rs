//! Secure queues: queues on the HTTPS listener, each guarded by the HTTP Basic credential it
//! was created with (`POST /queue`), or the admin credential from the settings.
//!
//! Unlike PopBox (an unsalted SHA-1 of the credential, any auth scheme accepted, a public default
//! admin password), credentials are stored as salted Argon2id hashes, only the `Basic` scheme
//! is read, comparisons are constant-time, and there is no admin unless one is configured.
//!
//! Checking a slow hash on every request would cost tens of milliseconds each; a credential
//! verified once is remembered (as a SHA-256 of it, tied to the stored hash) for a minute.
//!
//! Wrong guesses must not cost others their turn at the slow hash. A queue where a guess failed
//! lately has its credentials checked one at a time, on a lane of its own: a flood of guesses
//! there can take no more than that, and every other queue keeps the general lanes. A wrong
//! guess is answered only after `WRONG_GUESS_DELAY` (holding no lane meanwhile), so each
//! guessing connection makes at most about one guess a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::sync::Semaphore;

use crate::secret::{Secret, digest};

/// How long a verified credential is remembered.
const REMEMBER_FOR: Duration = Duration::from_secs(60);
/// Most credentials remembered at once; past that the memory starts afresh.
const REMEMBER_AT_MOST: usize = 10_000;
/// Slow hashes computed at once; more wait (each takes tens of MiB and milliseconds).
const CONCURRENT_HASHES: usize = 2;
/// How long a queue whose credential was guessed wrong has its checks on the suspects' lane.
const SUSPECT_FOR: Duration = Duration::from_secs(60);
/// How long a wrong guess waits for its answer.
const WRONG_GUESS_DELAY: Duration = Duration::from_secs(1);

/// The answer to a request for a secure queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// No such secure queue (PopBox answered this before looking at the credential).
    NoSuchQueue,
    Denied,
}

/// `user:password` from an `Authorization: Basic …` header; `None` for anything else.
pub fn basic_credential(header: &str) -> Option<String> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(token.trim()).ok()?;
    let credential = String::from_utf8(decoded).ok()?;
    credential.contains(':').then_some(credential)
}

/// A verified credential: the queue key and the SHA-256 of `user:password`. What is remembered
/// for it is the stored hash it matched, and when.
type Slot = (String, [u8; 32]);

/// Hashes, verifies and remembers credentials.
pub struct Guard {
    /// The admin's `user:password`, when there is one.
    admin: Option<Secret>,
    remembered: Mutex<HashMap<Slot, (String, Instant)>>,
    hashing: Semaphore,
    /// The lane of the queues where a guess failed lately, and when it last did for each.
    suspects: Semaphore,
    failed: Mutex<HashMap<String, Instant>>,
}

impl Guard {
    pub fn new(admin: Option<(&str, &str)>) -> Self {
        Guard {
            admin: admin.map(|(user, password)| Secret::new(&format!("{user}:{password}"))),
            remembered: Mutex::default(),
            hashing: Semaphore::new(CONCURRENT_HASHES),
            suspects: Semaphore::new(1),
            failed: Mutex::default(),
        }
    }

    /// The stored form of a new queue's `user:password`: a salted Argon2id hash.
    pub async fn hash(&self, credential: String) -> String {
        self.slow(&self.hashing, move || {
            // 122 random bits from the UUID generator (a CSPRNG), as the salt.
            let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
                .expect("16 bytes make a valid salt");
            Argon2::default()
                .hash_password(credential.as_bytes(), &salt)
                .expect("Argon2 with default parameters hashes any input")
                .to_string()
        })
        .await
    }

    /// Whether `credential` (`user:password`, if the client sent one) opens the queue `key`
    /// whose stored hash is `stored` (`None`: there is no such queue).
    pub async fn check(
        &self,
        key: &str,
        stored: Option<String>,
        credential: Option<String>,
    ) -> Access {
        let Some(stored) = stored else {
            return Access::NoSuchQueue;
        };
        let Some(credential) = credential else {
            return Access::Denied;
        };
        let given = digest(&credential);
        if self
            .admin
            .as_ref()
            .is_some_and(|admin| admin.matches_digest(&given))
        {
            return Access::Granted;
        }
        let slot = (key.to_owned(), given);
        if self.remembers(&slot, &stored) {
            return Access::Granted;
        }
        let hash = stored.clone();
        let verify = move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(credential.as_bytes(), &parsed)
                    .is_ok()
            })
        };
        let lane = if self.suspect(key) {
            &self.suspects
        } else {
            &self.hashing
        };
        if !self.slow(lane, verify).await {
            self.guessed_wrong(key);
            tokio::time::sleep(WRONG_GUESS_DELAY).await;
            return Access::Denied;
        }
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.len() >= REMEMBER_AT_MOST {
            remembered.clear();
        }
        remembered.insert(slot, (stored, Instant::now()));
        Access::Granted
    }

    /// Whether a guess failed on queue `key` lately.
    fn suspect(&self, key: &str) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get(key).is_some_and(|at| at.elapsed() < SUSPECT_FOR)
    }

    fn guessed_wrong(&self, key: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.len() >= REMEMBER_AT_MOST {
            failed.retain(|_, at| at.elapsed() < SUSPECT_FOR);
            if failed.len() >= REMEMBER_AT_MOST {
                // Guesses on that many queues at once: forget, rather than grow without end.
                failed.clear();
            }
        }
        failed.insert(key.to_owned(), Instant::now());
    }

    fn remembers(&self, slot: &Slot, stored: &str) -> bool {
        let remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        remembered
            .get(slot)
            .is_some_and(|(hash, at)| hash == stored && at.elapsed() < REMEMBER_FOR)
    }

    /// Runs slow hashing off the async threads, as many at a time as `lane` lets through.
    async fn slow<R: Send + 'static>(
        &self,
        lane: &Semaphore,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        let _turn = lane.acquire().await.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(work)
            .await
            .expect("hashing does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credential: &str) -> String {
        format!("Basic {}", BASE64.encode(credential))
    }

    #[test]
    fn only_basic_credentials_are_read() {
        assert_eq!(basic_credential(&basic("u:p")).as_deref(), Some("u:p"));
        assert_eq!(basic_credential(&basic("u:p:q")).as_deref(), Some("u:p:q"));
        assert_eq!(
            basic_credential(&format!("bAsIc {}", BASE64.encode("a:b"))).as_deref(),
            Some("a:b")
        );
        assert_eq!(
            basic_credential(&format!("Bearer {}", BASE64.encode("u:p"))),
            None
        );
        assert_eq!(basic_credential("Basic !!!"), None);
        assert_eq!(basic_credential(&basic("no colon")), None);
        assert_eq!(basic_credential(""), None);
    }

    #[tokio::test]
    async fn owner_and_admin_get_in_others_do_not() {
        let guard = Guard::new(Some(("root", "toor")));
        let stored = guard.hash("alice:secret".to_owned()).await;
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("secret"));
        let check = |credential: Option<&str>| {
            guard.check("SEC:q", Some(stored.clone()), credential.map(str::to_owned))
        };
        assert_eq!(check(Some("alice:secret")).await, Access::Granted);
        // Remembered: the same answer without the slow hash.
        assert_eq!(check(Some("alice:secret")).await, Access::Granted);
        assert_eq!(check(Some("root:toor")).await, Access::Granted);
        assert_eq!(check(Some("alice:wrong")).await, Access::Denied);
        assert_eq!(check(Some("root:wrong")).await, Access::Denied);
        assert_eq!(check(None).await, Access::Denied);
        assert_eq!(
            guard
                .check("SEC:none", None, Some("root:toor".into()))
                .await,
            Access::NoSuchQueue
        );
        // A queue created anew with another credential does not inherit the memory.
        let other = guard.hash("bob:pw".to_owned()).await;
        assert_eq!(
            guard
                .check("SEC:q", Some(other), Some("alice:secret".into()))
                .await,
            Access::Denied
        );
    }

    #[tokio::test]
    async fn wrong_guesses_wait_and_take_only_the_suspects_lane() {
        let guard = Guard::new(None);
        let stored = guard.hash("alice:secret".to_owned()).await;
        let check = |key: &'static str, credential: &str| {
            guard.check(key, Some(stored.clone()), Some(credential.to_owned()))
        };
        let started = Instant::now();
        assert_eq!(check("SEC:vault", "alice:guess").await, Access::Denied);
        assert!(started.elapsed() >= WRONG_GUESS_DELAY, "answered at once");
        // A flood of guesses on the vault holds its lane...
        let flood = guard.suspects.acquire().await.unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(300),
            check("SEC:vault", "alice:secret"),
        );
        assert!(
            waiting.await.is_err(),
            "the vault's checks queue behind the guesses"
        );
        // ...and no other queue's.
        let other =
            tokio::time::timeout(Duration::from_secs(5), check("SEC:other", "alice:secret"));
        assert_eq!(other.await, Ok(Access::Granted));
        drop(flood);
        assert_eq!(check("SEC:vault", "alice:secret").await, Access::Granted);
    }

    #[tokio::test]
    async fn salts_differ() {
        let guard = Guard::new(None);
        let a = guard.hash("u:p".to_owned()).await;
        let b = guard.hash("u:p".to_owned()).await;
        assert_ne!(a, b);
    }
}
