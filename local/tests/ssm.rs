//! Parameter Store through the real SDK (awsJson1_1): parameters put, overwritten and read back
//! by version, SecureStrings with and without decryption, hierarchies paged by path, parameters
//! seeded from Rust, and the errors a hook must tell apart, each as its typed SDK error.

mod common;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use codedeploy_local::config::LocalConfig;
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::faults::Faults;
use codedeploy_local::server::Server;
use codedeploy_local::ssm::store;

async fn client(endpoint: &str) -> Client {
    Client::new(&common::sdk_config(endpoint).await)
}

async fn start() -> (Server, Client) {
    let server = Server::start(LocalConfig::default(), TimeScale::REAL, 0, None).await.expect("the emulator starts");
    let client = client(&server.endpoint()).await;
    (server, client)
}

#[tokio::test]
async fn a_parameter_is_put_overwritten_and_read_back_by_version() {
    let (server, ssm) = start().await;
    let put = ssm
        .put_parameter()
        .name("/checkout/gate/plan")
        .value(r#"{"checks": []}"#)
        .r#type(ParameterType::String)
        .description("the checkout service's gate")
        .send()
        .await
        .expect("PutParameter");
    assert_eq!((put.version(), put.tier()), (1, Some(&ParameterTier::Standard)));

    let again = ssm
        .put_parameter()
        .name("/checkout/gate/plan")
        .value("{}")
        .r#type(ParameterType::String)
        .send()
        .await
        .expect_err("exists");
    assert!(again.as_service_error().is_some_and(|e| e.is_parameter_already_exists()), "{again:?}");

    let overwritten = ssm
        .put_parameter()
        .name("/checkout/gate/plan")
        .value(r#"{"checks": [{"name": "health"}]}"#)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter with Overwrite, keeping the type");
    assert_eq!(overwritten.version(), 2);

    let latest = ssm.get_parameter().name("/checkout/gate/plan").send().await.expect("GetParameter");
    let parameter = latest.parameter().expect("a parameter");
    assert_eq!(parameter.name(), Some("/checkout/gate/plan"));
    assert_eq!(parameter.value(), Some(r#"{"checks": [{"name": "health"}]}"#));
    assert_eq!(parameter.r#type(), Some(&ParameterType::String));
    assert_eq!(parameter.version(), 2);
    assert_eq!(parameter.data_type(), Some("text"));
    assert_eq!(parameter.arn(), Some("arn:aws:ssm:us-east-1:123456789012:parameter/checkout/gate/plan"));
    assert!(parameter.selector().is_none());
    let modified = parameter.last_modified_date().expect("LastModifiedDate").secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - modified).abs() < 60, "{modified} is not now ({now})");

    let first = ssm.get_parameter().name("/checkout/gate/plan:1").send().await.expect("by version");
    let parameter = first.parameter().expect("a parameter");
    assert_eq!((parameter.value(), parameter.version()), (Some(r#"{"checks": []}"#), 1));
    assert_eq!(parameter.selector(), Some(":1"));
    assert_eq!(parameter.name(), Some("/checkout/gate/plan"));

    let by_arn = ssm
        .get_parameter()
        .name("arn:aws:ssm:us-east-1:123456789012:parameter/checkout/gate/plan")
        .send()
        .await
        .expect("by ARN");
    assert_eq!(by_arn.parameter().and_then(|p| p.name()), Some("/checkout/gate/plan"));

    let missing_version = ssm.get_parameter().name("/checkout/gate/plan:9").send().await.expect_err("no version 9");
    assert!(
        missing_version.as_service_error().is_some_and(|e| e.is_parameter_version_not_found()),
        "{missing_version:?}"
    );
    let missing = ssm.get_parameter().name("/checkout/gate/none").send().await.expect_err("no such parameter");
    assert!(missing.as_service_error().is_some_and(|e| e.is_parameter_not_found()), "{missing:?}");
    let label = ssm.get_parameter().name("/checkout/gate/plan:prod").send().await.expect_err("no labels here");
    assert!(label.as_service_error().is_some_and(|e| e.is_parameter_not_found()), "{label:?}");

    ssm.delete_parameter().name("/checkout/gate/plan").send().await.expect("DeleteParameter");
    let gone = ssm.get_parameter().name("/checkout/gate/plan").send().await.expect_err("deleted");
    assert!(gone.as_service_error().is_some_and(|e| e.is_parameter_not_found()), "{gone:?}");
    let twice = ssm.delete_parameter().name("/checkout/gate/plan").send().await.expect_err("already deleted");
    assert!(twice.as_service_error().is_some_and(|e| e.is_parameter_not_found()), "{twice:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_secure_string_is_read_as_ciphertext_unless_decrypted() {
    let (server, ssm) = start().await;
    ssm.put_parameter()
        .name("/checkout/api-key")
        .value("s3cr3t-value")
        .r#type(ParameterType::SecureString)
        .key_id("alias/checkout")
        .send()
        .await
        .expect("PutParameter");
    let read = |decrypt: bool| {
        let ssm = ssm.clone();
        async move {
            let output =
                ssm.get_parameter().name("/checkout/api-key").with_decryption(decrypt).send().await.expect("read");
            output.parameter().and_then(|p| p.value()).expect("a value").to_owned()
        }
    };
    let encrypted = read(false).await;
    assert_ne!(encrypted, "s3cr3t-value");
    assert!(!encrypted.contains("s3cr3t"), "{encrypted}");
    use base64::Engine;
    assert!(base64::engine::general_purpose::STANDARD.decode(&encrypted).is_ok(), "{encrypted} is not base64");
    assert_eq!(read(true).await, "s3cr3t-value");
    assert_eq!(read(false).await, encrypted, "the same ciphertext for the same version");

    let both = ssm
        .get_parameters()
        .names("/checkout/api-key")
        .names("/checkout/nope")
        .names("/checkout/api-key:7")
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameters");
    let values: Vec<_> = both.parameters().iter().map(|p| p.value().unwrap_or_default()).collect();
    assert_eq!(values, ["s3cr3t-value"]);
    assert_eq!(both.invalid_parameters(), ["/checkout/nope", "/checkout/api-key:7"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_hierarchy_is_read_by_path_a_page_at_a_time() {
    let (server, ssm) = start().await;
    let parameters = server.emulator.ssm();
    for n in 0..7 {
        parameters.put(&format!("/shop/web/p{n}"), &n.to_string(), store::ParameterType::String).expect("seeded");
    }
    parameters.put("/shop/web/db/url", "postgres://db", store::ParameterType::String).expect("seeded");
    parameters.put("/shop/web/db/password", "pw", store::ParameterType::SecureString).expect("seeded");
    parameters.put("/shop/other", "x", store::ParameterType::StringList).expect("seeded");
    assert_eq!(parameters.put("/shop/web/p0", "again", store::ParameterType::String), Ok(2), "seeding overwrites");

    let mut names = Vec::new();
    let mut pages = 0;
    let mut token = None;
    loop {
        let page = ssm
            .get_parameters_by_path()
            .path("/shop/web")
            .max_results(3)
            .set_next_token(token.take())
            .send()
            .await
            .expect("GetParametersByPath");
        pages += 1;
        assert!(page.parameters().len() <= 3);
        names.extend(page.parameters().iter().map(|p| p.name().unwrap_or_default().to_owned()));
        match page.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    let direct: Vec<String> = (0..7).map(|n| format!("/shop/web/p{n}")).collect();
    assert_eq!(names, direct, "only the direct children, in name order");
    assert_eq!(pages, 3);

    let recursive = ssm
        .get_parameters_by_path()
        .path("/shop/")
        .recursive(true)
        .with_decryption(true)
        .max_results(4)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("the SDK's paginator");
    assert_eq!(recursive.len(), 3, "ten parameters, four a page");
    let found: Vec<(&str, &str)> = recursive
        .iter()
        .flat_map(|page| page.parameters())
        .map(|p| (p.name().unwrap_or_default(), p.value().unwrap_or_default()))
        .collect();
    assert_eq!(found.len(), 10, "{found:?}");
    assert!(found.contains(&("/shop/web/db/password", "pw")), "decrypted: {found:?}");
    assert!(found.contains(&("/shop/other", "x")));
    assert!(found.contains(&("/shop/web/p0", "again")));

    let encrypted = ssm.get_parameters_by_path().path("/shop/web/db").send().await.expect("GetParametersByPath");
    let password = encrypted.parameters().iter().find(|p| p.name() == Some("/shop/web/db/password")).expect("listed");
    assert_ne!(password.value(), Some("pw"), "not decrypted without WithDecryption");

    let forged = ssm.get_parameters_by_path().path("/shop/web").next_token("forged").send().await.expect_err("forged");
    assert!(forged.as_service_error().is_some_and(|e| e.is_invalid_next_token()), "{forged:?}");
    let relative = ssm.get_parameters_by_path().path("shop").send().await.expect_err("not a path");
    assert_eq!(relative.code(), Some("ValidationException"), "{relative:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_names_and_values_are_refused_as_parameter_store_refuses_them() {
    let (server, ssm) = start().await;
    let put =
        |name: &str, value: String| ssm.put_parameter().name(name).value(value).r#type(ParameterType::String).send();
    for name in ["/has space", "not/qualified", "/trailing/", "ssm-reserved", "/a:1"] {
        let err = put(name, "v".to_owned()).await.expect_err(name);
        assert_eq!(err.code(), Some("ValidationException"), "{name}: {err:?}");
    }
    let reserved = put("/aws/mine", "v".to_owned()).await.expect_err("AWS's namespace");
    assert_eq!(reserved.code(), Some("AccessDeniedException"), "{reserved:?}");
    let deep = format!("/{}", (1..=16).map(|n| format!("l{n}")).collect::<Vec<_>>().join("/"));
    let err = put(&deep, "v".to_owned()).await.expect_err("sixteen levels");
    assert!(err.as_service_error().is_some_and(|e| e.is_hierarchy_level_limit_exceeded_exception()), "{err:?}");

    let too_large = put("/big", "x".repeat(4097)).await.expect_err("over 4 KB in Standard");
    assert_eq!(too_large.code(), Some("ValidationException"), "{too_large:?}");
    assert!(too_large.message().unwrap_or_default().contains("4096"), "{too_large:?}");
    assert!(put("/big", "x".repeat(4096)).await.is_ok(), "4 KB fits");
    let advanced = ssm
        .put_parameter()
        .name("/bigger")
        .value("x".repeat(8192))
        .r#type(ParameterType::String)
        .tier(ParameterTier::Advanced)
        .send()
        .await
        .expect("8 KB fits in Advanced");
    assert_eq!(advanced.tier(), Some(&ParameterTier::Advanced));
    let err = ssm
        .put_parameter()
        .name("/biggest")
        .value("x".repeat(8193))
        .r#type(ParameterType::String)
        .tier(ParameterTier::Advanced)
        .send()
        .await
        .expect_err("over 8 KB");
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    let untyped = ssm.put_parameter().name("/untyped").value("v").send().await.expect_err("a new parameter's type");
    assert_eq!(untyped.code(), Some("ValidationException"), "{untyped:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn denied_and_throttled_operations_answer_as_ssm_does() {
    let (server, ssm) = start().await;
    server.emulator.ssm().put("/gate", "v", store::ParameterType::String).expect("seeded");
    let faults = |denied: &[&str], throttled: &[&str]| Faults {
        denied: denied.iter().map(|op| (*op).to_owned()).collect(),
        throttled: throttled.iter().map(|op| (*op).to_owned()).collect(),
        ..Faults::default()
    };
    server.emulator.set_faults(faults(&["GetParameter"], &["GetParametersByPath"])).expect("served operations");
    let denied = ssm.get_parameter().name("/gate").send().await.expect_err("denied");
    assert_eq!(denied.code(), Some("AccessDeniedException"), "{denied:?}");
    assert!(denied.message().unwrap_or_default().contains("ssm:GetParameter"), "{denied:?}");
    let throttled = ssm.get_parameters_by_path().path("/").send().await.expect_err("throttled");
    assert_eq!(throttled.code(), Some("ThrottlingException"), "{throttled:?}");
    let other = ssm.get_parameters().names("/gate").send().await.expect("not denied");
    assert_eq!(other.parameters().len(), 1);

    server.emulator.set_faults(Faults::default()).expect("cleared");
    assert!(ssm.get_parameter().name("/gate").send().await.is_ok());
    let calls: Vec<_> = server.emulator.calls().into_iter().map(|c| (c.operation, c.resource)).collect();
    assert!(calls.contains(&("GetParameter".to_owned(), Some("/gate".to_owned()))), "{calls:?}");
    server.shutdown().await;
}
