//! Who a request is from, and with which role (`[auth] strategy`).
//!
//! - `noauth`, Cinder's noauth middleware: `X-Auth-Token: user:project` is taken at its
//!   word; the user `admin` is an administrator, anyone else a member.
//! - `tokens`: `X-Auth-Token` is an opaque token of 256 random bits made by
//!   `ashlar token create`. Only its SHA-256 is stored (table `tokens`), with the user,
//!   project and roles it stands for. Found tokens are cached by hash for
//!   [`REVOCATION_DELAY`], so a token revoked with `ashlar token revoke` (which writes the
//!   database directly, server running or not) is refused within that time; expiry is
//!   checked on every request. Unknown tokens are not cached, so a new token works at once.
//!
//! Roles are Keystone's defaults: `admin` implies `member`, which implies `reader`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::AuthStrategy;
use crate::db::{Db, DbError, TokenRow, time};

/// How long a revoked token may still be taken by a running server.
pub const REVOCATION_DELAY: Duration = Duration::from_secs(5);

/// Most tokens kept in the cache; past it, stale entries go, then all of them.
const CACHE_ENTRIES: usize = 10_000;

/// The longest user or project id (Cinder's columns hold 255).
const MAX_ID: usize = 255;

/// Keystone's default roles, weakest first: each implies those before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Reader,
    Member,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reader, Role::Member, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The strongest of `names` (the others are implied by it); `None` when none is a
    /// role this service knows.
    pub fn strongest<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Role> {
        names.into_iter().filter_map(Role::parse).max()
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The caller, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub project_id: String,
    /// The strongest role held; the weaker ones are implied.
    pub role: Role,
}

/// Why a token was not taken. The messages never repeat the token.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A noauth token that is not `user:project`.
    #[error("X-Auth-Token is not a valid token: {0}. With noauth send `user:project`.")]
    Malformed(String),
    /// Not a token this service made, or one that was revoked.
    #[error("X-Auth-Token is not a valid token: it is unknown or was revoked.")]
    Unknown,
    #[error("X-Auth-Token has expired; ask for a new token.")]
    Expired,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks a user or project id as Cinder's columns and URLs take it: 1 to 255 visible
/// ASCII characters; a project id must also fit in a URL path segment.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("the {what} id is empty"));
    }
    if id.chars().count() > MAX_ID {
        return Err(format!("the {what} id is longer than {MAX_ID} characters"));
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "the {what} id has the character {c:?}; ids are visible ASCII without spaces"
        ));
    }
    if what == "project"
        && let Some(c) = id.chars().find(|c| matches!(c, '/' | '?' | '#' | '%'))
    {
        return Err(format!(
            "the project id has the character {c:?}, which cannot stand in a URL path"
        ));
    }
    Ok(())
}

/// Reads Cinder's noauth token: `user:project`, or `user` alone for a project of the same
/// name, split at the first colon as Cinder's noauth middleware does.
pub fn parse_noauth(token: &str) -> Result<Identity, Refused> {
    let (user, project) = token.split_once(':').unwrap_or((token, token));
    check_id("user", user).map_err(Refused::Malformed)?;
    check_id("project", project).map_err(Refused::Malformed)?;
    Ok(Identity {
        user_id: user.to_string(),
        project_id: project.to_string(),
        role: if user == "admin" {
            Role::Admin
        } else {
            Role::Member
        },
    })
}

/// A token's SHA-256, as stored.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token: 256 bits from the operating system's random source, as hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Reads a lifetime such as `30d`, `12h`, `45m`, `90s` or `2w`.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("`{text}` is not a lifetime: give a number and a unit, e.g. 30d, 12h, 45m or 90s")
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!(
            "`{text}` is no time at all: a token must live a while"
        ));
    }
    n.checked_mul(unit_secs)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is longer than a hundred years"))
}

/// Makes a token for `user` in `project` with `roles`: the token (shown once, never
/// stored) and its row.
pub async fn create_token(
    db: &Db,
    user: &str,
    project: &str,
    roles: &[Role],
    lifetime: Option<Duration>,
) -> anyhow::Result<(String, TokenRow)> {
    check_id("user", user).map_err(anyhow::Error::msg)?;
    check_id("project", project).map_err(anyhow::Error::msg)?;
    if roles.is_empty() {
        anyhow::bail!("a token needs at least one --role (admin, member or reader)");
    }
    let mut names: Vec<String> = Vec::new();
    for r in roles {
        if !names.iter().any(|n| n == r.name()) {
            names.push(r.name().to_string());
        }
    }
    let token = new_token()?;
    let row = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.to_string(),
        project_id: project.to_string(),
        roles: names,
        created_at: time::now(),
        expires_at: lifetime.map(time::after),
        revoked_at: None,
    };
    db.insert_token(&row, &token_hash(&token)).await?;
    Ok((token, row))
}

/// Authenticates requests by the configured strategy.
pub struct Authenticator {
    strategy: Strategy,
}

enum Strategy {
    NoAuth,
    Tokens {
        db: Db,
        /// By hash: the row and when it was read.
        cache: Mutex<HashMap<String, (Instant, TokenRow)>>,
    },
}

impl Authenticator {
    pub fn new(strategy: AuthStrategy, db: &Db) -> Authenticator {
        Authenticator {
            strategy: match strategy {
                AuthStrategy::Noauth => Strategy::NoAuth,
                AuthStrategy::Tokens => Strategy::Tokens {
                    db: db.clone(),
                    cache: Mutex::new(HashMap::new()),
                },
            },
        }
    }

    /// What to send, for the message when no token was sent.
    pub fn hint(&self) -> &'static str {
        match self.strategy {
            Strategy::NoAuth => "noauth: `user:project`",
            Strategy::Tokens { .. } => "a token made by `ashlar token create`",
        }
    }

    /// Who `token` stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, Refused> {
        let (db, cache) = match &self.strategy {
            Strategy::NoAuth => return parse_noauth(token),
            Strategy::Tokens { db, cache } => (db, cache),
        };
        let hash = token_hash(token);
        let cached = {
            let map = cache.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&hash)
                .filter(|(at, _)| at.elapsed() < REVOCATION_DELAY)
                .map(|(_, row)| row.clone())
        };
        let row = match cached {
            Some(row) => row,
            None => {
                let Some(row) = db.token_by_hash(&hash).await? else {
                    return Err(Refused::Unknown);
                };
                let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= CACHE_ENTRIES {
                    map.retain(|_, (at, _)| at.elapsed() < REVOCATION_DELAY);
                    if map.len() >= CACHE_ENTRIES {
                        map.clear();
                    }
                }
                map.insert(hash, (Instant::now(), row.clone()));
                row
            }
        };
        if row.revoked_at.is_some() {
            return Err(Refused::Unknown);
        }
        if row.expired_at(&time::now()) {
            return Err(Refused::Expired);
        }
        let role = Role::strongest(row.roles.iter().map(String::as_str)).ok_or(Refused::Unknown)?;
        Ok(Identity {
            user_id: row.user_id,
            project_id: row.project_id,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_imply_the_weaker_ones() {
        assert_eq!(Role::strongest(["reader", "admin"]), Some(Role::Admin));
        assert_eq!(Role::strongest(["member"]), Some(Role::Member));
        assert_eq!(Role::strongest(["auditor"]), None);
        assert!(Role::Admin > Role::Member && Role::Member > Role::Reader);
    }

    #[test]
    fn noauth_admin_is_admin_others_members() {
        assert_eq!(parse_noauth("admin:p").unwrap().role, Role::Admin);
        let alice = parse_noauth("alice").unwrap();
        assert_eq!(
            (alice.project_id.as_str(), alice.role),
            ("alice", Role::Member)
        );
        assert!(matches!(parse_noauth("a:p/q"), Err(Refused::Malformed(_))));
    }

    #[test]
    fn lifetimes() {
        assert_eq!(
            parse_lifetime("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_lifetime("90s").unwrap(), Duration::from_secs(90));
        for bad in ["", "d", "30", "3x", "0s", "-1d", "99999999999999w"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_hashes() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[tokio::test]
    async fn revoked_and_expired_tokens_are_refused() {
        let (db, _dir) = crate::db::testing::db().await;
        let auth = Authenticator::new(AuthStrategy::Tokens, &db);
        let (token, row) = create_token(&db, "u", "p", &[Role::Member], None)
            .await
            .unwrap();
        let who = auth.authenticate(&token).await.unwrap();
        assert_eq!((who.user_id.as_str(), who.role), ("u", Role::Member));
        assert!(matches!(
            auth.authenticate("u:p").await,
            Err(Refused::Unknown)
        ));
        db.revoke_token(&row.id).await.unwrap();
        // Cached until the revocation delay has passed; a fresh authenticator reads it.
        let fresh = Authenticator::new(AuthStrategy::Tokens, &db);
        assert!(matches!(
            fresh.authenticate(&token).await,
            Err(Refused::Unknown)
        ));
        let (old, old_row) = create_token(&db, "u", "p", &[Role::Reader], None)
            .await
            .unwrap();
        db.insert_token(
            &TokenRow {
                id: "expired".into(),
                expires_at: Some("2000-01-01T00:00:00.000000".into()),
                ..old_row
            },
            &token_hash("expired-token"),
        )
        .await
        .unwrap();
        assert!(matches!(
            fresh.authenticate("expired-token").await,
            Err(Refused::Expired)
        ));
        assert_eq!(fresh.authenticate(&old).await.unwrap().role, Role::Reader);
    }
}
