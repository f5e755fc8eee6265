//! The chat page: served at `/` with its assets from the binary, nothing from elsewhere.

use todo_test_support::Kind;

use crate::helpers::*;

#[tokio::test]
async fn the_page_and_its_assets_are_served_under_a_same_origin_policy() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    for (path, kind, needle) in [
        ("/", "text/html", "<main"),
        ("/assets/app.js", "text/javascript", "text/event-stream"),
        ("/assets/app.css", "text/css", ":focus-visible"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    let r = app.get("/assets/../Cargo.toml").await;
    assert_eq!(r.status(), 404);
    let r = app.get("/assets/secret.js").await;
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    app.cleanup().await;
}
