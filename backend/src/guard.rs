//! No way in through a browser: every request must name this service in `Host` (so a web
//! page that rebinds its own DNS name to 127.0.0.1 is refused), and a browser request's
//! `Origin` must be a loopback page, one of `ALLOWED_ORIGINS`, or the service's own origin.
//! The same settings and defaults as todo-mcp. Health probes are exempt (they reveal nothing
//! and come from orchestrators addressing the pod by IP); `/metrics` can require a token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Host names always accepted: loopback.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The browser and Host rules of a running backend.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: Vec<String>,
    /// Exact origins (`scheme://host[:port]`, lower case, no trailing slash).
    origins: Vec<String>,
    metrics_token: Option<SecretString>,
}

/// Refuses a list entry that would switch a check off.
fn refuse_wildcard(name: &str, values: &[String]) -> anyhow::Result<()> {
    if let Some(v) = values.iter().find(|v| v.contains('*')) {
        anyhow::bail!(
            "{name} contains {v:?}: wildcards are refused because they would let any web page \
             in; list the exact names"
        );
    }
    Ok(())
}

/// `scheme://host[:port]` in lower case, or `None` when `raw` is not an origin.
fn normalize_origin(raw: &str) -> Option<String> {
    let raw = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = raw.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.len() > 255
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return None;
    }
    Some(raw)
}

/// The host name of an origin's authority (`[::1]:80` → `::1`, `a.b:8` → `a.b`).
fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    }
}

impl Guard {
    /// Loopback names plus `extra_hosts` (`ALLOWED_HOSTS`); loopback pages plus
    /// `extra_origins` (`ALLOWED_ORIGINS`). Wildcards and malformed origins are refused.
    pub fn new(
        extra_hosts: &[String],
        extra_origins: &[String],
        metrics_token: Option<SecretString>,
    ) -> anyhow::Result<Guard> {
        refuse_wildcard("ALLOWED_HOSTS", extra_hosts)?;
        refuse_wildcard("ALLOWED_ORIGINS", extra_origins)?;
        let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
        for h in extra_hosts {
            let h = h.trim().to_ascii_lowercase();
            anyhow::ensure!(
                !h.is_empty() && todo_service::runtime::host_allowed(&h, std::slice::from_ref(&h)),
                "ALLOWED_HOSTS has an invalid host name {h:?}"
            );
            hosts.push(h);
        }
        let origins = extra_origins
            .iter()
            .map(|o| {
                normalize_origin(o).ok_or_else(|| {
                    anyhow::anyhow!(
                        "ALLOWED_ORIGINS has an invalid origin {o:?} (expected scheme://host[:port])"
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Guard {
            hosts,
            origins,
            metrics_token,
        })
    }

    /// Whether `Host` names this service.
    fn host_ok(&self, headers: &HeaderMap) -> Option<String> {
        let mut values = headers.get_all(header::HOST).iter();
        let host = values.next()?.to_str().ok()?;
        if values.next().is_some() || !todo_service::runtime::host_allowed(host, &self.hosts) {
            return None;
        }
        Some(host.to_ascii_lowercase())
    }

    /// Whether the request's `Origin` (if any) may call: a loopback page, an allowed origin,
    /// or this service's own origin (`host`, already validated).
    fn origin_ok(&self, headers: &HeaderMap, host: &str) -> bool {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(first) = values.next() else {
            return true; // not a cross-origin browser request
        };
        if values.next().is_some() {
            return false;
        }
        let Some(origin) = first.to_str().ok().and_then(normalize_origin) else {
            return false; // includes the opaque origin "null"
        };
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        if authority == host {
            return true;
        }
        // Loopback pages on any port (http only: that is what a local page is served over).
        if origin.starts_with("http://") && LOOPBACK_HOSTS.contains(&authority_host(authority)) {
            return true;
        }
        self.origins.contains(&origin)
    }

    fn metrics_authorized(&self, headers: &HeaderMap, token: &SecretString) -> bool {
        let Ok(given) = todo_core::auth::bearer_token(headers) else {
            return false;
        };
        // Compared as digests, so the time taken says nothing about the token.
        Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose_secret().as_bytes())
    }
}

/// Middleware over the whole router.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz") {
        return next.run(req).await;
    }
    if path == "/metrics"
        && let Some(token) = &guard.metrics_token
    {
        // A token proves a scraper, not a browser page; scrapers address pods by IP.
        if guard.metrics_authorized(req.headers(), token) {
            return next.run(req).await;
        }
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "/metrics needs Authorization: Bearer <METRICS_TOKEN>",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        return r;
    }
    let Some(host) = guard.host_ok(req.headers()) else {
        tracing::debug!(path, "request refused: Host not allowed");
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "This service does not answer to that Host name; add it to ALLOWED_HOSTS.",
        )
        .into_response();
    };
    if !guard.origin_ok(req.headers(), &host) {
        tracing::debug!(path, "request refused: Origin not allowed");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "Requests from this web page are not allowed; add its origin to ALLOWED_ORIGINS.",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    fn allows(g: &Guard, host: &str, origin: Option<&str>) -> bool {
        let h = headers(host, origin);
        g.host_ok(&h).is_some_and(|host| g.origin_ok(&h, &host))
    }

    #[test]
    fn loopback_is_accepted_and_a_rebound_name_is_not() {
        let g = Guard::new(&[], &[], None).unwrap();
        assert!(allows(&g, "127.0.0.1:8000", None));
        assert!(allows(&g, "localhost:8000", Some("http://localhost:5173")));
        assert!(allows(&g, "[::1]:8000", Some("http://[::1]:8000")));
        assert!(!allows(&g, "evil.example:8000", None), "DNS rebinding");
        assert!(!allows(&g, "127.0.0.1:8000", Some("http://evil.example")));
        assert!(!allows(&g, "127.0.0.1:8000", Some("null")));
        assert!(!allows(
            &g,
            "127.0.0.1:8000",
            Some("https://localhost.evil.example")
        ));
    }

    #[test]
    fn configured_names_and_the_services_own_origin_are_accepted() {
        let g = Guard::new(
            &["todo.example.com".into()],
            &["https://app.example.com/".into()],
            None,
        )
        .unwrap();
        assert!(allows(
            &g,
            "todo.example.com",
            Some("https://todo.example.com")
        ));
        assert!(allows(
            &g,
            "TODO.example.com",
            Some("https://app.example.com")
        ));
        assert!(!allows(
            &g,
            "todo.example.com",
            Some("https://other.example.com")
        ));
    }

    #[test]
    fn wildcards_and_malformed_entries_are_refused_at_start_up() {
        let e = Guard::new(&[], &["*".into()], None).unwrap_err();
        assert!(e.to_string().contains("ALLOWED_ORIGINS"), "{e}");
        assert!(Guard::new(&["*".into()], &[], None).is_err());
        assert!(Guard::new(&[], &["app.example.com".into()], None).is_err());
        assert!(Guard::new(&["a b".into()], &[], None).is_err());
    }
}
