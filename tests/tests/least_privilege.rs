//! Least privilege, checked both ways: the IAM actions each hook function is granted in
//! template.yaml, and in the fleet's examples/fleet/platform.yaml, are exactly the ones its code
//! can use. A missing grant fails the deployment at run time (a hook that cannot report stalls it
//! for an hour); an unused one is privilege nobody needs. Both fail here, naming the action.
//!
//! What the code uses is derived, not listed: every AWS SDK client call in the hook code
//! (`shared/src` and `hooks/*/src`, test modules aside) is found by parsing the source, and mapped
//! to its IAM action with the SDK's own tables (the fluent method → operation name, the service's
//! signing name → the IAM prefix). A call in `shared/src/checks/<kind>.rs` (or `checks/<kind>/`),
//! where `<kind>` is one of the plan schema's check kinds (`http`, `invoke`, `metric`, `alarms`), is
//! needed by a hook only when its plan has a `<kind>` check (by ECS hooks only, for a call in
//! `checks/<kind>/ecs.rs`). A call in `checks/variables/<file>.rs` is needed only when the plan
//! uses a variable that file fills ([`VARIABLE_FILES`]), or (for `names.rs`) when the plan is
//! chosen per deployment; a call in `plan/parameter.rs` only by a hook whose plan comes from a
//! parameter; a call in `ecs_native/` (ECS describing its own deployments) only by the ECS hooks,
//! which ECS may invoke; a call in `hooks/<package>` only by that hook; every other call by every hook.
//!
//! A hook's check kinds and variables come from its inline plan. A plan read from a parameter is
//! not in the template and may be any plan, so such a hook needs what every check kind and every
//! variable of its platform needs. What the template grants comes from tests/deploy/check_template.py,
//! which reads each hook's role after the SAM transform, as CloudFormation will see it, with
//! conditional statements counted as granted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use greenlight_tests::python::venv_python;
use greenlight_tests::workspace_root;
use serde_json::Value;
use syn::visit::Visit;

/// Granted for Lambda's own use, not called by the hook code: Lambda writes the function's logs
/// to its log group with the function's role.
const LAMBDA_RUNTIME_ACTIONS: [&str; 2] = ["logs:CreateLogStream", "logs:PutLogEvents"];

/// Granted for Lambda's own use when the function is in a VPC: Lambda creates, describes and
/// deletes the function's network interfaces with the function's role (the actions of the AWS
/// managed policy AWSLambdaVPCAccessExecutionRole, logs aside).
const LAMBDA_VPC_ACTIONS: [&str; 6] = [
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
];

/// Allowed, not needed, for a hook whose plan comes from a parameter: Parameter Store decrypts a
/// SecureString under a customer managed key with the caller's permission, which a String plan or
/// one under the AWS managed key does not need.
const PARAMETER_DECRYPT_ACTION: &str = "kms:Decrypt";

/// Operations whose IAM action is not named after them. Lambda's `Invoke` (and its streaming
/// form) is authorised as `lambda:InvokeFunction`; every other operation greenlight calls is its
/// own action.
const ACTION_EXCEPTIONS: [(&str, &str, &str); 2] =
    [("lambda", "Invoke", "InvokeFunction"), ("lambda", "InvokeWithResponseStream", "InvokeFunction")];

/// Services whose IAM prefix is not their SigV4 signing name: CloudWatch signs as `monitoring`
/// but is authorised as `cloudwatch:`.
const PREFIX_EXCEPTIONS: [(&str, &str); 1] = [("monitoring", "cloudwatch")];

/// The files of `shared/src/checks/variables/` that call AWS, the variables whose values they look
/// up, and whether only ECS deployments have those variables.
const VARIABLE_FILES: [(&str, &[&str], bool); 3] = [
    ("names.rs", &["application", "deployment_group", "test_url", "production_url"], false),
    ("ecs.rs", &["green_target_group", "blue_target_group", "load_balancer"], true),
    ("listeners.rs", &["test_url", "production_url"], true),
];

/// One AWS SDK crate the library depends on, as the SDK itself describes it.
#[derive(Debug)]
struct Sdk {
    /// The crate's name in Rust paths, `aws_sdk_lambda`.
    crate_ident: String,
    /// The IAM service prefix: the SDK's SigV4 signing name, `lambda` (but see [`PREFIX_EXCEPTIONS`]).
    iam_prefix: String,
    /// Fluent client method (`list_deployment_targets`) → operation (`ListDeploymentTargets`).
    operations: BTreeMap<String, String>,
}

impl Sdk {
    fn action(&self, operation: &str) -> String {
        let exception = ACTION_EXCEPTIONS.iter().find(|(prefix, op, _)| *prefix == self.iam_prefix && *op == operation);
        format!("{}:{}", self.iam_prefix, exception.map_or(operation, |(_, _, action)| action))
    }
}

/// The `aws-sdk-*` crates the `greenlight` package depends on, read from their sources.
fn sdk_crates() -> Vec<Sdk> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(workspace_root().join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let greenlight = packages
        .iter()
        .find(|p| p["name"] == "greenlight" && p["source"].is_null())
        .and_then(|p| p["id"].as_str())
        .expect("the greenlight package");
    let node = metadata["resolve"]["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == greenlight))
        .expect("greenlight in the resolve graph");
    let dependency_ids: BTreeSet<&str> =
        node["deps"].as_array().into_iter().flatten().filter_map(|d| d["pkg"].as_str()).collect();
    let sdks: Vec<Sdk> = packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| dependency_ids.contains(id)))
        .filter(|p| p["name"].as_str().is_some_and(|name| name.starts_with("aws-sdk-")))
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
            let name = p["name"].as_str().expect("name");
            read_sdk(&name.replace('-', "_"), &manifest.parent().expect("crate directory").join("src"))
        })
        .collect();
    assert!(!sdks.is_empty(), "greenlight depends on no aws-sdk-* crate, which cannot be right");
    sdks
}

fn read_sdk(crate_ident: &str, src: &Path) -> Sdk {
    let config = read(&src.join("config.rs"));
    let marker = "SigningName::from_static(\"";
    let iam_prefix = config
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| {
            PREFIX_EXCEPTIONS.iter().find(|(signing, _)| *signing == name).map_or(name, |(_, iam)| iam).to_owned()
        })
        .unwrap_or_else(|| panic!("{crate_ident}: no signing name in {}", src.join("config.rs").display()));

    // Each file in src/client/ adds one fluent method: `pub fn invoke(&self) -> …::InvokeFluentBuilder`.
    let mut operations = BTreeMap::new();
    for path in rust_files(&src.join("client")) {
        let file = syn::parse_file(&read(&path)).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        for item in file.items {
            let syn::Item::Impl(block) = item else { continue };
            for item in block.items {
                let syn::ImplItem::Fn(method) = item else { continue };
                let syn::ReturnType::Type(_, returned) = &method.sig.output else { continue };
                let syn::Type::Path(returned) = returned.as_ref() else { continue };
                let Some(last) = returned.path.segments.last() else { continue };
                if let Some(operation) = last.ident.to_string().strip_suffix("FluentBuilder") {
                    operations.insert(method.sig.ident.to_string(), operation.to_owned());
                }
            }
        }
    }
    assert!(!operations.is_empty(), "{crate_ident}: no fluent operations found in {}", src.join("client").display());
    Sdk { crate_ident: crate_ident.to_owned(), iam_prefix, operations }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Which hooks a call is needed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NeededBy {
    /// Every hook: discovery, the report, anything outside a check kind's module.
    Every,
    /// Hooks whose plan has a check of this kind (`invoke`, from `checks/invoke.rs`).
    CheckKind(String),
    /// ECS hooks whose plan has a check of this kind (`metric`, from `checks/metric/ecs.rs`).
    EcsCheckKind(String),
    /// Hooks whose plan uses one of these variables (ECS hooks only, if the first flag says so),
    /// or, if the second says so, whose plan is chosen per deployment (`checks/variables/`).
    Variables(&'static [&'static str], bool, bool),
    /// Hooks whose plan is read from a parameter (`plan/parameter.rs`).
    PlanParameter,
    /// ECS hooks, which ECS itself may invoke (`ecs_native/`).
    EcsHooks,
    /// Only this hook package.
    Hook(String),
}

/// One AWS call in the hook code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    action: String,
    needed_by: NeededBy,
    /// Where, for the messages: `shared/src/discover.rs, fn discover: .list_deployment_targets()`.
    site: String,
}

/// Finds zero-argument method calls named like an SDK operation, outside test code.
struct CallFinder<'a> {
    sdks: &'a [Sdk],
    /// The SDK crates the file names, to tell apart operations that two services share a name for.
    named_crates: BTreeSet<String>,
    functions: Vec<String>,
    found: Vec<(String, String)>,
    problems: Vec<String>,
    place: String,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("test")
            || (attr.path().is_ident("cfg") && attr.parse_args::<syn::Ident>().is_ok_and(|arg| arg == "test"))
    })
}

impl<'ast> Visit<'ast> for CallFinder<'_> {
    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        if !is_test_only(&module.attrs) {
            syn::visit::visit_item_mod(self, module);
        }
    }

    fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
        if !is_test_only(&function.attrs) {
            self.functions.push(function.sig.ident.to_string());
            syn::visit::visit_item_fn(self, function);
            self.functions.pop();
        }
    }

    fn visit_impl_item_fn(&mut self, function: &'ast syn::ImplItemFn) {
        if !is_test_only(&function.attrs) {
            self.functions.push(function.sig.ident.to_string());
            syn::visit::visit_impl_item_fn(self, function);
            self.functions.pop();
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = call.method.to_string();
        if call.args.is_empty() {
            let offered_by: Vec<&Sdk> = self.sdks.iter().filter(|sdk| sdk.operations.contains_key(&method)).collect();
            let chosen: Vec<&Sdk> = match offered_by.as_slice() {
                [_, _, ..] => {
                    offered_by.iter().copied().filter(|sdk| self.named_crates.contains(&sdk.crate_ident)).collect()
                }
                _ => offered_by,
            };
            let function = self.functions.last().map_or_else(String::new, |f| format!(", fn {f}"));
            let site = format!("{}{function}: .{method}()", self.place);
            match chosen.as_slice() {
                [] => {}
                [sdk] => self.found.push((sdk.action(&sdk.operations[&method]), site)),
                several => self.problems.push(format!(
                    "{site}: an operation of {}; name the crate in the file so the call can be told apart",
                    several.iter().map(|sdk| sdk.crate_ident.as_str()).collect::<Vec<_>>().join(" and ")
                )),
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// The AWS calls in one source file. `place` names it in messages.
fn calls_in(source: &str, place: &str, needed_by: &NeededBy, sdks: &[Sdk]) -> Result<Vec<Call>, Vec<String>> {
    let file = syn::parse_file(source).map_err(|err| vec![format!("{place}: does not parse: {err}")])?;
    let named_crates =
        sdks.iter().filter(|sdk| source.contains(&sdk.crate_ident)).map(|sdk| sdk.crate_ident.clone()).collect();
    let mut finder = CallFinder {
        sdks,
        named_crates,
        functions: Vec::new(),
        found: Vec::new(),
        problems: Vec::new(),
        place: place.to_owned(),
    };
    finder.visit_file(&file);
    if !finder.problems.is_empty() {
        return Err(finder.problems);
    }
    Ok(finder.found.into_iter().map(|(action, site)| Call { action, needed_by: needed_by.clone(), site }).collect())
}

/// Every AWS call in the hook code under `root`.
fn hook_code_calls(root: &Path, sdks: &[Sdk]) -> Vec<Call> {
    let kinds = check_kinds(root);
    let mut sources = Vec::new();
    let checks = root.join("shared/src/checks");
    for path in rust_files(&root.join("shared/src")) {
        let module = path.strip_prefix(&checks).ok().and_then(|inside| inside.components().next());
        let module = module.and_then(|c| c.as_os_str().to_str()).map(|name| name.trim_end_matches(".rs"));
        let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let ecs_only = file_name == "ecs.rs";
        let variables = VARIABLE_FILES.iter().find(|(file, _, _)| *file == file_name);
        let needed_by = match module {
            Some("variables") => match variables {
                Some((file, names, ecs)) => NeededBy::Variables(names, *ecs, *file == "names.rs"),
                None => NeededBy::Every,
            },
            Some(kind) if kinds.contains(kind) && ecs_only => NeededBy::EcsCheckKind(kind.to_owned()),
            Some(kind) if kinds.contains(kind) => NeededBy::CheckKind(kind.to_owned()),
            _ if path.ends_with("shared/src/plan/parameter.rs") => NeededBy::PlanParameter,
            _ if path.starts_with(root.join("shared/src/ecs_native")) => NeededBy::EcsHooks,
            _ => NeededBy::Every,
        };
        sources.push((path, needed_by));
    }
    for package in hook_packages(root) {
        for path in rust_files(&root.join("hooks").join(&package).join("src")) {
            sources.push((path, NeededBy::Hook(package.clone())));
        }
    }
    let mut calls = Vec::new();
    let mut problems = Vec::new();
    for (path, needed_by) in sources {
        let place = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        match calls_in(&read(&path), &place, &needed_by, sdks) {
            Ok(found) => calls.extend(found),
            Err(found) => problems.extend(found),
        }
    }
    assert!(problems.is_empty(), "cannot derive the AWS calls:\n{}", problems.join("\n"));
    calls.sort();
    calls
}

fn hook_packages(root: &Path) -> Vec<String> {
    let mut packages: Vec<String> = std::fs::read_dir(root.join("hooks"))
        .expect("list hooks/")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    packages.sort();
    packages
}

/// One hook function as the template deploys it.
#[derive(Debug)]
struct Deployed {
    function: String,
    role: String,
    /// The granted actions, as spelled in the template.
    granted: Vec<String>,
    /// The kinds of check its plan has (`http`, `invoke`).
    check_kinds: BTreeSet<String>,
    /// The `${variables}` its plan uses.
    variables: BTreeSet<String>,
    /// Whether its plan is read from a parameter, or chosen from a catalog.
    plan_parameter: bool,
    plan_catalog: bool,
    /// Whether Lambda puts it in a VPC (under a condition or not).
    in_vpc: bool,
    /// Whether its plan is not in the template, so it may be any plan.
    any_plan: bool,
}

/// The kinds of check, as the plan schema has them: each alternative of a check's `oneOf`
/// requires one (`http`, `invoke`).
fn check_kinds(root: &Path) -> BTreeSet<String> {
    let schema: Value = serde_json::from_str(&read(&root.join("shared/schema/plan.schema.json"))).expect("schema JSON");
    let kinds: BTreeSet<String> = schema["$defs"]["check"]["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|alternative| alternative["required"].as_array().into_iter().flatten())
        .filter_map(|kind| kind.as_str().map(str::to_owned))
        .collect();
    assert!(!kinds.is_empty(), "the plan schema's check has no oneOf of kinds any more; update this test");
    kinds
}

/// Each hook package's function, role, grants and plan, per check_template.py run on `template`
/// with `kind` (empty for template.yaml, `--fleet-platform` for the fleet's platform).
fn deployed(template: &Path, kind: &[&str], scratch: &Path) -> BTreeMap<String, Deployed> {
    let kinds = check_kinds(&workspace_root());
    let _ = std::fs::remove_dir_all(scratch);
    let plans = scratch.join("plans");
    std::fs::create_dir_all(&plans).expect("create the scratch folder");
    let grants_file = scratch.join("grants.json");
    let output = Command::new(venv_python())
        .arg(workspace_root().join("tests/deploy/check_template.py"))
        .arg("--template")
        .arg(template)
        .args(kind)
        .arg("--plans-out")
        .arg(&plans)
        .arg("--grants-out")
        .arg(&grants_file)
        .current_dir(workspace_root())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::null())
        .output()
        .expect("run check_template.py");
    let shown = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let grants: Value = std::fs::read_to_string(&grants_file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| panic!("check_template.py wrote no grants ({}):\n{shown}", output.status));
    let grants = grants.as_object().expect("grants by hook package");
    grants
        .iter()
        .map(|(package, grant)| {
            let flag = |key: &str| grant[key].as_bool().unwrap_or(false);
            let plan_file = plans.join(format!("{package}.json"));
            let inline: Option<Value> =
                std::fs::read_to_string(&plan_file).ok().and_then(|text| serde_json::from_str(&text).ok());
            // A plan from a parameter may be any plan: every kind of check, every variable.
            let any_plan = inline.is_none() && flag("plan_parameter");
            let (check_kinds, variables) = match &inline {
                Some(plan) => (plan_check_kinds(plan, &kinds), plan_variables(plan)),
                None if any_plan => (
                    kinds.clone(),
                    greenlight::variables::KNOWN.iter().map(|(name, _, _)| (*name).to_owned()).collect(),
                ),
                None => {
                    panic!("{package}: neither an inline plan nor one per deployment, so its check kinds are unknown")
                }
            };
            let granted = grant["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let text = |key: &str| grant[key].as_str().unwrap_or_default().to_owned();
            let deployed = Deployed {
                function: text("function"),
                role: text("role"),
                granted,
                check_kinds,
                variables,
                plan_parameter: flag("plan_parameter"),
                plan_catalog: flag("plan_catalog"),
                in_vpc: flag("in_vpc"),
                any_plan,
            };
            (package.clone(), deployed)
        })
        .collect()
}

/// The kinds of check `plan` has (`http`, `invoke`).
fn plan_check_kinds(plan: &Value, kinds: &BTreeSet<String>) -> BTreeSet<String> {
    plan["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|check| check.keys().filter(|key| kinds.contains(*key)).cloned())
        .collect()
}

/// The `${variables}` `plan` uses.
fn plan_variables(plan: &Value) -> BTreeSet<String> {
    plan.to_string()
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// What is missing from or unused in each hook's grants, one line each.
fn compare(calls: &[Call], deployed: &BTreeMap<String, Deployed>, packages: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for package in packages {
        let Some(hook) = deployed.get(package) else {
            problems.push(format!("{package}: no function in the template"));
            continue;
        };
        let who = format!("{package} ({}, role {})", hook.function, hook.role);
        // IAM action names are case-insensitive; the messages keep the spelling they came with.
        let mut needed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for call in calls {
            let needs = match &call.needed_by {
                NeededBy::Every => true,
                NeededBy::CheckKind(kind) => hook.check_kinds.contains(kind),
                NeededBy::EcsCheckKind(kind) => hook.check_kinds.contains(kind) && is_ecs_hook(package),
                NeededBy::Variables(names, ecs_only, by_names) => {
                    let uses = names.iter().any(|name| hook.variables.contains(*name));
                    let chooses = *by_names && (hook.plan_parameter || hook.plan_catalog);
                    (uses && (!ecs_only || is_ecs_hook(package))) || chooses
                }
                NeededBy::PlanParameter => hook.plan_parameter,
                NeededBy::EcsHooks => is_ecs_hook(package),
                NeededBy::Hook(only) => only == package,
            };
            if needs {
                needed.entry(call.action.clone()).or_default().push(call.site.clone());
            }
        }
        for action in LAMBDA_RUNTIME_ACTIONS {
            needed.entry(action.to_owned()).or_default().push("Lambda, writing the function's logs".to_owned());
        }
        if hook.in_vpc {
            for action in LAMBDA_VPC_ACTIONS {
                needed
                    .entry(action.to_owned())
                    .or_default()
                    .push("Lambda, managing the function's network interfaces in the VPC".to_owned());
            }
        }
        let granted: BTreeMap<String, &str> = hook.granted.iter().map(|a| (a.to_lowercase(), a.as_str())).collect();
        for (action, sites) in &needed {
            if !granted.contains_key(&action.to_lowercase()) {
                problems.push(format!("{who}: {action} is not granted, but {} uses it", sites.join("; ")));
            }
        }
        let mut allowed: BTreeSet<String> = needed.keys().map(|a| a.to_lowercase()).collect();
        if hook.plan_parameter {
            allowed.insert(PARAMETER_DECRYPT_ACTION.to_lowercase());
        }
        let kinds = match hook.check_kinds.iter().map(String::as_str).collect::<Vec<_>>().join(", ") {
            _ if hook.any_plan => "any, since it reads its plan per deployment".to_owned(),
            none if none.is_empty() => "none".to_owned(),
            kinds => kinds,
        };
        for (lower, action) in &granted {
            if !allowed.contains(lower) {
                problems.push(format!(
                    "{who}: {action} is granted, but no hook code calls it for this hook \
                     (its plan's check kinds: {kinds}); remove the grant"
                ));
            }
        }
    }
    problems
}

/// Whether the hook package judges ECS deployments.
fn is_ecs_hook(package: &str) -> bool {
    greenlight::Hook::ALL.iter().any(|hook| hook.name == package && hook.platform == greenlight::hook::Platform::Ecs)
}

/// The fleet's platform template: the hooks once, plans per deployment.
const FLEET_PLATFORM: &str = "examples/fleet/platform.yaml";

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("least-privilege").join(name)
}

#[test]
fn every_hook_is_granted_exactly_the_aws_calls_its_code_makes() {
    let root = workspace_root();
    let sdks = sdk_crates();
    let calls = hook_code_calls(&root, &sdks);
    let deployed = deployed(&root.join("template.yaml"), &[], &scratch("template"));
    let problems = compare(&calls, &deployed, &hook_packages(&root));
    let derived: Vec<String> =
        calls.iter().map(|c| format!("  {} ({:?}) at {}", c.action, c.needed_by, c.site)).collect();
    assert!(
        problems.is_empty(),
        "template.yaml's hook roles do not match the hook code's AWS calls:\n{}\n\nthe calls found:\n{}",
        problems.join("\n"),
        derived.join("\n")
    );
}

#[test]
fn the_calls_are_found_in_the_code_and_only_there() {
    let sdks = sdk_crates();
    let source = r#"
        use aws_sdk_lambda::Client;
        /// Doc comments mention `.get_function()`, which calls nothing.
        async fn probe(client: &Client, context: &Context) {
            // client.delete_function().send().await;
            let _ = ".list_functions().send()";
            client.get_alias().function_name("f").name("live").send().await;
            context.lambda.invoke().send().await;
            client.get_alias_name(); // not an operation
            client.list_aliases().into_paginator().send();
        }
        #[cfg(test)]
        mod tests {
            fn fake(client: &aws_sdk_lambda::Client) { client.delete_alias(); }
        }
    "#;
    let calls = calls_in(source, "probe.rs", &NeededBy::Every, &sdks).expect("no ambiguous call");
    let actions: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(actions, ["lambda:GetAlias", "lambda:InvokeFunction", "lambda:ListAliases"]);
    assert_eq!(calls[0].site, "probe.rs, fn probe: .get_alias()");
}

/// The comparison fails for both mistakes, naming the action and the hook.
#[test]
fn a_missing_and_an_unused_grant_both_fail() {
    let root = workspace_root();
    let original = read(&root.join("template.yaml"));
    let sdks = sdk_crates();
    let calls = hook_code_calls(&root, &sdks);
    let packages = hook_packages(&root);
    let reporting = "                  - codedeploy:PutLifecycleEventHookExecutionStatus\n";
    let mutations = [
        (
            "missing",
            reporting,
            String::new(),
            concat!(
                "before-install (BeforeInstallHook, role EcsHookRole): ",
                "codedeploy:PutLifecycleEventHookExecutionStatus is not granted, ",
                "but shared/src/report.rs, fn report: .put_lifecycle_event_hook_execution_status() uses it"
            ),
        ),
        (
            "unused",
            reporting,
            format!("{reporting}                  - codedeploy:DeleteApplication\n"),
            concat!(
                "before-install (BeforeInstallHook, role EcsHookRole): ",
                "codedeploy:DeleteApplication is granted, but no hook code calls it"
            ),
        ),
    ];
    for (name, from, to, expected) in mutations {
        assert!(original.contains(from), "template.yaml no longer contains {from:?}; update this mutation");
        let dir = scratch(name);
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        let template = dir.join("template.yaml");
        std::fs::write(&template, original.replacen(from, &to, 1)).expect("write the mutated template");
        let problems = compare(&calls, &deployed(&template, &[], &dir.join("out")), &packages);
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "the {name} grant should report {expected:?}, got {problems:#?}"
        );
    }
}

/// The fleet's hooks read their plans per deployment, so each must be granted what any plan can
/// need on its platform, and nothing else.
#[test]
fn every_fleet_hook_is_granted_what_any_plan_can_need() {
    let root = workspace_root();
    let sdks = sdk_crates();
    let calls = hook_code_calls(&root, &sdks);
    let deployed = deployed(&root.join(FLEET_PLATFORM), &["--fleet-platform"], &scratch("fleet-platform"));
    assert!(
        deployed.values().all(|hook| hook.any_plan),
        "every fleet hook should read its plan per deployment: {deployed:#?}"
    );
    let problems = compare(&calls, &deployed, &hook_packages(&root));
    assert!(
        problems.is_empty(),
        "{FLEET_PLATFORM}'s hook roles do not match what the hook code can call for any plan:\n{}",
        problems.join("\n")
    );
}

/// A grant missing from the fleet's platform fails, whether the hook code or Lambda needs it, and
/// so does one that no plan needs.
#[test]
fn a_missing_or_an_unused_grant_in_the_fleet_platform_fails() {
    let root = workspace_root();
    let original = read(&root.join(FLEET_PLATFORM));
    let sdks = sdk_crates();
    let calls = hook_code_calls(&root, &sdks);
    let packages = hook_packages(&root);
    let target_groups = "                  - elasticloadbalancing:DescribeTargetGroups\n";
    let alarm_history = "                  - cloudwatch:DescribeAlarmHistory\n";
    let lambda_alarms = "alarm:*\n              # Invoke and compare";
    let mutations = [
        (
            "target-groups",
            target_groups.to_owned(),
            String::new(),
            concat!(
                "after-allow-test-traffic (AfterAllowTestTrafficHook, role EcsHookRole): ",
                "elasticloadbalancing:DescribeTargetGroups is not granted, ",
                "but shared/src/checks/variables/ecs.rs"
            ),
        ),
        (
            "subnets",
            "                    - ec2:DescribeSubnets\n".to_owned(),
            String::new(),
            concat!(
                "before-install (BeforeInstallHook, role EcsHookRole): ec2:DescribeSubnets is not granted, ",
                "but Lambda, managing the function's network interfaces in the VPC uses it"
            ),
        ),
        (
            "alarms",
            format!(
                "{alarm_history}                Resource: !Sub arn:${{AWS::Partition}}:cloudwatch:${{AWS::Region}}:${{AWS::AccountId}}:{lambda_alarms}"
            ),
            format!(
                "                Resource: !Sub arn:${{AWS::Partition}}:cloudwatch:${{AWS::Region}}:${{AWS::AccountId}}:{lambda_alarms}"
            ),
            concat!(
                "pre-traffic (PreTrafficHook, role LambdaHookRole): cloudwatch:DescribeAlarmHistory is not granted, ",
                "but shared/src/checks/alarms.rs"
            ),
        ),
        (
            "unused",
            target_groups.to_owned(),
            format!("{target_groups}                  - codedeploy:DeleteApplication\n"),
            concat!(
                "after-install (AfterInstallHook, role EcsHookRole): codedeploy:DeleteApplication is granted, ",
                "but no hook code calls it for this hook (its plan's check kinds: any, since it reads its plan ",
                "per deployment)"
            ),
        ),
    ];
    for (name, from, to, expected) in mutations {
        assert!(original.contains(&from), "{FLEET_PLATFORM} no longer contains {from:?}; update this mutation");
        let dir = scratch(&format!("fleet-{name}"));
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        let template = dir.join("platform.yaml");
        std::fs::write(&template, original.replacen(&from, &to, 1)).expect("write the mutated template");
        let problems = compare(&calls, &deployed(&template, &["--fleet-platform"], &dir.join("out")), &packages);
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "the {name} grant should report {expected:?}, got {problems:#?}"
        );
    }
}
