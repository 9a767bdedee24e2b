//! The checkout contract the drill samples share, so the ECS service and the Lambda function
//! answer with the same cart.
//!
//! The motivating incident: checkout renamed the response field `total_cents` to
//! `total_minor_units`, and every client that read `total_cents` broke at once. The shapes below
//! are the versions of that change a deployment can ship.

use serde_json::{Value, json};

/// Which total field(s) a cart carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// `total_cents` only: the contract clients depend on.
    Cents,
    /// `total_minor_units` only: the rename that broke clients.
    MinorUnits,
    /// Both fields: the compatible way to ship the rename, keeping the old field until clients move.
    Both,
}

impl Shape {
    /// The spelling used on the command line and in the `x-checkout-shape` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cents => "cents",
            Self::MinorUnits => "minor-units",
            Self::Both => "both",
        }
    }
}

/// The cart `id` as the response body of `GET /v2/cart/{id}`, in `shape`.
pub fn cart(id: &str, shape: Shape) -> Value {
    const TOTAL: u64 = 1299;
    let mut cart = json!({"cart_id": id, "currency": "EUR", "items": [{"sku": "tea", "quantity": 1}]});
    if matches!(shape, Shape::Cents | Shape::Both) {
        cart["total_cents"] = TOTAL.into();
    }
    if matches!(shape, Shape::MinorUnits | Shape::Both) {
        cart["total_minor_units"] = TOTAL.into();
    }
    cart
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_carry_the_expected_totals() {
        let totals = |shape| {
            let cart = cart("demo", shape);
            (cart.get("total_cents").cloned(), cart.get("total_minor_units").cloned())
        };
        assert_eq!(totals(Shape::Cents), (Some(1299.into()), None));
        assert_eq!(totals(Shape::MinorUnits), (None, Some(1299.into())));
        assert_eq!(totals(Shape::Both), (Some(1299.into()), Some(1299.into())));
        assert_eq!(cart("42", Shape::Cents)["cart_id"], "42");
    }
}
