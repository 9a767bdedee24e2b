//! How much memory a parsed JSON body really takes, and whether the judging budget's estimate
//! covers it. Counts every allocation (dhat's allocator) while each shape is parsed, and prints the
//! measured expansion next to the estimate: the figures the plan reference quotes.

use greenlight::checks::judge::{PARSE_BUDGET_FACTOR, ParseError, parse_within};
use serde_json::json;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// About 128 KiB of text of each shape: large enough for the per-node costs to dominate, small
/// enough for a counting allocator in a debug build.
fn shapes() -> Vec<(&'static str, String)> {
    let target = 128 << 10;
    let repeat = |item: String| {
        let n = target / (item.len() + 1);
        format!("[{}]", vec![item; n].join(","))
    };
    let cart = json!({"cart_id": "c-1842", "currency": "EUR", "total_minor_units": 1299,
        "items": [{"sku": "tea-earl-grey", "quantity": 1, "unit_minor_units": 899},
                  {"sku": "mug-blue", "quantity": 2, "unit_minor_units": 200}]});
    let user = json!({"id": 48213, "name": "Ada Lovelace", "email": "ada@example.com", "active": true,
        "roles": ["admin", "billing"], "created_at": "2026-11-30T12:00:00Z", "score": 0.93});
    let wide: serde_json::Map<String, serde_json::Value> =
        (0..target / 24).map(|i| (format!("key_{i:08}"), json!(i))).collect();
    vec![
        ("API: carts with line items", repeat(cart.to_string())),
        ("API: user records", repeat(user.to_string())),
        ("one wide object", serde_json::Value::Object(wide).to_string()),
        ("strings of 64 characters", repeat(format!("\"{}\"", "x".repeat(64)))),
        ("one-digit numbers", repeat("7".to_owned())),
        ("single-key objects", repeat(r#"{"a":0}"#.to_owned())),
    ]
}

/// The smallest budget `parse_within` accepts for `body`: what it charges.
fn charged(body: &[u8]) -> usize {
    let (mut low, mut high) = (0usize, body.len() * 128);
    while low < high {
        let mid = low + (high - low) / 2;
        match parse_within(body, mid) {
            Ok(_) => high = mid,
            Err(ParseError::OverBudget { .. }) => low = mid + 1,
            Err(ParseError::NotJson(err)) => panic!("not JSON: {err}"),
        }
    }
    low
}

#[test]
fn the_estimate_covers_what_parsing_allocates() {
    let _profiler = dhat::Profiler::builder().testing().build();
    println!("{:<28} {:>10} {:>12} {:>9} {:>9} {:>8}", "shape", "text", "heap", "measured", "estimate", "judged");
    for (shape, text) in shapes() {
        let before = dhat::HeapStats::get().curr_bytes;
        let value = parse_within(text.as_bytes(), usize::MAX).expect("parses");
        let heap = dhat::HeapStats::get().curr_bytes - before;
        drop(value);
        let estimate = charged(text.as_bytes());
        let measured = heap as f64 / text.len() as f64;
        let estimated = estimate as f64 / text.len() as f64;
        let judged = estimate <= text.len() * PARSE_BUDGET_FACTOR;
        println!(
            "{shape:<28} {:>10} {heap:>12} {measured:>8.1}× {estimated:>8.1}× {:>8}",
            text.len(),
            if judged { "yes" } else { "refused" }
        );
        assert!(estimate >= heap, "{shape}: estimated {estimate} bytes, parsing allocated {heap}");
        assert!(estimate <= heap * 3, "{shape}: estimated {estimate} bytes, far above the {heap} allocated");
    }
}
