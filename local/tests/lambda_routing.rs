//! How the local Lambda resolves what an invocation runs: versions, `$LATEST`, qualified names
//! and ARNs, and weighted aliases, which must split invocations exactly as their weights say.

use std::collections::BTreeMap;

use codedeploy_local::config::{AliasConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{Emulator, TimeScale};
use codedeploy_local::lambda::runtime::RuntimeHost;
use serde_json::json;

async fn emulator() -> Emulator {
    let process = ProcessConfig { command: vec!["true".to_owned()], environment: BTreeMap::new() };
    let versions = ["$LATEST", "1", "2"].map(|v| (v.to_owned(), process.clone())).into_iter().collect();
    let config = LocalConfig {
        functions: BTreeMap::from([(
            "checkout".to_owned(),
            FunctionConfig {
                timeout_seconds: 3,
                memory_mb: 128,
                versions,
                aliases: BTreeMap::from([(
                    "live".to_owned(),
                    AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
                )]),
            },
        )]),
        ..LocalConfig::default()
    };
    Emulator::start(config, RuntimeHost::new(BTreeMap::new(), None), TimeScale::REAL).await.expect("starts")
}

fn version(emulator: &Emulator, name: &str, qualifier: Option<&str>) -> Result<String, &'static str> {
    emulator.resolve(name, qualifier).map(|f| f.version).map_err(|e| e.code)
}

#[tokio::test]
async fn names_qualifiers_and_arns_resolve_to_versions() {
    let emulator = emulator().await;
    assert_eq!(version(&emulator, "checkout", None), Ok("$LATEST".to_owned()));
    assert_eq!(version(&emulator, "checkout", Some("2")), Ok("2".to_owned()));
    assert_eq!(version(&emulator, "checkout:live", None), Ok("1".to_owned()));
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:checkout:2";
    assert_eq!(version(&emulator, arn, None), Ok("2".to_owned()));
    assert_eq!(version(&emulator, "checkout:1", Some("2")), Err("InvalidParameterValueException"));
    assert_eq!(version(&emulator, "checkout", Some("7")), Err("ResourceNotFoundException"));
    assert_eq!(version(&emulator, "missing", None), Err("ResourceNotFoundException"));
    assert_eq!(version(&emulator, "bad name!", None), Err("InvalidParameterValueException"));
}

#[tokio::test]
async fn a_ten_percent_weight_is_every_tenth_invocation() {
    let emulator = emulator().await;
    let update = json!({"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}}});
    let alias = emulator.update_alias("checkout", "live", &update).expect("UpdateAlias");
    assert_eq!(alias["RoutingConfig"]["AdditionalVersionWeights"]["2"], 0.1);
    let picks: Vec<String> = (0..100).map(|_| version(&emulator, "checkout", Some("live")).unwrap()).collect();
    for block in picks.chunks(10) {
        assert_eq!(block.iter().filter(|v| *v == "2").count(), 1, "{block:?}");
    }

    let done = json!({"FunctionVersion": "2", "RoutingConfig": {"AdditionalVersionWeights": {}}});
    emulator.update_alias("checkout", "live", &done).expect("UpdateAlias");
    assert!((0..20).all(|_| version(&emulator, "checkout", Some("live")) == Ok("2".to_owned())));
    assert_eq!(emulator.get_alias("checkout", "live").expect("GetAlias")["FunctionVersion"], "2");
}

#[tokio::test]
async fn impossible_alias_updates_are_refused() {
    let emulator = emulator().await;
    let code = |input: serde_json::Value| emulator.update_alias("checkout", "live", &input).unwrap_err().code;
    assert_eq!(
        code(json!({"RoutingConfig": {"AdditionalVersionWeights": {"2": 1.5}}})),
        "InvalidParameterValueException"
    );
    assert_eq!(code(json!({"FunctionVersion": "9"})), "ResourceNotFoundException");
    let unknown = emulator.update_alias("checkout", "canary", &json!({})).unwrap_err().code;
    assert_eq!(unknown, "ResourceNotFoundException");
}
