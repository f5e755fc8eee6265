//! Test tokens: signed with the committed test keys (`test-support/keys`), a JWKS built
//! from them served by wiremock, the broken tokens an attacker would try, and a proptest
//! strategy of hostile `Authorization` values.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A shared secret long enough to be accepted.
pub const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
/// Another one, for "signed with the wrong key".
pub const OTHER_SECRET: &str = "a-different-test-secret-0123456789abcdef";
/// The service secret between backend and todo-mcp in tests.
pub const SERVICE_SECRET: &str = "test-only-service-secret-0123456789abcd";

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys");

/// The committed test key pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    Ed25519,
    Ed25519Rotated,
    Ed25519Stranger,
    Rsa,
    P256,
}

impl TestKey {
    fn file(self) -> &'static str {
        match self {
            TestKey::Ed25519 => "ed25519.pem",
            TestKey::Ed25519Rotated => "ed25519-rotated.pem",
            TestKey::Ed25519Stranger => "ed25519-stranger.pem",
            TestKey::Rsa => "rsa.pem",
            TestKey::P256 => "p256.pem",
        }
    }

    /// The `kid` this key has in test key sets.
    pub fn kid(self) -> &'static str {
        match self {
            TestKey::Ed25519 => "ed-1",
            TestKey::Ed25519Rotated => "ed-2",
            TestKey::Ed25519Stranger => "ed-stranger",
            TestKey::Rsa => "rsa-1",
            TestKey::P256 => "p256-1",
        }
    }

    pub fn alg(self) -> Algorithm {
        match self {
            TestKey::Ed25519 | TestKey::Ed25519Rotated | TestKey::Ed25519Stranger => {
                Algorithm::EdDSA
            }
            TestKey::Rsa => Algorithm::RS256,
            TestKey::P256 => Algorithm::ES256,
        }
    }

    pub fn encoding(self) -> EncodingKey {
        let pem = std::fs::read(format!("{KEYS}/{}", self.file())).unwrap();
        match self.alg() {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        }
    }

    /// The public JWK as an issuer publishes it. Ed25519 keys carry no `alg`, like Better
    /// Auth's.
    pub fn jwk(self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), self.alg()).unwrap();
        jwk.common.key_id = Some(self.kid().to_string());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        if self.alg() == Algorithm::EdDSA {
            jwk.common.key_algorithm = None;
        }
        jwk
    }
}

/// A JWKS document with these keys.
pub fn jwks(keys: &[TestKey]) -> Value {
    serde_json::to_value(JwkSet {
        keys: keys.iter().map(|k| k.jwk()).collect(),
    })
    .unwrap()
}

/// A wiremock issuer serving `keys` at `/jwks`; its URL is `{uri}/jwks`.
pub async fn jwks_server(keys: &[TestKey]) -> MockServer {
    let server = MockServer::start().await;
    serve_jwks(&server, keys).await;
    server
}

/// Replaces what `server` serves at `/jwks` (key rotation).
pub async fn serve_jwks(server: &MockServer, keys: &[TestKey]) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(keys)))
        .mount(server)
        .await;
}

/// How many times the issuer's JWKS was fetched.
pub async fn jwks_fetches(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/jwks")
        .count()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims valid for ten minutes naming `sub`.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iat": now(), "exp": now() + 600})
}

/// `claims(sub)` with these fields set (`null` removes one).
pub fn claims_with(sub: &str, fields: Value) -> Value {
    let mut c = claims(sub);
    let o = c.as_object_mut().unwrap();
    for (k, v) in fields.as_object().unwrap() {
        if v.is_null() {
            o.remove(k);
        } else {
            o.insert(k.clone(), v.clone());
        }
    }
    c
}

/// HS256 with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Signed with `key`, its header naming `kid`.
pub fn signed(key: TestKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg());
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key.encoding()).unwrap()
}

/// Signed with `key` under its own kid.
pub fn signed_by(key: TestKey, claims: &Value) -> String {
    signed(key, Some(key.kid()), claims)
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// `token` with its payload replaced by `claims` and the signature kept.
pub fn tampered(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap();
    let _ = parts.next();
    let sig = parts.next().unwrap();
    format!("{header}.{}.{sig}", b64(claims))
}

/// HS256 keyed with `secret` under a header naming `kid`: the alg-confusion attack, where
/// the attacker uses a *public* key as the HMAC secret and hopes the verifier follows the
/// token's `alg`.
pub fn hs256_with_kid(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// The public JWK of `key` serialised, a value an attacker can read from the JWKS.
pub fn public_jwk_bytes(key: TestKey) -> Vec<u8> {
    serde_json::to_vec(&key.jwk()).unwrap()
}

/// Authorization header values: raw bytes, bearer-shaped junk, and mutations of a valid token.
pub fn authorization_values(valid: String) -> impl Strategy<Value = Vec<u8>> {
    let segment = proptest::collection::vec(
        prop_oneof![
            proptest::char::range('a', 'z'),
            proptest::char::range('A', 'Z'),
            proptest::char::range('0', '9'),
            Just('-'),
            Just('_'),
            Just('.'),
            Just('='),
        ],
        0..200,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    let v2 = valid.clone();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        segment
            .clone()
            .prop_map(|s| format!("Bearer {s}").into_bytes()),
        (segment.clone(), segment.clone(), segment)
            .prop_map(|(a, b, c)| format!("Bearer {a}.{b}.{c}").into_bytes()),
        (0..valid.len(), any::<u8>()).prop_map(move |(i, b)| {
            let mut t = format!("Bearer {valid}").into_bytes();
            let i = i + "Bearer ".len();
            t[i] = b;
            t
        }),
        (0..v2.len()).prop_map(move |n| format!("Bearer {}", &v2[..n]).into_bytes()),
    ]
}

/// Sends 256 hostile `Authorization` values ([`authorization_values`] of `valid`) through
/// `send`, each with a random flag the caller may use to pick a route, and fails on any
/// 5xx. A value the client refuses to send never reaches the server and is passed over.
pub fn no_authorization_value_gets_a_server_error<F, Fut>(
    rt: &tokio::runtime::Runtime,
    valid: String,
    send: F,
) where
    F: Fn(Vec<u8>, bool) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::StatusCode>>,
{
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(authorization_values(valid), any::<bool>()),
            |(value, flag)| {
                if let Ok(status) = rt.block_on(send(value.clone(), flag)) {
                    prop_assert!(
                        !status.is_server_error(),
                        "{status} for {:?}",
                        String::from_utf8_lossy(&value)
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}
