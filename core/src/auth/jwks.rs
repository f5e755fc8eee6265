//! The issuer's public keys (`AUTH_JWKS_URL`), fetched and cached. A token naming an
//! unknown `kid` triggers a refetch, at most one per interval, so key rotation works and a
//! flood of made-up kids cannot hammer the issuer; a cache older than the interval is
//! refetched before use, so a key the issuer removed stops being trusted within an interval.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::PinnedKey;

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 512 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<PinnedKey>>,
    all: Vec<Arc<PinnedKey>>,
}

pub(crate) struct Jwks {
    url: String,
    client: reqwest::Client,
    interval: Duration,
    keys: RwLock<KeySet>,
    /// When the last fetch was attempted; held across a fetch so only one runs at a time.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// The one algorithm we accept for a key, from its type and curve alone. A JWK that says
/// otherwise in `alg`, is not for signatures, or is symmetric is not used.
fn pin(jwk: &Jwk) -> Option<PinnedKey> {
    let alg = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if let Some(declared) = jwk.common.key_algorithm {
        let agrees = matches!(
            (declared, alg),
            (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
                | (KeyAlgorithm::RS256, Algorithm::RS256)
                | (KeyAlgorithm::ES256, Algorithm::ES256)
        );
        if !agrees {
            return None;
        }
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(PinnedKey { alg, key })
}

fn parse(body: &[u8]) -> anyhow::Result<KeySet> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).context("the JWKS is not a JSON key set")?;
    let mut set = KeySet::default();
    // One unusable key (another type, another curve) must not hide the others.
    for raw in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let Some(key) = pin(&jwk) else {
            tracing::debug!(kid = ?jwk.common.key_id, "JWKS key not usable for signatures here; skipped");
            continue;
        };
        let key = Arc::new(key);
        if let Some(kid) = &jwk.common.key_id {
            set.by_kid.insert(kid.clone(), key.clone());
        }
        set.all.push(key);
    }
    Ok(set)
}

impl Jwks {
    pub(crate) fn new(url: &str, interval: Duration) -> anyhow::Result<Jwks> {
        let parsed = reqwest::Url::parse(url).context("not a URL")?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "https" | "http"),
            "the JWKS URL must be http(s)"
        );
        let loopback = parsed.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if parsed.scheme() == "http" && !loopback {
            tracing::warn!(%url, "AUTH_JWKS_URL is plain http: the keys could be swapped in transit");
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("building the JWKS HTTP client")?;
        Ok(Jwks {
            url: url.to_string(),
            client,
            interval,
            keys: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    fn lookup(&self, kid: Option<&str>) -> Vec<Arc<PinnedKey>> {
        let keys = match self.keys.read() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned().into_iter().collect(),
            None => keys.all.clone(),
        }
    }

    /// Keys that may have signed a token naming `kid` (all keys when it names none).
    pub(crate) async fn keys_for(&self, kid: Option<&str>) -> Vec<Arc<PinnedKey>> {
        let found = self.lookup(kid);
        if !found.is_empty() && self.is_fresh() {
            return found;
        }
        self.refresh_if_due().await;
        self.lookup(kid)
    }

    /// Whether the keys were fetched (or a fetch tried) within the interval. While a fetch
    /// is under way the current keys serve, rather than every request waiting for it.
    fn is_fresh(&self) -> bool {
        match self.last_fetch.try_lock() {
            Ok(last) => last.is_some_and(|t| t.elapsed() < self.interval),
            Err(_) => true,
        }
    }

    /// Fetches the key set unless a fetch was attempted within the interval.
    pub(crate) async fn refresh_if_due(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(url = %self.url, keys = set.all.len(), "JWKS fetched");
                match self.keys.write() {
                    Ok(mut k) => *k = set,
                    Err(poisoned) => *poisoned.into_inner() = set,
                }
            }
            // The previous keys stay in use; the next attempt waits for the interval.
            Err(e) => {
                tracing::warn!(url = %self.url, error = %format!("{e:#}"), "JWKS fetch failed")
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeySet> {
        let mut resp = self
            .client
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .context("request failed")?
            .error_for_status()
            .context("the issuer refused")?;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.context("reading the JWKS")? {
            anyhow::ensure!(
                body.len() + chunk.len() <= MAX_JWKS_BYTES,
                "the JWKS is larger than {MAX_JWKS_BYTES} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        parse(&body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinned_by_type_and_odd_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            // Better Auth style: Ed25519 without `alg`.
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            // A symmetric key in a JWKS is never used.
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
            // An encryption key is not a signing key.
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "enc", "use": "enc"},
            // A declared alg that disagrees with the key type.
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "liar", "alg": "RS256"},
            // Something this library does not know at all.
            {"kty": "XYZ", "kid": "alien"},
        ]});
        let set = parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.all.len(), 1);
        assert_eq!(set.by_kid["ed"].alg, Algorithm::EdDSA);
        assert!(parse(b"not json").is_err());
    }
}
