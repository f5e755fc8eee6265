//! Start-up refusals for configurations that would open a way in: a remote todo-mcp reached
//! without user authentication (the backend would mint service credentials for any user
//! named in a path), a remote todo-mcp over plain http across a network, the same secret for
//! user tokens and the service credential, and user tokens without a required audience.

use secrecy::ExposeSecret;

use crate::access::AccessSettings;

/// Whether a URL's host is a loopback name or address.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a remote `MCP_SERVER_URL` against the access settings; `Ok` carries warnings to log.
pub fn check_remote_mcp(url: &str, access: &AccessSettings) -> anyhow::Result<Vec<String>> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| anyhow::anyhow!("MCP_SERVER_URL {url:?} is not a URL"))?;
    let host = parsed.host_str().unwrap_or("");
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && !host.is_empty(),
        "MCP_SERVER_URL must be an http:// or https:// URL with a host"
    );
    let mut warnings = Vec::new();
    if parsed.scheme() == "http" && !is_loopback_host(host) {
        anyhow::ensure!(
            access.mcp_allow_plain_http,
            "MCP_SERVER_URL uses plain http to {host}, which is not loopback: the credentials \
             naming each user would cross the network unencrypted. Use https, or set \
             MCP_ALLOW_PLAIN_HTTP=true if the network between the two is private"
        );
        warnings.push(format!(
            "MCP_ALLOW_PLAIN_HTTP=true: service credentials go to {host} over UNENCRYPTED http"
        ));
    }
    if !access.auth.is_configured() {
        anyhow::ensure!(
            access.single_user_dev,
            "MCP_SERVER_URL is set but no AUTH_JWT_SECRET or AUTH_JWKS_URL: the backend would \
             act on the remote todo-mcp as whichever user a request's path names. Configure \
             authentication, or set SINGLE_USER_DEV=true for a one-person development setup"
        );
        warnings.push(
            "SINGLE_USER_DEV=true: a remote todo-mcp without user authentication; anyone who \
             reaches this backend acts as any user"
                .to_string(),
        );
    }
    Ok(warnings)
}

/// Checks the authentication settings; `Ok` carries warnings to log.
pub fn check_auth(access: &AccessSettings) -> anyhow::Result<Vec<String>> {
    if let (Some(user), Some(service)) = (&access.auth.jwt_secret, &access.mcp_service_secret) {
        anyhow::ensure!(
            user.expose_secret() != service.expose_secret(),
            "AUTH_JWT_SECRET and MCP_SERVICE_SECRET are the same: a user token could pass for \
             the backend's service credential. Use two different secrets"
        );
    }
    let mut warnings = Vec::new();
    if (access.auth.jwt_secret.is_some() || access.auth.jwks_url.is_some())
        && access.auth.audience.is_none()
    {
        warnings.push(
            "AUTH_AUDIENCE is not set: user tokens minted for any other service of the same \
             issuer are accepted; set it to this service's audience"
                .to_string(),
        );
    }
    Ok(warnings)
}

/// Refuses settings outside sane bounds, naming the setting: an absurd value would overflow
/// a clock (`TURN_TIMEOUT_SECS=10^12`) or let one request take the whole service.
pub fn check_settings(s: &crate::config::Settings) -> anyhow::Result<()> {
    let l = &s.limits;
    let secs = |d: std::time::Duration| d.as_secs();
    let mut checks: Vec<(&str, u64, u64, u64)> = vec![
        ("TURN_TIMEOUT_SECS", secs(l.turn_timeout), 1, 3_600),
        (
            "MCP_REQUEST_TIMEOUT_SECS",
            secs(l.mcp_request_timeout),
            1,
            600,
        ),
        ("AGENT_MAX_ROUNDS", l.max_rounds as u64, 1, 50),
        (
            "HISTORY_MAX_MESSAGES",
            u64::from(l.history_messages),
            1,
            10_000,
        ),
        (
            "HISTORY_MAX_TOKENS",
            l.history_tokens as u64,
            100,
            1_000_000,
        ),
        ("PROMPT_OPEN_TASKS", u64::from(l.open_tasks), 0, 500),
        (
            "MAX_DESTRUCTIVE_CALLS_PER_TURN",
            l.max_destructive_calls as u64,
            0,
            1_000,
        ),
        (
            "MAX_TOOL_CALLS_PER_REPLY",
            l.max_tool_calls_per_reply as u64,
            1,
            100,
        ),
        (
            "MAX_TOOL_CALLS_PER_TURN",
            l.max_tool_calls_per_turn as u64,
            1,
            1_000,
        ),
        (
            "MAX_TOOL_RESULT_CHARS",
            l.max_tool_result_chars as u64,
            100,
            1_000_000,
        ),
        (
            "MAX_PROMPT_TOKENS",
            l.max_prompt_tokens as u64,
            1_000,
            2_000_000,
        ),
        (
            "MAX_MESSAGE_CHARS",
            s.max_message_chars as u64,
            1,
            1_000_000,
        ),
        (
            "MAX_BODY_BYTES",
            s.max_body_bytes as u64,
            1_024,
            64 * 1024 * 1024,
        ),
        (
            "MAX_CONCURRENT_TURNS",
            s.access.max_concurrent_turns as u64,
            1,
            100_000,
        ),
        (
            "MAX_TURNS_PER_USER",
            s.access.max_turns_per_user as u64,
            0,
            100_000,
        ),
        (
            "RATE_LIMIT_PER_MINUTE",
            u64::from(s.access.rate_limit_per_minute),
            0,
            1_000_000_000,
        ),
    ];
    if let Some(llm) = &s.llm {
        checks.push(("LLM_MAX_TOKENS", u64::from(llm.max_tokens), 1, 1_000_000));
        checks.push((
            "LLM_REQUEST_TIMEOUT_SECS",
            secs(llm.request_timeout),
            1,
            3_600,
        ));
        checks.push(("LLM_MAX_RETRIES", llm.max_retries as u64, 0, 10));
        checks.push(("LLM_MAX_RETRY_WAIT_SECS", secs(llm.max_retry_wait), 0, 600));
    }
    for (name, value, min, max) in checks {
        anyhow::ensure!(
            (min..=max).contains(&value),
            "{name}={value} is outside the accepted range {min}..={max}"
        );
    }
    // The history is one part of a round's prompt (instructions, tool definitions, the
    // open-task view and the turn's own tool results come with it). Allowed near the budget,
    // one long exchange would leave every next turn of the conversation over budget.
    anyhow::ensure!(
        l.history_tokens <= l.max_prompt_tokens / 2,
        "HISTORY_MAX_TOKENS={} must be at most half of MAX_PROMPT_TOKENS={}: the rest of \
         each model round (instructions, tools, tool results) needs room too",
        l.history_tokens,
        l.max_prompt_tokens
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn with_auth() -> AccessSettings {
        let mut a = AccessSettings::default();
        a.auth.jwt_secret = Some(SecretString::from("u".repeat(32)));
        a
    }

    #[test]
    fn a_remote_mcp_without_user_auth_needs_the_single_user_opt_in() {
        let open = AccessSettings::default();
        let e = check_remote_mcp("http://127.0.0.1:8001/mcp", &open).unwrap_err();
        assert!(e.to_string().contains("SINGLE_USER_DEV"), "{e}");
        let dev = AccessSettings {
            single_user_dev: true,
            ..AccessSettings::default()
        };
        let w = check_remote_mcp("http://127.0.0.1:8001/mcp", &dev).unwrap();
        assert!(w[0].contains("SINGLE_USER_DEV"));
        assert!(
            check_remote_mcp("http://localhost:8001/mcp", &with_auth())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn plain_http_across_a_network_is_refused_unless_opted_in() {
        for url in ["http://todo-mcp:8001/mcp", "http://10.0.0.7/mcp"] {
            let e = check_remote_mcp(url, &with_auth()).unwrap_err();
            assert!(e.to_string().contains("MCP_ALLOW_PLAIN_HTTP"), "{url}: {e}");
        }
        for url in [
            "https://mcp.example.com/mcp",
            "http://[::1]:8001/mcp",
            "http://127.0.0.1:9/mcp",
        ] {
            assert!(
                check_remote_mcp(url, &with_auth()).unwrap().is_empty(),
                "{url}"
            );
        }
        let mut a = with_auth();
        a.mcp_allow_plain_http = true;
        let w = check_remote_mcp("http://todo-mcp:8001/mcp", &a).unwrap();
        assert!(w[0].contains("UNENCRYPTED"));
        assert!(check_remote_mcp("ftp://x/mcp", &a).is_err());
        assert!(check_remote_mcp("not a url", &a).is_err());
    }

    #[test]
    fn one_secret_for_users_and_the_service_is_refused_and_no_audience_warned() {
        let mut a = with_auth();
        a.mcp_service_secret = Some(SecretString::from("u".repeat(32)));
        let e = check_auth(&a).unwrap_err();
        assert!(e.to_string().contains("MCP_SERVICE_SECRET"), "{e}");
        a.mcp_service_secret = Some(SecretString::from("s".repeat(32)));
        assert!(check_auth(&a).unwrap()[0].contains("AUTH_AUDIENCE"));
        a.auth.audience = Some("todo".into());
        assert!(check_auth(&a).unwrap().is_empty());
    }
}
