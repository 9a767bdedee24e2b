//! The deployment files, checked with the tools users deploy with: template.yaml, the fleet's
//! two templates (examples/fleet/platform.yaml, examples/fleet/service.yaml) and the ECS-native
//! service template (examples/ecs-native/service.yaml) through cfn-lint,
//! `sam validate --lint` and the SAM translator (tests/deploy/check_template.py), samconfig.toml's
//! environments, the appspec examples, and each hook's `[package.metadata.lambda.deploy]` as
//! cargo-lambda reads it. Every plan the deployment files carry is loaded with the hooks' own plan
//! loader. The tools come from .venv (scripts/python-env.sh installs them on first use).
//!
//! The cross-compiled release build (`sam build`, `cargo lambda build --release --arm64`) is too
//! slow for every run; the README's Deploy section says how long it takes and how to run it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use greenlight::Hook;
use greenlight::plan::{self, PlanSource};
use greenlight_tests::python::{venv, venv_bin, venv_python};
use greenlight_tests::workspace_root;
use serde_json::Value;

/// A command from the virtualenv, run at the workspace root, offline-friendly: a dummy region, no
/// telemetry, no prompts, and the virtualenv first on PATH (cargo-lambda finds zig through it).
fn tool(program: impl AsRef<Path>) -> Command {
    let mut path = OsString::from(venv().join("bin"));
    if let Some(existing) = std::env::var_os("PATH") {
        path.push(":");
        path.push(existing);
    }
    let mut command = Command::new(program.as_ref());
    command
        .current_dir(workspace_root())
        .env("PATH", path)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn spawn(command: &mut Command) -> Child {
    command.spawn().unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait for the tool")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn assert_success(what: &str, output: &Output) {
    assert!(output.status.success(), "{what} failed ({}):\n{}", output.status, text(output));
}

/// A scratch directory of this test binary's own, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The fleet's platform template: the hooks once, plans per deployment.
const FLEET_PLATFORM: &str = "examples/fleet/platform.yaml";
/// The fleet's service template: one service's deployment group and plan.
const FLEET_SERVICE: &str = "examples/fleet/service.yaml";
/// One service of the fleet deployed by ECS itself: its service, lifecycle hooks and plans.
const ECS_NATIVE_SERVICE: &str = "examples/ecs-native/service.yaml";

/// check_template.py on `template`; `kind` is empty for template.yaml's checks, or
/// `--fleet-platform`, `--fleet-service` or `--ecs-native-service`.
fn check_template(template: &Path, kind: &[&str], plans_out: Option<&Path>) -> Command {
    let mut command = tool(venv_python());
    command.arg(workspace_root().join("tests/deploy/check_template.py")).arg("--template").arg(template).args(kind);
    if let Some(dir) = plans_out {
        command.arg("--plans-out").arg(dir);
    }
    command
}

#[test]
fn cfn_lint_finds_nothing_in_the_templates() {
    let templates = ["template.yaml", FLEET_PLATFORM, FLEET_SERVICE, ECS_NATIVE_SERVICE];
    let output = finish(spawn(tool(venv_bin("cfn-lint")).args(templates)));
    assert_success(&format!("cfn-lint {}", templates.join(" ")), &output);
}

#[test]
fn sam_validate_lint_passes_in_dev_and_prod() {
    let dev = spawn(tool(venv_bin("sam")).args(["validate", "--lint"]));
    let prod = spawn(tool(venv_bin("sam")).args(["validate", "--lint", "--config-env", "prod"]));
    assert_success("sam validate --lint", &finish(dev));
    assert_success("sam validate --lint --config-env prod", &finish(prod));
}

#[test]
fn sam_validate_lint_passes_for_the_fleet_templates() {
    let runs: Vec<_> = [FLEET_PLATFORM, FLEET_SERVICE]
        .into_iter()
        .map(|template| (template, spawn(tool(venv_bin("sam")).args(["validate", "--lint", "--template", template]))))
        .collect();
    for (template, child) in runs {
        assert_success(&format!("sam validate --lint --template {template}"), &finish(child));
    }
}

#[test]
fn template_wires_every_hook_and_scopes_its_iam() {
    let plans = scratch("template-plans");
    let output = finish(spawn(&mut check_template(&workspace_root().join("template.yaml"), &[], Some(&plans))));
    assert_success("tests/deploy/check_template.py", &output);

    // The plans in the template, resolved with the parameter defaults, load as the hooks load them.
    for hook in Hook::ALL {
        let file = plans.join(format!("{}.json", hook.name));
        let json = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("no plan for {} in template.yaml ({err})", hook.name));
        if let Err(err) = plan::load(&PlanSource::Inline(json), &workspace_root()) {
            panic!("the {} plan in template.yaml does not load: {err}", hook.name);
        }
    }
}

#[test]
fn fleet_platform_serves_every_hook_with_a_plan_per_deployment() {
    let template = workspace_root().join(FLEET_PLATFORM);
    let output = finish(spawn(&mut check_template(&template, &["--fleet-platform"], None)));
    assert_success(&format!("tests/deploy/check_template.py --fleet-platform on {FLEET_PLATFORM}"), &output);
}

/// Runs the check with `kind` and `--plans-out` on a service template, and loads each plan it
/// wrote with the hooks' own plan loader: the plans by logical id, in name order.
fn service_plans(template: &str, kind: &str) -> Vec<(String, Value)> {
    let plans = scratch(&format!("plans-{}", template.replace('/', "-")));
    let output = finish(spawn(&mut check_template(&workspace_root().join(template), &[kind], Some(&plans))));
    assert_success(&format!("tests/deploy/check_template.py {kind} on {template}"), &output);

    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&plans).expect("list the plans").map(|entry| entry.expect("plan file").path()).collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let json = std::fs::read_to_string(file).expect("read the plan");
            if let Err(err) = plan::load(&PlanSource::Inline(json.clone()), &workspace_root()) {
                panic!("the plan {} in {template} does not load: {err}", file.display());
            }
            let name = file.file_stem().expect("a plan file name").to_string_lossy().into_owned();
            (name, serde_json::from_str::<Value>(&json).expect("the plan is JSON"))
        })
        .collect()
}

/// The plan's checks, for the assertions on what an example promises.
fn checks<'a>(plans: &'a [(String, Value)], name: &str) -> &'a [Value] {
    let (_, plan) = plans.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no plan {name}"));
    plan["checks"].as_array().expect("checks")
}

/// Health on `${test_url}` and a compare check: what the docs promise of a test-traffic plan.
fn assert_health_and_compare(checks: &[Value]) {
    assert!(
        checks.iter().any(|c| c["http"]["url"] == "${test_url}/health"),
        "no health check on ${{test_url}}: {checks:?}"
    );
    assert!(checks.iter().any(|c| c.get("compare").is_some()), "no compare check: {checks:?}");
}

/// The plan a service stack puts in Parameter Store loads as the platform's hooks will load it.
#[test]
fn fleet_service_stack_carries_a_plan_the_hooks_load() {
    let plans = service_plans(FLEET_SERVICE, "--fleet-service");
    let names: Vec<&str> = plans.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["ProductionTrafficPlan", "TestTrafficPlan"], "{FLEET_SERVICE}'s plans");
    // The example is what docs/fleet.md promises: health through the test listener, and the
    // contract judged green against blue, before production moves.
    assert_health_and_compare(checks(&plans, "TestTrafficPlan"));
}

/// The ECS-native service wires each hook at its own stage, with a role that may invoke just
/// them, and plans that load as the hooks will load them.
#[test]
fn ecs_native_service_stack_wires_each_hook_at_its_stage_with_plans_the_hooks_load() {
    let plans = service_plans(ECS_NATIVE_SERVICE, "--ecs-native-service");
    let names: Vec<&str> = plans.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["AfterAllowTestTrafficPlan", "AfterAllowTrafficPlan", "BeforeAllowTrafficPlan"],
        "{ECS_NATIVE_SERVICE}'s plans"
    );
    // What docs/ecs-native.md promises: the test-traffic plan as the fleet's, and a metric gate
    // on green before every production step.
    assert_health_and_compare(checks(&plans, "AfterAllowTestTrafficPlan"));
    let gate = checks(&plans, "BeforeAllowTrafficPlan");
    assert!(gate.iter().any(|c| c.get("metric").is_some()), "no metric check before the steps: {gate:?}");
}

/// Runs the check (with `kind`) on copies of the template at `path`, each with one `from`
/// replaced by `to`, and asserts that every copy fails, reporting `expected`.
fn assert_check_rejects(path: &str, kind: &[&str], mutations: &[(&str, &str, &str, &str)]) {
    let original =
        std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|err| panic!("read {path}: {err}"));
    let dir = scratch(&format!("mutations-{}", path.replace('/', "-")));
    let runs: Vec<_> = mutations
        .iter()
        .map(|(name, from, to, expected)| {
            assert!(original.contains(from), "{path} no longer contains {from:?}; update this mutation");
            let mutated = dir.join(format!("{name}.yaml"));
            std::fs::write(&mutated, original.replacen(from, to, 1)).expect("write mutated template");
            (name, expected, spawn(&mut check_template(&mutated, kind, None)))
        })
        .collect();
    for (name, expected, child) in runs {
        let output = finish(child);
        let shown = text(&output);
        assert!(!output.status.success(), "the template check passed the {name} mutation of {path}:\n{shown}");
        assert!(shown.contains(expected), "the {name} mutation of {path} should report {expected:?}, got:\n{shown}");
    }
}

/// The template check must fail for the mistakes it exists to catch, not just pass.
#[test]
fn template_check_rejects_the_traps() {
    let mutations = [
        ("wildcard-action", "Action: lambda:InvokeFunction", "Action: lambda:*", "wildcard action 'lambda:*'"),
        (
            "invoke-anything",
            "- !GetAtt CheckoutFunction.Arn",
            "- \"*\"",
            "lambda:invokefunction on Resource \"*\", but IAM can scope it to function",
        ),
        (
            "hook-without-prefix",
            "FunctionName: !Sub CodeDeployHook_${AWS::StackName}-post-traffic",
            "FunctionName: !Sub ${AWS::StackName}-post-traffic",
            "FunctionName must be !Sub CodeDeployHook_${AWS::StackName}-post-traffic",
        ),
        (
            "post-traffic-swapped",
            "PostTraffic: !Ref PostTrafficHook",
            "PostTraffic: !Ref PreTrafficHook",
            "Hooks PostTraffic must be !Ref PostTrafficHook",
        ),
    ];
    assert_check_rejects("template.yaml", &[], &mutations);
}

/// The interface endpoint for Parameter Store, as the platform template declares it.
const SSM_ENDPOINT: &str = "  SsmEndpoint:
    Type: AWS::EC2::VPCEndpoint
    Condition: CreateEndpoints
    Properties:
      ServiceName: !Sub com.amazonaws.${AWS::Region}.ssm
      VpcEndpointType: Interface
      PrivateDnsEnabled: true
      VpcId: !Ref VpcId
      SubnetIds: !Ref SubnetIds
      SecurityGroupIds: [!Ref EndpointSecurityGroup]
";

#[test]
fn fleet_platform_check_rejects_the_traps() {
    let plans =
        "Resource: !Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${PlanParameterPrefix}/*";
    let mutations = [
        (
            "read-every-parameter",
            plans,
            "Resource: \"*\"",
            "ssm:getparameter on Resource \"*\", but IAM can scope it to parameter",
        ),
        (
            "read-parameters-elsewhere",
            plans,
            "Resource: !Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*",
            "ssm:GetParameter only on the plans' path",
        ),
        (
            "no-ssm-endpoint",
            SSM_ENDPOINT,
            "",
            "no interface VPC endpoint for ssm, which the ECS hooks call (ssm:GetParameter)",
        ),
        (
            "one-plan-for-all",
            "GREENLIGHT_PLAN_CACHE_SECONDS: !Ref PlanCacheSeconds",
            "GREENLIGHT_PLAN_CACHE_SECONDS: !Ref PlanCacheSeconds\n        GREENLIGHT_PLAN: '{\"checks\": []}'",
            "GREENLIGHT_PLAN gives every service the same plan",
        ),
        (
            "lambda-hook-in-the-vpc",
            "      Role: !GetAtt LambdaHookRole.Arn\n",
            "      Role: !GetAtt LambdaHookRole.Arn\n      VpcConfig: !If [InVpc, {SubnetIds: !Ref SubnetIds, SecurityGroupIds: [!Ref HookSecurityGroup]}, !Ref AWS::NoValue]\n",
            "PreTrafficHook: the Lambda hooks judge functions through the Lambda API and need no VpcConfig",
        ),
        (
            "no-service-revision-read",
            "                  - ecs:DescribeServiceRevisions\n",
            "",
            "EcsHookRole: grant ecs:DescribeServiceRevisions, which the ECS hooks call for ECS-native deployments",
        ),
        (
            "hook-arn-not-exported",
            "Name: !Sub ${AWS::StackName}-BeforeAllowTrafficHookArn",
            "Name: !Sub ${AWS::StackName}-BeforeAllowTraffic",
            "Outputs: export !GetAtt BeforeAllowTrafficHook.Arn as !Sub ${AWS::StackName}-BeforeAllowTrafficHookArn",
        ),
        (
            "security-group-not-exported",
            "Name: !Sub ${AWS::StackName}-HookSecurityGroup",
            "Name: !Sub ${AWS::StackName}-Hooks",
            "export the hooks' security group once",
        ),
    ];
    assert_check_rejects(FLEET_PLATFORM, &["--fleet-platform"], &mutations);
}

#[test]
fn fleet_service_check_rejects_the_traps() {
    let mutations = [
        (
            "plan-name-typed-in",
            "      Name: !Sub\n        - ${Prefix}/${Application}/${DeploymentGroup}/after-allow-test-traffic",
            "      Name: !Sub\n        - ${Prefix}/checkout/checkout-blue-green/after-allow-test-traffic",
            "TestTrafficPlan: Name must be import(${PlatformStackName}-PlanParameterPrefix)/${Application}/${DeploymentGroup}/<hook>",
        ),
        (
            "plan-of-no-hook",
            "${DeploymentGroup}/after-allow-traffic",
            "${DeploymentGroup}/after-allow-trafic",
            "ProductionTrafficPlan: Name must be import(${PlatformStackName}-PlanParameterPrefix)/${Application}/${DeploymentGroup}/<hook>, with <hook> one of after-allow-test-traffic,",
        ),
        (
            "ingress-always",
            "    Condition: AdmitHooks\n    Properties:\n      Description: greenlight ECS hooks, to the test listener",
            "    Properties:\n      Description: greenlight ECS hooks, to the test listener",
            "HooksToTestListener: needs a Condition",
        ),
        ("in-place", "DeploymentType: BLUE_GREEN", "DeploymentType: IN_PLACE", "DeploymentStyle must be BLUE_GREEN"),
    ];
    assert_check_rejects(FLEET_SERVICE, &["--fleet-service"], &mutations);
}

#[test]
fn ecs_native_service_check_rejects_the_traps() {
    let invoke_test_traffic_hook = "                  - !ImportValue\n                    Fn::Sub: ${PlatformStackName}-AfterAllowTestTrafficHookArn";
    let mutations = [
        (
            "hook-at-a-stage-it-does-not-serve",
            "LifecycleStages: [PRE_PRODUCTION_TRAFFIC_SHIFT]",
            "LifecycleStages: [PRODUCTION_TRAFFIC_SHIFT]",
            "LifecycleStages must be exactly [PRE_PRODUCTION_TRAFFIC_SHIFT], the stage before-allow-traffic serves; at PRODUCTION_TRAFFIC_SHIFT it answers FAILED",
        ),
        (
            "hook-at-another-hooks-stage",
            "LifecycleStages: [POST_PRODUCTION_TRAFFIC_SHIFT]",
            "LifecycleStages: [POST_TEST_TRAFFIC_SHIFT]",
            "LifecycleStages must be exactly [POST_PRODUCTION_TRAFFIC_SHIFT], the stage after-allow-traffic serves",
        ),
        (
            "lambda-hook-at-an-ecs-stage",
            "${PlatformStackName}-AfterAllowTrafficHookArn\n            RoleArn",
            "${PlatformStackName}-PostTrafficHookArn\n            RoleArn",
            "HookTargetArn must import one of the platform's hook ARNs",
        ),
        (
            "invoke-role-trusted-by-lambda",
            "Principal: { Service: ecs.amazonaws.com }",
            "Principal: { Service: lambda.amazonaws.com }",
            "HookInvokeRole: must be trusted by ecs.amazonaws.com only",
        ),
        (
            "invoke-role-on-anything",
            invoke_test_traffic_hook,
            "                  - \"*\"",
            "HookInvokeRole: lambda:InvokeFunction on exactly the hooks ECS invokes with it",
        ),
        (
            "plan-outside-the-prefix",
            "${Prefix}/ecs/${ClusterName}/${ServiceName}/before-allow-traffic",
            "/plans/ecs/${ClusterName}/${ServiceName}/before-allow-traffic",
            "BeforeAllowTrafficPlan: Name must be under the platform's prefix",
        ),
        (
            "plan-parameter-typed-in",
            "plan_parameter: !Ref AfterAllowTrafficPlan",
            "plan_parameter: /greenlight/plans/ecs/shop/shop-checkout/after-allow-traffic",
            "HookDetails must be {plan_parameter: !Ref <a plan parameter of this stack>}",
        ),
        (
            "linear-configuration-with-canary",
            "Linear: !Equals [!Ref Strategy, LINEAR]",
            "Linear: !Equals [!Ref Strategy, CANARY]",
            "LinearConfiguration is set with Strategy CANARY; it belongs only with LINEAR",
        ),
        (
            "codedeploy-controller",
            "      DeploymentController:\n        Type: ECS",
            "      DeploymentController:\n        Type: CODE_DEPLOY",
            "DeploymentController must be {Type: ECS}",
        ),
    ];
    assert_check_rejects(ECS_NATIVE_SERVICE, &["--ecs-native-service"], &mutations);
}

#[test]
fn cargo_lambda_deploys_each_hook_with_its_plan() {
    let runs: Vec<_> = Hook::ALL
        .iter()
        .map(|hook| {
            let mut command = tool(venv_bin("cargo-lambda"));
            command.args(["lambda", "system", "--output-format", "json", "--package", hook.name]);
            (hook, spawn(&mut command))
        })
        .collect();
    for (hook, child) in runs {
        let output = finish(child);
        assert_success(&format!("cargo lambda system --package {}", hook.name), &output);
        let info: Value = serde_json::from_slice(&output.stdout).expect("cargo lambda system prints JSON");
        let deploy = &info["config"]["package"]["deploy"];
        let name = hook.name;
        let timeout = if name == "after-install" { 900 } else { 300 };
        assert_eq!(deploy["memory"], 256, "{name}: memory, as in template.yaml");
        assert_eq!(deploy["timeout"], timeout, "{name}: timeout, as in template.yaml");
        assert_eq!(deploy["tracing"], "PassThrough", "{name}: tracing");
        let env: Vec<&str> = deploy["env_var"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for var in ["AWS_LAMBDA_LOG_FORMAT=JSON", "GREENLIGHT_PLAN_FILE=plan.json"] {
            assert!(env.contains(&var), "{name}: env lacks {var}: {env:?}");
        }
        let bundled = format!("examples/plans/aws/{name}.json");
        assert_eq!(deploy["include"], serde_json::json!([format!("plan.json:{bundled}")]), "{name}: include");
        if let Err(err) = plan::load(&PlanSource::File(workspace_root().join(&bundled)), &workspace_root()) {
            panic!("{bundled}, bundled with {name}, does not load: {err}");
        }
    }
}

#[test]
fn the_template_check_knows_each_binarys_ecs_stage_as_the_hooks_do() {
    let script = "import json, sys; sys.path.insert(0, 'tests/deploy'); import check_template; print(json.dumps(check_template.ECS_STAGES))";
    let output = finish(spawn(tool(venv_python()).args(["-c", script])));
    assert_success("check_template.ECS_STAGES", &output);
    let checked: BTreeMap<String, String> = serde_json::from_slice(&output.stdout).expect("JSON");
    let hooks: BTreeMap<String, String> = Hook::ALL
        .iter()
        .filter_map(|hook| hook.ecs_stage().map(|stage| (hook.name.to_owned(), stage.to_owned())))
        .collect();
    assert_eq!(checked, hooks);
}
