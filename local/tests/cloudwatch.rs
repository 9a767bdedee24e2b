//! CloudWatch through the real SDK (rpcv2Cbor) and raw awsJson1_0: metrics put and queried,
//! metrics recorded from real traffic and real invocations, alarms moved by data, and errors as
//! typed SDK errors.

mod common;

use common::fake_function;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, HistoryItemType, Metric, MetricDataQuery, MetricDatum, MetricStat, ScanBy,
    StateValue,
};
use codedeploy_local::config::{AliasConfig, EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::ecs::traffic::TaskSetLabel;
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::server::Server;
use serde_json::{Value, json};

/// `echo` (versions 1 and 2; alias `live` on 1 with half its invocations on 2) and an ECS
/// service `shop:web` whose tasks are Python's HTTP server.
fn config() -> LocalConfig {
    let echo = FunctionConfig {
        timeout_seconds: 5,
        memory_mb: 128,
        versions: ["1", "2"].iter().map(|v| ((*v).to_owned(), fake_function("echo"))).collect(),
        aliases: BTreeMap::from([(
            "live".to_owned(),
            AliasConfig {
                version: "1".to_owned(),
                additional_version_weights: BTreeMap::from([("2".to_owned(), 0.5)]),
            },
        )]),
    };
    let web = ProcessConfig {
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"].map(str::to_owned).to_vec(),
        environment: BTreeMap::new(),
    };
    LocalConfig {
        functions: BTreeMap::from([("echo".to_owned(), echo)]),
        task_definitions: BTreeMap::from([("web:1".to_owned(), web)]),
        ecs_services: BTreeMap::from([(
            "shop:web".to_owned(),
            EcsServiceConfig {
                task_definition: "web:1".to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 1,
            },
        )]),
    }
}

async fn client(endpoint: &str) -> Client {
    Client::new(&common::sdk_config(endpoint).await)
}

async fn start(scale: f64) -> (Server, Client) {
    let server = Server::start(config(), TimeScale(scale), 0, None).await.expect("the emulator starts");
    let client = client(&server.endpoint()).await;
    (server, client)
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn stat_query(
    id: &str,
    namespace: &str,
    name: &str,
    dimensions: &[Dimension],
    period: i32,
    stat: &str,
) -> MetricDataQuery {
    let metric =
        Metric::builder().namespace(namespace).metric_name(name).set_dimensions(Some(dimensions.to_vec())).build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(MetricStat::builder().metric(metric).period(period).stat(stat).build())
        .build()
}

/// A query computed only for others to use (`ReturnData: false`).
trait Hidden {
    fn hidden(self) -> Self;
}

impl Hidden for MetricDataQuery {
    fn hidden(mut self) -> Self {
        self.return_data = Some(false);
        self
    }
}

fn at(seconds: i64) -> DateTime {
    DateTime::from_secs(seconds)
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Values of each result by id.
fn by_id(output: &aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput) -> BTreeMap<String, Vec<f64>> {
    output.metric_data_results().iter().map(|r| (r.id().unwrap().to_owned(), r.values().to_vec())).collect()
}

#[tokio::test]
async fn put_metric_data_then_each_statistic_a_percentile_a_ratio_and_bounds() {
    let (server, cw) = start(1.0).await;
    // Two whole minutes, ten minutes ago, so both are complete periods at AWS's pace.
    let base = (now_secs() - 600) / 60 * 60;
    let dims = [dimension("Service", "checkout")];
    let datum = |name: &str, at_s: i64, values: Vec<f64>, counts: Vec<f64>| {
        MetricDatum::builder()
            .metric_name(name)
            .set_dimensions(Some(dims.to_vec()))
            .timestamp(at(at_s))
            .set_values(Some(values))
            .set_counts(Some(counts))
            .build()
    };
    cw.put_metric_data()
        .namespace("Shop")
        .metric_data(datum("Latency", base + 1, (1..=10).map(f64::from).collect(), vec![1.0; 10]))
        .metric_data(datum("Latency", base + 61, vec![100.0], vec![3.0]))
        .metric_data(datum("Requests", base + 5, vec![20.0], vec![1.0]))
        .metric_data(datum("Requests", base + 65, vec![50.0], vec![1.0]))
        .metric_data(datum("Errors", base + 7, vec![2.0], vec![1.0]))
        .metric_data(datum("Errors", base + 67, vec![5.0], vec![1.0]))
        .send()
        .await
        .expect("PutMetricData");

    let mut request = cw.get_metric_data().start_time(at(base)).end_time(at(base + 120));
    for stat in ["Sum", "Average", "Minimum", "Maximum", "SampleCount", "p90"] {
        let id = if stat == "p90" { "p90".to_owned() } else { stat.to_lowercase() };
        request = request.metric_data_queries(stat_query(&id, "Shop", "Latency", &dims, 60, stat));
    }
    let ratio = MetricDataQuery::builder().id("ratio").expression("100 * (errors / requests)").label("error %").build();
    let output = request
        .metric_data_queries(stat_query("errors", "Shop", "Errors", &dims, 60, "Sum").hidden())
        .metric_data_queries(stat_query("requests", "Shop", "Requests", &dims, 60, "Sum").hidden())
        .metric_data_queries(ratio)
        .send()
        .await
        .expect("GetMetricData");
    let values = by_id(&output);
    // Newest first (ScanBy defaults to TimestampDescending): the second minute, then the first.
    assert_eq!(values["sum"], vec![300.0, 55.0]);
    assert_eq!(values["average"], vec![100.0, 5.5]);
    assert_eq!(values["minimum"], vec![100.0, 1.0]);
    assert_eq!(values["maximum"], vec![100.0, 10.0]);
    assert_eq!(values["samplecount"], vec![3.0, 10.0]);
    assert_eq!(values["p90"], vec![100.0, 9.0]);
    assert_eq!(values["ratio"], vec![10.0, 10.0]);
    assert!(!values.contains_key("errors"), "ReturnData false leaves a query out");
    let sum = output.metric_data_results().iter().find(|r| r.id() == Some("sum")).unwrap();
    assert_eq!(sum.timestamps(), &[at(base + 60), at(base)]);
    assert_eq!(sum.status_code(), Some(&aws_sdk_cloudwatch::types::StatusCode::Complete));
    let ratio = output.metric_data_results().iter().find(|r| r.id() == Some("ratio")).unwrap();
    assert_eq!(ratio.label(), Some("error %"));

    // StartTime is inclusive and EndTime exclusive; ascending order on request; no data is empty.
    let output = cw
        .get_metric_data()
        .start_time(at(base + 61))
        .end_time(at(base + 120))
        .scan_by(ScanBy::TimestampAscending)
        .metric_data_queries(stat_query("sum", "Shop", "Latency", &dims, 60, "Sum"))
        .metric_data_queries(stat_query("none", "Shop", "Latency", &[dimension("Service", "other")], 60, "Sum"))
        .send()
        .await
        .expect("GetMetricData");
    assert_eq!(by_id(&output)["sum"], vec![300.0]);
    assert_eq!(by_id(&output)["none"], Vec::<f64>::new());
    let output = cw
        .get_metric_data()
        .start_time(at(base))
        .end_time(at(base + 62))
        .scan_by(ScanBy::TimestampAscending)
        .metric_data_queries(stat_query("sum", "Shop", "Latency", &dims, 60, "Sum"))
        .send()
        .await
        .expect("GetMetricData");
    assert_eq!(by_id(&output)["sum"], vec![55.0, 300.0], "base+61 is before the end, in the bucket of base+60");
    let output = cw
        .get_metric_data()
        .start_time(at(base))
        .end_time(at(base + 61))
        .metric_data_queries(stat_query("sum", "Shop", "Latency", &dims, 60, "Sum"))
        .send()
        .await
        .expect("GetMetricData");
    assert_eq!(by_id(&output)["sum"], vec![55.0], "EndTime is exclusive");
    let output = cw
        .get_metric_data()
        .start_time(at(base))
        .end_time(at(base + 62))
        .metric_data_queries(stat_query("sum", "Shop", "Latency", &dims, 60, "Sum"))
        .max_datapoints(1)
        .send()
        .await
        .expect("GetMetricData");
    assert_eq!(by_id(&output)["sum"].len(), 1);
    let next = output.next_token().expect("a second page").to_owned();
    let output = cw
        .get_metric_data()
        .start_time(at(base))
        .end_time(at(base + 62))
        .metric_data_queries(stat_query("sum", "Shop", "Latency", &dims, 60, "Sum"))
        .next_token(next)
        .send()
        .await
        .expect("GetMetricData, page 2");
    assert_eq!(by_id(&output)["sum"], vec![55.0]);
    assert_eq!(output.next_token(), None);

    // One-second periods put each datapoint in its own bucket.
    let output = cw
        .get_metric_data()
        .start_time(at(base))
        .end_time(at(base + 120))
        .metric_data_queries(stat_query("sum", "Shop", "Requests", &dims, 1, "Sum"))
        .send()
        .await
        .expect("GetMetricData");
    assert_eq!(by_id(&output)["sum"], vec![50.0, 20.0]);
    server.shutdown().await;
}

#[tokio::test]
async fn requests_through_a_listener_are_load_balancer_metrics_of_the_task_set_that_answered() {
    let (server, cw) = start(1.0).await;
    let (production, _) = server.emulator.listeners("shop:web").await.expect("the service's listeners");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/", "/", "/missing"] {
        http.get(format!("http://{production}{path}")).send().await.expect("the listener answers");
    }
    let start = now_secs() - 120;
    let lb = codedeploy_local::elbv2::load_balancer("shop:web").dimension;
    let blue = codedeploy_local::elbv2::target_group("shop:web", TaskSetLabel::Blue).dimension;
    let green = codedeploy_local::elbv2::target_group("shop:web", TaskSetLabel::Green).dimension;
    let dims = |tg: &str| [dimension("TargetGroup", tg), dimension("LoadBalancer", &lb)];
    let output = cw
        .get_metric_data()
        .start_time(at(start))
        .end_time(at(start + 240))
        .metric_data_queries(stat_query("requests", "AWS/ApplicationELB", "RequestCount", &dims(&blue), 300, "Sum"))
        .metric_data_queries(stat_query(
            "e4xx",
            "AWS/ApplicationELB",
            "HTTPCode_Target_4XX_Count",
            &dims(&blue),
            300,
            "Sum",
        ))
        .metric_data_queries(stat_query(
            "e5xx",
            "AWS/ApplicationELB",
            "HTTPCode_Target_5XX_Count",
            &dims(&blue),
            300,
            "Sum",
        ))
        .metric_data_queries(stat_query(
            "latency",
            "AWS/ApplicationELB",
            "TargetResponseTime",
            &dims(&blue),
            300,
            "Maximum",
        ))
        .metric_data_queries(stat_query("green", "AWS/ApplicationELB", "RequestCount", &dims(&green), 300, "Sum"))
        .send()
        .await
        .expect("GetMetricData");
    let values = by_id(&output);
    assert_eq!(values["requests"].iter().sum::<f64>(), 3.0, "{values:?}");
    assert_eq!(values["e4xx"].iter().sum::<f64>(), 1.0, "{values:?}");
    assert!(values["e5xx"].is_empty(), "{values:?}");
    assert!(values["latency"].iter().all(|s| *s > 0.0 && *s < 5.0), "seconds: {values:?}");
    assert!(values["green"].is_empty(), "no green task set answered: {values:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn invocations_through_an_alias_are_measured_per_executed_version() {
    let (server, cw) = start(1.0).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..4 {
        let url = format!("{}/2015-03-31/functions/echo/invocations?Qualifier=live", server.endpoint());
        let response = http.post(url).body("{}").send().await.expect("Invoke");
        assert_eq!(response.status(), 200);
    }
    let start = now_secs() - 120;
    let function = dimension("FunctionName", "echo");
    let resource = dimension("Resource", "echo:live");
    let version = |v: &str| [function.clone(), resource.clone(), dimension("ExecutedVersion", v)];
    let output = cw
        .get_metric_data()
        .start_time(at(start))
        .end_time(at(start + 240))
        .metric_data_queries(stat_query(
            "all",
            "AWS/Lambda",
            "Invocations",
            std::slice::from_ref(&function),
            300,
            "Sum",
        ))
        .metric_data_queries(stat_query(
            "alias",
            "AWS/Lambda",
            "Invocations",
            &[function.clone(), resource.clone()],
            300,
            "Sum",
        ))
        .metric_data_queries(stat_query("v1", "AWS/Lambda", "Invocations", &version("1"), 300, "Sum"))
        .metric_data_queries(stat_query("v2", "AWS/Lambda", "Invocations", &version("2"), 300, "Sum"))
        .metric_data_queries(stat_query("errors", "AWS/Lambda", "Errors", std::slice::from_ref(&function), 300, "Sum"))
        .metric_data_queries(stat_query(
            "duration",
            "AWS/Lambda",
            "Duration",
            std::slice::from_ref(&function),
            300,
            "SampleCount",
        ))
        .send()
        .await
        .expect("GetMetricData");
    let total = |id: &str| by_id(&output)[id].iter().sum::<f64>();
    assert_eq!((total("all"), total("alias"), total("v1"), total("v2")), (4.0, 4.0, 2.0, 2.0));
    assert_eq!(total("errors"), 0.0);
    assert_eq!(total("duration"), 4.0);
    server.shutdown().await;
}

async fn alarm_state(cw: &Client, name: &str) -> StateValue {
    let output = cw.describe_alarms().alarm_names(name).send().await.expect("DescribeAlarms");
    output.metric_alarms()[0].state_value().cloned().expect("a state")
}

async fn wait_for_state(cw: &Client, name: &str, wanted: StateValue) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while alarm_state(cw, name).await != wanted {
        assert!(std::time::Instant::now() < until, "{name} never reached {wanted:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_alarm_moves_on_its_data_and_its_history_says_so() {
    // At 60x a 60-second period lasts one real second.
    let (server, cw) = start(60.0).await;
    let mut events = server.emulator.subscribe();
    cw.put_metric_alarm()
        .alarm_name("errors-high")
        .namespace("Shop")
        .metric_name("Errors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
        .send()
        .await
        .expect("PutMetricAlarm");
    wait_for_state(&cw, "errors-high", StateValue::Ok).await;
    let datum = MetricDatum::builder().metric_name("Errors").value(10.0).build();
    cw.put_metric_data().namespace("Shop").metric_data(datum).send().await.expect("PutMetricData");
    wait_for_state(&cw, "errors-high", StateValue::Alarm).await;
    // With no more data, the next periods are not breaching.
    wait_for_state(&cw, "errors-high", StateValue::Ok).await;

    let history = cw
        .describe_alarm_history()
        .alarm_name("errors-high")
        .history_item_type(HistoryItemType::StateUpdate)
        .scan_by(ScanBy::TimestampAscending)
        .send()
        .await
        .expect("DescribeAlarmHistory");
    let summaries: Vec<&str> = history.alarm_history_items().iter().filter_map(|i| i.history_summary()).collect();
    assert_eq!(
        summaries,
        [
            "Alarm updated from INSUFFICIENT_DATA to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK"
        ]
    );
    let data: Value = serde_json::from_str(history.alarm_history_items()[1].history_data().unwrap()).unwrap();
    assert_eq!(data["newState"]["stateValue"], "ALARM");
    assert!(data["newState"]["stateReason"].as_str().unwrap().contains("[10]"), "{data}");
    let configuration = cw
        .describe_alarm_history()
        .alarm_name("errors-high")
        .history_item_type(HistoryItemType::ConfigurationUpdate)
        .send()
        .await
        .expect("DescribeAlarmHistory");
    assert_eq!(configuration.alarm_history_items().len(), 1);
    let recorded = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e.what {
            codedeploy_local::emulator::Happening::Alarm { name, state } if name == "errors-high" => Some(state),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(recorded, ["OK", "ALARM", "OK"]);
    server.shutdown().await;
}

#[tokio::test]
async fn set_alarm_state_and_the_control_override_move_an_alarm_until_it_is_evaluated() {
    let (server, cw) = start(1.0).await;
    for name in ["p99-latency", "other"] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace("Shop")
            .metric_name("Latency")
            .extended_statistic("p99")
            .period(3600)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .send()
            .await
            .expect("PutMetricAlarm");
    }
    wait_for_state(&cw, "p99-latency", StateValue::InsufficientData).await;
    cw.set_alarm_state()
        .alarm_name("p99-latency")
        .state_value(StateValue::Alarm)
        .state_reason("testing")
        .send()
        .await
        .expect("SetAlarmState");
    assert_eq!(alarm_state(&cw, "p99-latency").await, StateValue::Alarm);
    let alarms = cw.describe_alarms().state_value(StateValue::Alarm).send().await.expect("DescribeAlarms");
    let names: Vec<_> = alarms.metric_alarms().iter().filter_map(|a| a.alarm_name()).collect();
    assert_eq!(names, ["p99-latency"]);
    assert_eq!(alarms.metric_alarms()[0].extended_statistic(), Some("p99"));
    assert_eq!(alarms.metric_alarms()[0].state_reason(), Some("testing"));

    let url = format!("{}/_local/alarms/p99-latency", server.endpoint());
    let response = reqwest::Client::new().post(url).json(&json!({"state": "OK"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(alarm_state(&cw, "p99-latency").await, StateValue::Ok);

    let page = cw.describe_alarms().alarm_name_prefix("").max_records(1).send().await.expect("DescribeAlarms");
    assert_eq!(page.metric_alarms().len(), 1);
    assert!(page.next_token().is_some());

    let err = cw
        .set_alarm_state()
        .alarm_name("nope")
        .state_value(StateValue::Alarm)
        .state_reason("x")
        .send()
        .await
        .expect_err("no such alarm");
    assert!(err.as_service_error().is_some_and(|e| e.is_resource_not_found()), "{err:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn validation_errors_and_injected_faults_are_typed_sdk_errors() {
    let (server, cw) = start(1.0).await;
    let both = MetricDatum::builder().metric_name("M").value(1.0).values(2.0).build();
    let err = cw.put_metric_data().namespace("Shop").metric_data(both).send().await.expect_err("Value and Values");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_combination_exception()), "{err:?}");
    let datum = MetricDatum::builder().metric_name("M").value(1.0).build();
    let err = cw.put_metric_data().namespace("AWS/Mine").metric_data(datum).send().await.expect_err("AWS/ is reserved");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_value_exception()), "{err:?}");

    let query = stat_query("a", "Shop", "M", &[], 60, "Sum");
    let err = cw
        .get_metric_data()
        .start_time(at(0))
        .end_time(at(60))
        .metric_data_queries(query.clone())
        .next_token("forged")
        .send()
        .await
        .expect_err("a token not given");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_next_token()), "{err:?}");
    let mut bad_id = query.clone();
    bad_id.id = Some("Upper".to_owned());
    let err = cw
        .get_metric_data()
        .start_time(at(0))
        .end_time(at(60))
        .metric_data_queries(bad_id)
        .send()
        .await
        .expect_err("an id must start lowercase");
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
    let bad_math = MetricDataQuery::builder().id("m").expression("a + (").build();
    let err = cw
        .get_metric_data()
        .start_time(at(0))
        .end_time(at(60))
        .metric_data_queries(query)
        .metric_data_queries(bad_math)
        .send()
        .await
        .expect_err("an expression that does not parse");
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");

    let faults = json!({"denied": ["DescribeAlarms"]});
    let url = format!("{}/_local/faults", server.endpoint());
    let response = reqwest::Client::new().post(url).json(&faults).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let err = cw.describe_alarms().send().await.expect_err("denied");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert!(err.message().unwrap_or_default().contains("cloudwatch:DescribeAlarms"), "{err:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn aws_json_1_0_serves_the_same_handlers_with_query_error_codes() {
    let (server, _) = start(1.0).await;
    let http = reqwest::Client::new();
    let call = |operation: &str, input: Value| {
        http.post(format!("{}/", server.endpoint()))
            .header("x-amz-target", format!("GraniteServiceVersion20100801.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(input.to_string())
            .send()
    };
    let now = now_secs() as f64;
    let put = json!({"Namespace": "Shop", "MetricData": [{"MetricName": "M", "Value": 4.5, "Timestamp": now - 30.0}]});
    let response = call("PutMetricData", put).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.0");
    let query = json!({"MetricDataQueries": [{"Id": "m", "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "M"}, "Period": 60, "Stat": "Maximum"}}],
        "StartTime": now - 120.0, "EndTime": now + 60.0});
    let body: Value = call("GetMetricData", query).await.unwrap().json().await.unwrap();
    assert_eq!(body["MetricDataResults"][0]["Values"], json!([4.5]), "{body}");
    assert!(body["MetricDataResults"][0]["Timestamps"][0].is_number(), "{body}");

    let response =
        call("SetAlarmState", json!({"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-amzn-query-error"], "ResourceNotFound;Sender");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["__type"], "ResourceNotFound");
    server.shutdown().await;
}

#[tokio::test]
async fn a_deployment_groups_alarms_are_cloudwatch_alarms_looked_up_by_name() {
    let (server, cw) = start(60.0).await;
    // Evaluated hourly (a minute here), so the state set below holds for the deployment.
    cw.put_metric_alarm()
        .alarm_name("errors-high")
        .namespace("Shop")
        .metric_name("Errors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(3600)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    cw.set_alarm_state()
        .alarm_name("errors-high")
        .state_value(StateValue::Alarm)
        .state_reason("errors")
        .send()
        .await
        .expect("SetAlarmState");
    let emulator = &server.emulator;
    let call = |operation: &str, input: Value| emulator.codedeploy(operation, &input).expect(operation);
    call("CreateApplication", json!({"applicationName": "shop", "computePlatform": "Lambda"}));
    let groups = [
        ("in-alarm", json!({"enabled": true, "alarms": [{"name": "errors-high"}]})),
        ("unknown", json!({"enabled": true, "alarms": [{"name": "no-such-alarm"}]})),
        (
            "unknown-ignored",
            json!({"enabled": true, "ignorePollAlarmFailure": true, "alarms": [{"name": "no-such-alarm"}]}),
        ),
    ];
    let appspec = json!({"version": 0.0, "Resources": [{"echo": {"Type": "AWS::Lambda::Function",
        "Properties": {"Name": "echo", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}]});
    let mut outcomes = Vec::new();
    for (group, alarms) in groups {
        call(
            "CreateDeploymentGroup",
            json!({"applicationName": "shop", "deploymentGroupName": group, "alarmConfiguration": alarms,
                   "serviceRoleArn": "arn:aws:iam::123456789012:role/codedeploy"}),
        );
        let created = call(
            "CreateDeployment",
            json!({"applicationName": "shop", "deploymentGroupName": group,
                   "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
        );
        let id = created["deploymentId"].as_str().unwrap().to_owned();
        assert!(emulator.wait_until_complete(&id, Duration::from_secs(30)).await, "{group}: {id} did not end");
        let state = emulator.state();
        let deployment = &state.deployments[&id];
        outcomes.push((group, deployment.status.as_str(), deployment.error.as_ref().map(|(code, _)| *code)));
    }
    assert_eq!(
        outcomes,
        [
            ("in-alarm", "Stopped", Some("ALARM_ACTIVE")),
            ("unknown", "Stopped", Some("ALARM_ACTIVE")),
            ("unknown-ignored", "Succeeded", None),
        ]
    );
    server.shutdown().await;
}
