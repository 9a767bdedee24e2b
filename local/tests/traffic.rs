//! Listeners against real local upstreams: weights, attribution, forwarding and upstream failures.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use codedeploy_local::ecs::traffic::{Listener, Served, TASK_SET_HEADER, TaskSetLabel};
use serde_json::{Value, json};

/// An app that echoes what it received and names itself in `x-upstream`; `/unhealthy` answers 503.
async fn upstream(name: &'static str) -> SocketAddr {
    let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let status = if uri.path() == "/unhealthy" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let echo = json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "x_request_id": header("x-request-id"),
            "content_type": header("content-type"),
            "body": String::from_utf8_lossy(&body),
        });
        (status, [("x-upstream", name)], axum::Json(echo)).into_response()
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(tcp, app).await.unwrap() });
    addr
}

/// An address nothing listens on: bound, then released.
async fn closed_port() -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tcp.local_addr().unwrap()
}

/// Sends `n` GETs and returns, for each, the task set header and the app that answered.
async fn hits(listener: &Listener, n: usize) -> Vec<(String, String)> {
    let client = reqwest::Client::new();
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        let response = client.get(format!("http://{}/v2/cart/1", listener.addr())).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        seen.push((header(TASK_SET_HEADER), header("x-upstream")));
    }
    seen
}

fn count(seen: &[(String, String)], task_set: TaskSetLabel, app: &str) -> usize {
    seen.iter().filter(|(label, upstream)| label == task_set.as_str() && upstream == app).count()
}

#[tokio::test]
async fn everything_goes_to_blue_before_a_deployment() {
    let blue = upstream("blue").await;
    let listener = Listener::bind("prod", 0, blue).await.unwrap();
    assert_eq!(listener.weights(), (100.0, 0.0));

    let seen = hits(&listener, 20).await;

    assert_eq!(count(&seen, TaskSetLabel::Blue, "blue"), 20);
    assert_eq!(listener.served(), Served { blue: 20, green: 0, upstream_errors: 0 });
}

#[tokio::test]
async fn a_ten_percent_canary_sends_exactly_one_in_ten_to_green() {
    let (blue, green) = (upstream("blue").await, upstream("green").await);
    let listener = Listener::bind("prod", 0, blue).await.unwrap();

    listener.route(blue, Some(green), 10.0);
    assert_eq!(listener.weights(), (90.0, 10.0));
    let seen = hits(&listener, 100).await;

    assert_eq!(count(&seen, TaskSetLabel::Green, "green"), 10);
    assert_eq!(count(&seen, TaskSetLabel::Blue, "blue"), 90);
    // Spread evenly, not bunched: every window of ten has exactly one green.
    for window in seen.chunks(10) {
        assert_eq!(count(window, TaskSetLabel::Green, "green"), 1, "{window:?}");
    }
    assert_eq!(listener.served(), Served { blue: 90, green: 10, upstream_errors: 0 });
}

#[tokio::test]
async fn a_full_shift_then_promotion_keeps_green_serving() {
    let (blue, green) = (upstream("blue").await, upstream("green").await);
    let listener = Listener::bind("prod", 0, blue).await.unwrap();

    listener.route(blue, Some(green), 100.0);
    assert_eq!(listener.weights(), (0.0, 100.0));
    assert_eq!(count(&hits(&listener, 10).await, TaskSetLabel::Green, "green"), 10);

    // After the deployment the replacement is the new original: blue for the next deployment.
    listener.route(green, None, 0.0);
    assert_eq!(listener.weights(), (100.0, 0.0));
    assert_eq!(count(&hits(&listener, 10).await, TaskSetLabel::Blue, "green"), 10);
    assert_eq!(listener.served(), Served { blue: 10, green: 10, upstream_errors: 0 });
}

#[tokio::test]
async fn weights_are_clamped_and_need_a_green() {
    let (blue, green) = (upstream("blue").await, upstream("green").await);
    let listener = Listener::bind("prod", 0, blue).await.unwrap();

    listener.route(blue, None, 30.0);
    assert_eq!(listener.weights(), (100.0, 0.0));
    listener.route(blue, Some(green), 250.0);
    assert_eq!(listener.weights(), (0.0, 100.0));
    listener.route(blue, Some(green), f64::NAN);
    assert_eq!(listener.weights(), (100.0, 0.0));
    listener.route(blue, Some(green), 12.345);
    assert_eq!(listener.weights(), (87.65, 12.35));
}

#[tokio::test]
async fn an_unreachable_task_set_gets_a_502_attributed_to_it() {
    let blue = upstream("blue").await;
    let gone = closed_port().await;
    let listener = Listener::bind("test", 0, blue).await.unwrap();
    listener.route(blue, Some(gone), 100.0);

    let response = reqwest::get(format!("http://{}/health", listener.addr())).await.unwrap();

    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()[TASK_SET_HEADER], "Green");
    let body = response.text().await.unwrap();
    assert!(body.contains(&format!("listener test: Green task set at {gone} is unreachable")), "{body}");
    assert_eq!(listener.served(), Served { blue: 0, green: 0, upstream_errors: 1 });
}

#[tokio::test]
async fn app_errors_pass_through_as_served() {
    let blue = upstream("blue").await;
    let listener = Listener::bind("prod", 0, blue).await.unwrap();

    let response = reqwest::get(format!("http://{}/unhealthy", listener.addr())).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()[TASK_SET_HEADER], "Blue");
    assert_eq!(listener.served(), Served { blue: 1, green: 0, upstream_errors: 0 });
}

#[tokio::test]
async fn method_path_query_headers_and_body_are_forwarded() {
    let blue = upstream("blue").await;
    let listener = Listener::bind("prod", 0, blue).await.unwrap();

    let response = reqwest::Client::new()
        .post(format!("http://{}/v2/cart/42/items?expand=prices&currency=EUR", listener.addr()))
        .header("x-request-id", "req-7")
        .header("content-type", "application/json")
        .body(r#"{"sku":"tea","quantity":2}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-upstream"], "blue");
    assert_eq!(response.headers()["content-type"], "application/json");
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo,
        json!({
            "method": "POST",
            "path": "/v2/cart/42/items",
            "query": "expand=prices&currency=EUR",
            "x_request_id": "req-7",
            "content_type": "application/json",
            "body": r#"{"sku":"tea","quantity":2}"#,
        })
    );
}

/// Waits up to a second for `addr` to refuse connections.
async fn assert_closes(addr: SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{addr} still accepts connections");
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let blue = upstream("blue").await;
    let listener = Listener::bind("prod", 0, blue).await.unwrap();
    hits(&listener, 1).await;
    let other_handle = listener.clone();

    listener.shutdown();

    assert_closes(other_handle.addr()).await;
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_listener() {
    let blue = upstream("blue").await;
    let listener = Listener::bind("prod", 0, blue).await.unwrap();
    let addr = listener.addr();
    hits(&listener, 1).await;

    drop(listener);

    assert_closes(addr).await;
}
