//! Judging what a measurement brought back, where it can neither starve the timers nor exhaust
//! memory.
//!
//! Parsing a body and validating it against a schema is CPU work that no timeout can pre-empt
//! once it runs on an async worker: a few megabytes under a Lambda's CPU share take seconds. So it
//! runs on the blocking pool, a bounded number at a time ([`JUDGING_SLOTS`]), and the measurement
//! awaits it like any I/O, so its timeout and the run's deadline still fire. A judging that
//! outlives its measurement keeps its slot until it finishes: abandoned work cannot pile up.
//!
//! A parsed `serde_json::Value` is many times larger than its text (a 32-byte node per value, a
//! B-tree node per object), so a body within its byte cap can still need an unbounded amount of
//! memory. [`parse_within`] builds the value while charging every allocation against a budget of
//! [`PARSE_BUDGET_FACTOR`] times the check's byte cap, and gives up past it; that makes the worst
//! case of a plan a sum the plan loader can compute ([`crate::plan::MemoryNeed`]).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

/// Bodies judged at once per process. Judging is CPU-bound, and a Lambda function has at most a
/// couple of cores' worth of CPU below 3 GB, so more slots would add memory, not speed.
pub const JUDGING_SLOTS: usize = 2;

/// A parsed body may take this many times the check's byte cap (`max_body_bytes`, or an invoke
/// check's `max_result_bytes`). API responses measure 6–12× (`shared/tests/parse_memory.rs` prints
/// the figures); one-digit arrays and single-key objects, the densest shapes, reach 16–83× and
/// fail with a reason instead.
pub const PARSE_BUDGET_FACTOR: usize = 16;

/// The slots of one process, shared by every measurement of every invocation.
pub(crate) fn judging_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(JUDGING_SLOTS))
}

/// Runs `work` on the blocking pool once a judging slot is free. The slot is held until `work`
/// returns, even if the caller stops waiting.
pub(crate) async fn off_the_workers<T: Send + 'static>(
    slots: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let slot = Arc::clone(slots).acquire_owned().await.map_err(|_| "judging has shut down".to_owned())?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|err| format!("judging panicked: {}", crate::runner::panic_message(err)))
}

/// Why a body could not be turned into a value.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON, or not only JSON.
    NotJson(serde_json::Error),
    /// Parsing needed more than the budget.
    OverBudget {
        /// The budget, in bytes.
        budget: usize,
    },
}

/// Parses `body` as one JSON document, using at most about `budget` bytes of heap for the value.
pub fn parse_within(body: &[u8], budget: usize) -> Result<Value, ParseError> {
    let charges = Charges { used: Cell::new(0), budget, exceeded: Cell::new(false) };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = Node(&charges).deserialize(&mut deserializer).and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if charges.exceeded.get() => Err(ParseError::OverBudget { budget }),
        Err(err) => Err(ParseError::NotJson(err)),
    }
}

/// What the value built so far is estimated to occupy, against its budget.
struct Charges {
    used: Cell<usize>,
    budget: usize,
    exceeded: Cell<bool>,
}

/// The size of one `Value`, the unit that arrays and objects store.
const VALUE_BYTES: usize = std::mem::size_of::<Value>();
/// An object's first B-tree leaf: 11 keys (`String`), 11 values, a parent link and two counts.
const MAP_NODE_BYTES: usize = 11 * (std::mem::size_of::<String>() + VALUE_BYTES) + 16;
/// Entries an object's first leaf holds.
const MAP_NODE_ENTRIES: usize = 11;
/// What each object entry adds on average once an object outgrows one leaf: Rust's B-tree
/// splits leave nodes about half full, so a leaf per five or six entries.
const MAP_ENTRY_BYTES: usize = MAP_NODE_BYTES / 5;

/// What the allocator takes for `len` requested bytes: 16-byte granules plus a header.
fn heap_bytes(len: usize) -> usize {
    if len == 0 { 0 } else { len.div_ceil(16) * 16 + 16 }
}

impl Charges {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let used = self.used.get().saturating_add(bytes);
        self.used.set(used);
        if used > self.budget {
            self.exceeded.set(true);
            return Err(E::custom(format_args!("the parsed body would exceed its {} byte budget", self.budget)));
        }
        Ok(())
    }
}

/// Builds one JSON value, charging what it allocates; the same values `serde_json::Value`'s own
/// deserializer builds.
struct Node<'a>(&'a Charges);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.0.charge(heap_bytes(value.len()))?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::new();
        while let Some(item) = items.next_element_seed(Node(self.0))? {
            if array.len() == array.capacity() {
                // Vec doubles its capacity (at least 4) and reallocates; charge the new block.
                let grown = (array.capacity() * 2).max(4);
                self.0.charge(heap_bytes((grown - array.capacity()) * VALUE_BYTES))?;
                array.reserve_exact(grown - array.len());
            }
            array.push(item);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let node = match object.len() {
                0 => heap_bytes(MAP_NODE_BYTES),
                n if n < MAP_NODE_ENTRIES => 0,
                _ => MAP_ENTRY_BYTES,
            };
            self.0.charge(node + heap_bytes(key.len()))?;
            let value = entries.next_value_seed(Node(self.0))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        parse_within(text.as_bytes(), usize::MAX).unwrap()
    }

    #[test]
    fn builds_the_same_values_as_serde_json() {
        for text in [
            r#"{"a": [1, -2, 3.5, "x\u00e9", true, null, {"b": {}}], "c": "", "a2": []}"#,
            "[]",
            "\"plain\"",
            "1e400",
            r#"{"dup": 1, "dup": 2}"#,
        ] {
            let ours = parse_within(text.as_bytes(), usize::MAX);
            let theirs = serde_json::from_str::<Value>(text);
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{text}"),
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!("{text}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
        assert_eq!(parse(r#"{"k": [1]}"#)["k"][0], 1);
    }

    #[test]
    fn trailing_data_and_bad_syntax_are_not_json() {
        for text in ["{} {}", "{", "[1,]", ""] {
            assert!(matches!(parse_within(text.as_bytes(), usize::MAX), Err(ParseError::NotJson(_))), "{text}");
        }
    }

    #[test]
    fn a_dense_body_stops_at_its_budget() {
        let body = format!("[{}]", vec![r#"{"a":0}"#; 10_000].join(","));
        let budget = body.len() * PARSE_BUDGET_FACTOR;
        assert!(matches!(parse_within(body.as_bytes(), budget), Err(ParseError::OverBudget { .. })));
        assert!(parse_within(body.as_bytes(), budget * 10).is_ok());
    }
}
