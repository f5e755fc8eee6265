//! Bearer token verification shared by both services, and the service credential the chat
//! backend presents to a remote todo-mcp.
//!
//! Accepted algorithms are pinned by us per key: HS256 for `AUTH_JWT_SECRET`, and for keys
//! from `AUTH_JWKS_URL` EdDSA (Ed25519), RS256 (RSA) or ES256 (P-256) by key type. The
//! token's own `alg` only has to agree; it never chooses. `exp` and `sub` are always
//! required; `iss` and `aud` when `AUTH_ISSUER` / `AUTH_AUDIENCE` are set.

mod jwks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use self::jwks::Jwks;
pub use crate::user::UserId;

/// `iss` of the backend's service credential.
pub const SERVICE_ISSUER: &str = "todo-backend";
/// `aud` of the backend's service credential.
pub const SERVICE_AUDIENCE: &str = "todo-mcp";
/// Shortest shared secret accepted: 256 bits, as HS256 needs.
pub const MIN_SECRET_BYTES: usize = 32;
/// Largest clock skew accepted for `AUTH_LEEWAY_SECS`: more would keep expired tokens alive.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Longest bearer token looked at; anything longer is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where tokens are verified against. Secrets cannot be printed.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `AUTH_JWT_SECRET`: HS256 shared secret of user tokens.
    pub jwt_secret: Option<SecretString>,
    /// `AUTH_JWKS_URL`: the issuer's public keys.
    pub jwks_url: Option<String>,
    /// `AUTH_ISSUER`: required `iss` of user tokens.
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE`: required `aud` of user tokens.
    pub audience: Option<String>,
    /// Shortest time between two JWKS fetches (`AUTH_JWKS_REFETCH_SECS`, default 30).
    pub jwks_refetch_interval: Duration,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (`AUTH_LEEWAY_SECS`, default 30).
    pub leeway_secs: u64,
    /// `MCP_SERVICE_SECRET`, accepted by todo-mcp only: the backend's service credential.
    pub service_secret: Option<SecretString>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            jwks_refetch_interval: Duration::from_secs(30),
            leeway_secs: 30,
            service_secret: None,
        }
    }
}

impl AuthSettings {
    /// These settings, if they make sense together (read by `todo_service::settings::AuthArgs`).
    pub fn checked(self) -> anyhow::Result<AuthSettings> {
        let s = self;
        anyhow::ensure!(
            s.leeway_secs <= MAX_LEEWAY_SECS,
            "AUTH_LEEWAY_SECS={} is more than {MAX_LEEWAY_SECS}: expired tokens would stay valid",
            s.leeway_secs
        );
        anyhow::ensure!(
            (1..=86_400).contains(&s.jwks_refetch_interval.as_secs()),
            "AUTH_JWKS_REFETCH_SECS must be between 1 and 86400"
        );
        // Half a configuration would leave the service open while its operator thinks not.
        anyhow::ensure!(
            s.jwt_secret.is_some()
                || s.jwks_url.is_some()
                || (s.issuer.is_none() && s.audience.is_none()),
            "AUTH_ISSUER or AUTH_AUDIENCE is set but neither AUTH_JWT_SECRET nor AUTH_JWKS_URL: \
             set one of them to verify tokens"
        );
        Ok(s)
    }

    /// The rules of todo-mcp over HTTP: user tokens must name this service in `aud` (a token
    /// minted for another service of the issuer is refused), and the user-token secret must
    /// not be the service secret (a user token would pass for the backend's credential).
    pub fn check_for_mcp(&self) -> anyhow::Result<()> {
        if let (Some(user), Some(service)) = (&self.jwt_secret, &self.service_secret) {
            anyhow::ensure!(
                user.expose_secret() != service.expose_secret(),
                "AUTH_JWT_SECRET and MCP_SERVICE_SECRET are the same: a user token could pass \
                 for the backend's service credential. Use two different secrets"
            );
        }
        anyhow::ensure!(
            self.audience.is_some() || (self.jwt_secret.is_none() && self.jwks_url.is_none()),
            "user tokens (AUTH_JWT_SECRET or AUTH_JWKS_URL) need AUTH_AUDIENCE: without it a \
             token the issuer minted for another service would be accepted"
        );
        Ok(())
    }

    /// Whether any way of verifying a token is configured.
    pub fn is_configured(&self) -> bool {
        self.jwt_secret.is_some() || self.jwks_url.is_some() || self.service_secret.is_some()
    }

    /// A one-line description for the start-up log; never a secret.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.jwt_secret.is_some() {
            parts.push("HS256 shared secret".to_string());
        }
        if let Some(u) = &self.jwks_url {
            parts.push(format!("JWKS {u}"));
        }
        if self.service_secret.is_some() {
            parts.push("backend service credential".to_string());
        }
        if let Some(i) = &self.issuer {
            parts.push(format!("iss {i}"));
        }
        if let Some(a) = &self.audience {
            parts.push(format!("aud {a}"));
        }
        parts.join(", ")
    }
}

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The token's `sub`: the user every action is scoped to.
    pub sub: UserId,
    /// Whether this was the backend's service credential acting for `sub`.
    pub service: bool,
}

/// Why a request was not authenticated. The messages are safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an Authorization: Bearer token is required")]
    Missing,
    #[error("the Authorization header is not a well-formed Bearer token")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
}

impl AuthError {
    /// The RFC 6750 `error` code, when the client sent a token.
    pub fn oauth_code(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::Malformed => Some("invalid_request"),
            AuthError::Expired | AuthError::Invalid(_) => Some("invalid_token"),
        }
    }

    /// A `WWW-Authenticate` value: `Bearer`, the extra parameters given, and the error code.
    pub fn www_authenticate(&self, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<String> = extra
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace(['"', '\\'], "")))
            .collect();
        if let Some(code) = self.oauth_code() {
            params.push(format!("error=\"{code}\""));
        }
        if params.is_empty() {
            "Bearer".to_string()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }
}

/// The bearer token of a request: exactly one `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// A verification key with the one algorithm we accept for it.
#[derive(Clone)]
pub(crate) struct PinnedKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

// `DecodingKey` prints its bytes; ours never does.
impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

#[derive(Deserialize)]
struct PeekIssuer {
    #[serde(default)]
    iss: Option<serde_json::Value>,
}

struct Inner {
    secret: Option<PinnedKey>,
    jwks: Option<Jwks>,
    service: Option<PinnedKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

/// Verifies bearer tokens. Cheap to clone; the JWKS cache is shared by the clones.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.inner.secret.is_some())
            .field("jwks", &self.inner.jwks.is_some())
            .field("service", &self.inner.service.is_some())
            .finish_non_exhaustive()
    }
}

fn hs256(secret: &SecretString) -> PinnedKey {
    PinnedKey {
        alg: Algorithm::HS256,
        key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
    }
}

/// Whether a user id is one we can scope data to (see [`UserId`]).
pub fn valid_subject(sub: &str) -> bool {
    UserId::parse(sub).is_ok()
}

impl Verifier {
    /// A verifier for `settings`; an error when nothing to verify against is configured.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Verifier> {
        anyhow::ensure!(
            settings.is_configured(),
            "no AUTH_JWT_SECRET, AUTH_JWKS_URL or service secret to verify tokens with"
        );
        let jwks = settings
            .jwks_url
            .as_deref()
            .map(|u| Jwks::new(u, settings.jwks_refetch_interval))
            .transpose()
            .context("AUTH_JWKS_URL")?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                secret: settings.jwt_secret.as_ref().map(hs256),
                jwks,
                service: settings.service_secret.as_ref().map(hs256),
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway: settings.leeway_secs,
            }),
        })
    }

    /// Fetches the JWKS ahead of the first request; a failure is logged and retried later.
    pub async fn warm_up(&self) {
        if let Some(j) = &self.inner.jwks {
            j.refresh_if_due().await;
        }
    }

    /// Verifies `token` and names its user.
    pub async fn verify(&self, token: &str) -> Result<VerifiedUser, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        // `alg: none` and unknown algorithms fail here: they are not `Algorithm`s.
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed"))?;
        if let Some(service) = &self.inner.service
            && self.claims_service_issuer(token)
        {
            let v = self.validation(service.alg, Some(SERVICE_ISSUER), Some(SERVICE_AUDIENCE));
            return self
                .check(token, service, &v)
                .map(|sub| VerifiedUser { sub, service: true });
        }
        let user_validation = |alg| {
            self.validation(
                alg,
                self.inner.issuer.as_deref(),
                self.inner.audience.as_deref(),
            )
        };
        if header.alg == Algorithm::HS256 {
            let key = self
                .inner
                .secret
                .as_ref()
                .ok_or(AuthError::Invalid("algorithm not accepted"))?;
            let sub = self.check(token, key, &user_validation(key.alg))?;
            return Ok(VerifiedUser {
                sub,
                service: false,
            });
        }
        let jwks = self
            .inner
            .jwks
            .as_ref()
            .ok_or(AuthError::Invalid("algorithm not accepted"))?;
        let keys = jwks.keys_for(header.kid.as_deref()).await;
        let mut keys = keys.iter().filter(|k| k.alg == header.alg).peekable();
        if keys.peek().is_none() {
            return Err(AuthError::Invalid("no matching key"));
        }
        let mut last = AuthError::Invalid("no matching key");
        for key in keys {
            match self.check(token, key, &user_validation(key.alg)) {
                Ok(sub) => {
                    return Ok(VerifiedUser {
                        sub,
                        service: false,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether the unverified claims say the token is the backend's service credential.
    /// Only routes to the service key; that path verifies everything again.
    fn claims_service_issuer(&self, token: &str) -> bool {
        jsonwebtoken::dangerous::insecure_decode::<PeekIssuer>(token)
            .ok()
            .and_then(|d| d.claims.iss)
            .is_some_and(|iss| iss == SERVICE_ISSUER)
    }

    fn validation(&self, alg: Algorithm, iss: Option<&str>, aud: Option<&str>) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.inner.leeway;
        v.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match iss {
            Some(i) => {
                v.set_issuer(&[i]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match aud {
            Some(a) => {
                v.set_audience(&[a]);
                required.push("aud");
            }
            // Without a configured audience a token naming one is still accepted.
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    fn check(&self, token: &str, key: &PinnedKey, v: &Validation) -> Result<UserId, AuthError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, v).map_err(|e| {
            let err = match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::Invalid("not valid yet"),
                K::InvalidAudience => AuthError::Invalid("wrong audience"),
                K::InvalidIssuer => AuthError::Invalid("wrong issuer"),
                K::InvalidSignature => AuthError::Invalid("bad signature"),
                K::InvalidAlgorithm => AuthError::Invalid("algorithm not accepted"),
                K::MissingRequiredClaim(_) => AuthError::Invalid("missing claim"),
                _ => AuthError::Invalid("malformed"),
            };
            tracing::debug!(reason = %err, "token refused");
            err
        })?;
        UserId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid("bad subject"))
    }
}

/// The backend's credential toward a remote todo-mcp: short HS256 tokens naming the user
/// the backend acts for. A person's own token is never passed on.
#[derive(Clone)]
pub struct ServiceCredential {
    key: EncodingKey,
    ttl: Duration,
}

impl fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCredential")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ServiceClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceCredential {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &SecretString, ttl: Duration) -> ServiceCredential {
        ServiceCredential {
            key: EncodingKey::from_secret(secret.expose_secret().as_bytes()),
            ttl,
        }
    }

    /// A token acting for `user`.
    pub fn token_for(&self, user: &str) -> anyhow::Result<SecretString> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = ServiceClaims {
            iss: SERVICE_ISSUER,
            aud: SERVICE_AUDIENCE,
            sub: user,
            iat: now,
            exp: now + self.ttl.as_secs().max(1),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .context("signing the service credential failed")?;
        Ok(SecretString::from(token))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer_token(&headers(&[])), Err(AuthError::Missing));
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Ok("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc", "Bearer a b"] {
            assert_eq!(
                bearer_token(&headers(&[bad])),
                Err(AuthError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(AuthError::Malformed)
        );
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(bearer_token(&headers(&[&long])), Err(AuthError::Malformed));
    }

    #[test]
    fn challenges_carry_the_error_code_only_when_a_token_was_sent() {
        assert_eq!(AuthError::Missing.www_authenticate(&[]), "Bearer");
        assert_eq!(
            AuthError::Expired.www_authenticate(&[("resource_metadata", "http://x/y")]),
            r#"Bearer resource_metadata="http://x/y", error="invalid_token""#
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = AuthSettings {
            jwt_secret: Some(SecretString::from("super-secret-value-0123456789abcdef")),
            service_secret: Some(SecretString::from("another-secret-value-0123456789abcd")),
            ..AuthSettings::default()
        };
        let printed = format!("{s:?} {:?}", Verifier::new(&s).unwrap());
        assert!(!printed.contains("super-secret"), "{printed}");
        assert!(!printed.contains("another-secret"), "{printed}");
        let cred =
            ServiceCredential::new(s.service_secret.as_ref().unwrap(), Duration::from_secs(60));
        let printed = format!("{cred:?} {:?}", cred.token_for("alice").unwrap());
        assert!(!printed.contains("another-secret"), "{printed}");
        assert!(!printed.contains("eyJ"), "{printed}");
    }
}
