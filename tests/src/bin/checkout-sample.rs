//! A stand-in checkout service for the demo: serves the cart in the v2 contract
//! (`total_minor_units`) or, as a stale green build would, in the v1 shape (`total_cents`).

use clap::{Parser, ValueEnum};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Contract {
    /// The old shape: `total_cents`, no `total_minor_units`.
    V1,
    /// The current contract: `total_minor_units`.
    V2,
}

/// Serves GET /v2/cart/{id} and GET /health on 127.0.0.1.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Which response shape to serve.
    #[arg(long, value_enum)]
    contract: Contract,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let cart = match args.contract {
        Contract::V1 => {
            json!({"cart_id": "demo", "currency": "EUR", "total_cents": 1299, "items": [{"sku": "tea", "quantity": 1}]})
        }
        Contract::V2 => {
            json!({"cart_id": "demo", "currency": "EUR", "total_minor_units": 1299, "items": [{"sku": "tea", "quantity": 1}]})
        }
    };
    let router = axum::Router::new()
        .route("/v2/cart/{id}", axum::routing::get(move || async move { axum::Json(cart) }))
        .route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    axum::serve(listener, router).await
}
