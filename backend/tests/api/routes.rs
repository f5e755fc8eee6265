//! The router against its own description: every operation of the OpenAPI document is
//! routed, and what the router answers on its own (no route, wrong method, a CORS
//! preflight) carries a request id and the API's error shape.

use serde_json::Value;
use todo_backend::access::AccessSettings;
use todo_test_support::Kind;

use crate::helpers::*;

/// A concrete path for a documented template: sample values for its parameters.
fn concrete(template: &str, op: &Value) -> String {
    let mut path = template.to_string();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] != "path" {
            continue;
        }
        let name = p["name"].as_str().unwrap();
        let value = match (name, p["schema"]["enum"].get(0).and_then(Value::as_str)) {
            (_, Some(first)) => first.to_string(),
            ("user_id", _) => "alice".to_string(),
            _ if p["schema"]["format"] == "uuid" => uuid::Uuid::new_v4().to_string(),
            _ => "x".to_string(),
        };
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    assert!(!path.contains('{'), "unfilled parameter in {path}");
    path
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler_and_answers_a_documented_status() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let doc = app.get_json("/openapi.json").await;
    assert_eq!(
        doc,
        todo_backend::api::document(),
        "served and generated documents differ"
    );
    let mut seen = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            seen += 1;
            let path = concrete(template, op);
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = app
                .client
                .request(m, format!("{}{path}", app.address))
                .header("x-request-id", "route-check");
            if op.get("requestBody").is_some() {
                // Routed, then refused by the handler's own validation.
                req = req.json(&serde_json::json!({}));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let case = format!("{method} {path} ({template})");
            assert_eq!(r.headers()["x-request-id"], "route-check", "{case}");
            let body = r.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{case} is not routed for its method: {body}");
            assert!(
                !(status == 404 && body.contains("route not found")),
                "{case} fell through to the fallback"
            );
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{case} answered {status}, which its description does not list: {body}"
            );
        }
    }
    assert_eq!(seen, todo_backend::api::operations().count());
    app.cleanup().await;
}

async fn expect_shaped(
    r: reqwest::Response,
    status: u16,
    code: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(r.status(), status);
    let headers = r.headers().clone();
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    headers
}

#[tokio::test]
async fn no_route_and_a_wrong_method_answer_in_the_error_shape_with_a_request_id() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    expect_shaped(app.get("/no/such/route").await, 404, "not_found").await;
    let r = app
        .client
        .delete(format!("{}/api/alice/chat", app.address))
        .send()
        .await
        .unwrap();
    let h = expect_shaped(r, 405, "method_not_allowed").await;
    assert_eq!(h["allow"], "POST");
    let r = app
        .client
        .post(format!("{}/healthz", app.address))
        .header("x-request-id", "wrong-method-1")
        .send()
        .await
        .unwrap();
    let h = expect_shaped(r, 405, "method_not_allowed").await;
    assert_eq!(h["x-request-id"], "wrong-method-1");
    // Counted under one label, whatever the path.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{route="unmatched",method="GET",status="404"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("/no/such/route"), "{metrics}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_cors_preflight_is_traced_too() {
    let Some(app) = spawn_app_with(
        Kind::Sqlite,
        Options {
            access: AccessSettings {
                allowed_origins: vec!["https://app.example.com".into()],
                ..AccessSettings::default()
            },
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/alice/chat", app.address),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("x-request-id", "preflight-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "preflight-1");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // A preflight from a page that is not allowed is refused in the error shape.
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/alice/chat", app.address),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    expect_shaped(r, 403, "origin_not_allowed").await;
    app.cleanup().await;
}
