//! The checkout service for the ECS drill: serves `GET /v2/cart/{id}` in one of three shapes.
//!
//! Clients read `total_cents`. A later version renamed it to `total_minor_units` and broke them all.
//! Run one process per task set with the shape that version ships:
//!
//! - `--shape cents`: the contract clients depend on; the blue task set.
//! - `--shape minor-units`: the breaking rename; as green, the drill expects the deployment to be
//!   stopped before production traffic reaches it.
//! - `--shape both`: the compatible rename, adding `total_minor_units` and keeping `total_cents`; as
//!   green, the drill expects the deployment to succeed.
//!
//! Every response carries `x-checkout-shape`, so a failing response can be traced to the version
//! that sent it.

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::Path;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router, middleware};
use checkout_examples::{Shape, cart};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Sample checkout service for the drill")]
struct Args {
    /// Port to listen on at 127.0.0.1 (0 picks a free one).
    #[arg(long)]
    port: u16,
    /// Which total field(s) carts carry.
    #[arg(long, value_enum)]
    shape: Shape,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Args { port, shape } = Args::parse();
    let app = Router::new()
        .route("/v2/cart/{id}", get(move |Path(id): Path<String>| async move { Json(cart(&id, shape)) }))
        .route("/health", get(|| async { "ok" }))
        .layer(middleware::map_response(move |mut response: Response| async move {
            response.headers_mut().insert("x-checkout-shape", HeaderValue::from_static(shape.as_str()));
            response
        }));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    eprintln!("checkout-service ({}) listening on {}", shape.as_str(), listener.local_addr()?);
    axum::serve(listener, app).await
}
