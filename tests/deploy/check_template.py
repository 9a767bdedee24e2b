"""Checks template.yaml the way CloudFormation will see it: transformed by the SAM translator, offline.

Asserts that
- every package in hooks/ has a function named CodeDeployHook_${AWS::StackName}-<package>, built
  from that package with rust-cargolambda on provided.al2023/arm64 with JSON logs, a plan, a sample
  event in events/, and Outputs for its name and ARN;
- the sample function's DeploymentPreference hooks are the pre-traffic and post-traffic functions;
- the appspec examples name, for each lifecycle event, the hook that serves it, as the prod stack
  of samconfig.toml names it;
- no IAM statement grants a wildcard action, and Resource "*" appears only for actions that IAM
  cannot scope to a resource (per cfn-lint's copy of the Service Authorization Reference), or
  that a hook needs account-wide (ACCOUNT_WIDE, each with why);
- each hook role reads only the deployment group its hooks serve (when it reads one), and only
  the Lambda hooks may call the sample function (and only it, with its versions and aliases).

Which actions each hook needs is not decided here: tests/tests/least_privilege.rs derives them from
the AWS calls in the hook code and compares them with the grants this script writes out.

Usage: check_template.py [--template PATH] [--plans-out DIR] [--grants-out FILE]
With --plans-out, each hook's GREENLIGHT_PLAN, resolved with the parameter defaults, is written to
DIR/<package>.json so the caller can validate it with the hooks' own plan loader.
With --grants-out, FILE gets, for each hook package, its function, its role, whether its plan comes
per deployment (a parameter, a catalog) and the actions the
role's statements allow, as the template spells them (JSON).
Exits 1 with one line per problem.
"""

import argparse
import copy
import importlib.resources
import json
import logging
import os
import re
import sys
import tomllib
from pathlib import Path

import yaml

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

REPO = Path(__file__).resolve().parents[2]
HOOK_PREFIX = "CodeDeployHook_"
LAMBDA_HOOKS = {"pre-traffic", "post-traffic"}
# appspec file -> lifecycle event -> the hook package that serves it there.
APPSPEC_HOOKS = {
    "examples/appspec/ecs/appspec.yaml": {
        "BeforeInstall": "before-install",
        "AfterInstall": "after-install",
        "AfterAllowTestTraffic": "after-allow-test-traffic",
        "BeforeAllowTraffic": "before-allow-traffic",
        "AfterAllowTraffic": "after-allow-traffic",
    },
    "examples/appspec/lambda/appspec.yaml": {
        "BeforeAllowTraffic": "pre-traffic",
        "AfterAllowTraffic": "post-traffic",
    },
}
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "greenlight-dev",
}


class Problems(list):
    def add(self, message):
        self.append(message)


class OfflineManagedPolicies:
    """Stands in for the IAM lookup the translator makes for managed policy names."""

    def load(self):
        names = ["AWSLambdaBasicExecutionRole", "AWSCodeDeployRoleForLambda", "AWSXrayWriteOnlyAccess"]
        return {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in names}


def hook_packages():
    return sorted(p.name for p in (REPO / "hooks").iterdir() if (p / "Cargo.toml").is_file())


def as_list(value):
    return value if isinstance(value, list) else [value]


# Actions IAM could scope that a hook needs account-wide, with why. GetMetricData's only resource
# type is the account's CloudWatch dataset, which names no metric: AWS's own CloudWatch policies
# grant it on "*", and a narrower grant could only deny the queries a plan makes.
ACCOUNT_WIDE = {"cloudwatch:getmetricdata"}


def iam_resource_types():
    """action (lower case, "service:action") -> resource types it can be scoped to."""
    data = json.loads(
        importlib.resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text()
    )
    types = {}
    for service, spec in data.items():
        for action, detail in spec.get("Actions", {}).items():
            types[f"{service}:{action}".lower()] = detail.get("Resources", [])
    return types


def translate(template_path):
    sam = yaml_parse(Path(template_path).read_text())
    code_uris = {}
    for logical_id, resource in sam.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            uri = resource.get("Properties", {}).get("CodeUri")
            code_uris[logical_id] = uri
            # The translator wants S3 locations; sam validate substitutes them the same way.
            resource["Properties"]["CodeUri"] = f"s3://offline-check/{uri}"
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    # The translator rewrites its input in place; keep the SAM view intact for the checks.
    transformed = transform(copy.deepcopy(sam), {}, OfflineManagedPolicies())
    return sam, transformed, code_uris


class Resolver:
    """Resolves the intrinsics a plan uses (Sub, FindInMap, Ref) with parameter defaults."""

    def __init__(self, template):
        self.mappings = template.get("Mappings", {})
        self.values = dict(PSEUDO)
        for name, spec in template.get("Parameters", {}).items():
            if "Default" in spec:
                self.values[name] = str(spec["Default"])

    def resolve(self, node):
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self.values[arg]
            if fn == "Fn::FindInMap":
                mapping, top, second = (self.resolve(a) for a in arg)
                return self.mappings[mapping][top][second]
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                local = {k: self.resolve(v) for k, v in variables.items()}
                # ${!Literal} is Sub's escape: it becomes ${Literal}, as plan variables need.
                def value(m):
                    if m[1].startswith("!"):
                        return "${" + m[1][1:] + "}"
                    return local.get(m[1], self.values.get(m[1], m[0]))

                return re.sub(r"\$\{([^}]+)\}", value, text)
        raise ValueError(f"cannot resolve {node!r}")


def refers_to(node, logical_id):
    """Whether a resource expression names logical_id (Ref, GetAtt or inside a Sub)."""
    text = json.dumps(node)
    return (
        f'"Ref": "{logical_id}"' in text
        or f'"Fn::GetAtt": ["{logical_id}"' in text
        or f"${{{logical_id}}}" in text
        or f"${{{logical_id}." in text
    )


def statements(role):
    for policy in role["Properties"].get("Policies", []):
        for statement in as_list(policy["PolicyDocument"].get("Statement", [])):
            yield policy.get("PolicyName", "?"), statement


def check_hooks(sam, cfn, code_uris, problems, resolver, plans_out):
    resources = cfn["Resources"]
    outputs = cfn.get("Outputs", {})
    hook_ids = {}
    for package in hook_packages():
        matches = [lid for lid, uri in code_uris.items() if uri == f"hooks/{package}"]
        if len(matches) != 1:
            problems.add(f"hooks/{package}: expected one function with CodeUri hooks/{package}, found {len(matches)}")
            continue
        logical_id = matches[0]
        hook_ids[package] = logical_id
        function = resources[logical_id]
        props = function["Properties"]
        name = props.get("FunctionName")
        expected_name = f"{HOOK_PREFIX}${{AWS::StackName}}-{package}"
        if name != {"Fn::Sub": expected_name}:
            problems.add(
                f"{logical_id}: FunctionName must be !Sub {expected_name} (CodeDeploy's managed roles may invoke only {HOOK_PREFIX}* functions), found {json.dumps(name)}"
            )
        metadata = function.get("Metadata", {})
        if metadata.get("BuildMethod") != "rust-cargolambda":
            problems.add(f"{logical_id}: Metadata BuildMethod must be rust-cargolambda")
        # Without it cargo lambda build copies every workspace binary, racing the parallel builds.
        if metadata.get("BuildProperties", {}).get("Binary") != package:
            problems.add(f"{logical_id}: Metadata BuildProperties Binary must be {package}")
        for key, want in (("Runtime", "provided.al2023"), ("Architectures", ["arm64"]), ("Handler", "bootstrap")):
            if props.get(key) != want:
                problems.add(f"{logical_id}: {key} must be {want}, found {props.get(key)}")
        if props.get("LoggingConfig", {}).get("LogFormat") != "JSON":
            problems.add(f"{logical_id}: LoggingConfig LogFormat must be JSON")
        event = REPO / "events" / f"{package}.json"
        try:
            sample = json.loads(event.read_text())
            for key in ("DeploymentId", "LifecycleEventHookExecutionId"):
                if not isinstance(sample.get(key), str) or not sample[key]:
                    problems.add(f"events/{package}.json: {key} must be a non-empty string")
        except (OSError, ValueError) as err:
            problems.add(f"hooks/{package}: no usable sample event events/{package}.json ({err})")
        variables = props.get("Environment", {}).get("Variables", {})
        if ("GREENLIGHT_PLAN" in variables) == ("GREENLIGHT_PLAN_FILE" in variables):
            problems.add(f"{logical_id}: set exactly one of GREENLIGHT_PLAN and GREENLIGHT_PLAN_FILE")
        elif "GREENLIGHT_PLAN" in variables and plans_out:
            try:
                plan = resolver.resolve(variables["GREENLIGHT_PLAN"])
                Path(plans_out, f"{package}.json").write_text(plan)
            except (KeyError, ValueError) as err:
                problems.add(f"{logical_id}: cannot resolve GREENLIGHT_PLAN: {err}")
        values = [o.get("Value") for o in outputs.values()]
        if {"Ref": logical_id} not in values:
            problems.add(f"Outputs: no output with the name of {logical_id} (!Ref {logical_id})")
        if {"Fn::GetAtt": [logical_id, "Arn"]} not in values:
            problems.add(f"Outputs: no output with the ARN of {logical_id} (!GetAtt {logical_id}.Arn)")
    return hook_ids


def check_sample_function(sam, cfn, hook_ids, problems):
    preferred = [
        (lid, r)
        for lid, r in sam["Resources"].items()
        if r.get("Type") == "AWS::Serverless::Function" and "DeploymentPreference" in r.get("Properties", {})
    ]
    if len(preferred) != 1:
        problems.add(f"expected one function with a DeploymentPreference, found {len(preferred)}")
        return None
    logical_id, function = preferred[0]
    props = function["Properties"]
    preference = props["DeploymentPreference"]
    if props.get("AutoPublishAlias") != "live":
        problems.add(f"{logical_id}: AutoPublishAlias must be live")
    type_ref = preference.get("Type")
    parameter = sam.get("Parameters", {}).get(type_ref.get("Ref")) if isinstance(type_ref, dict) else None
    if not parameter or parameter.get("Default") != "Canary10Percent5Minutes":
        problems.add(f"{logical_id}: DeploymentPreference Type must be a parameter defaulting to Canary10Percent5Minutes")
    if not preference.get("Alarms"):
        problems.add(f"{logical_id}: DeploymentPreference needs an error alarm")
    hooks = preference.get("Hooks", {})
    for sam_name, package in (("PreTraffic", "pre-traffic"), ("PostTraffic", "post-traffic")):
        want = hook_ids.get(package)
        if hooks.get(sam_name) != {"Ref": want}:
            problems.add(
                f"{logical_id}: DeploymentPreference Hooks {sam_name} must be !Ref {want} (hooks/{package}), found {json.dumps(hooks.get(sam_name))}"
            )
    alias = cfn["Resources"].get(f"{logical_id}Aliaslive", {})
    update = alias.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate", {})
    for key, package in (("BeforeAllowTrafficHook", "pre-traffic"), ("AfterAllowTrafficHook", "post-traffic")):
        if update.get(key) != {"Ref": hook_ids.get(package)}:
            problems.add(f"{logical_id}Aliaslive: {key} must be the {package} hook, found {json.dumps(update.get(key))}")
    return logical_id


def check_appspecs(problems):
    samconfig = tomllib.loads((REPO / "samconfig.toml").read_text())
    stack = samconfig.get("prod", {}).get("global", {}).get("parameters", {}).get("stack_name")
    if not stack:
        problems.add("samconfig.toml: no [prod.global.parameters] stack_name")
        return
    for path, wiring in APPSPEC_HOOKS.items():
        try:
            appspec = yaml.safe_load((REPO / path).read_text())
        except (OSError, yaml.YAMLError) as err:
            problems.add(f"{path}: unreadable ({err})")
            continue
        named = {}
        for entry in appspec.get("Hooks", []):
            named.update(entry)
        if set(named) != set(wiring):
            problems.add(f"{path}: Hooks must name exactly {', '.join(wiring)}, found {', '.join(named)}")
        for event, package in wiring.items():
            want = f"{HOOK_PREFIX}{stack}-{package}"
            if event in named and named[event] != want:
                problems.add(f"{path}: {event} is served by {want}, found {named[event]}")


def check_statement_shapes(cfn, problems):
    """No wildcard action anywhere; Resource "*" only where IAM offers nothing narrower."""
    resource_types = iam_resource_types()
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy_name, statement in statements(resource):
            where = f"{logical_id}/{policy_name}/{statement.get('Sid', '?')}"
            if "NotAction" in statement or "NotResource" in statement:
                problems.add(f"{where}: NotAction/NotResource grant more than they name")
            actions = [a.lower() for a in as_list(statement.get("Action", []))]
            for action in actions:
                if "*" in action or "?" in action:
                    problems.add(f"{where}: wildcard action {action!r}")
            if "*" not in as_list(statement.get("Resource", [])):
                continue
            for action in actions:
                if action not in resource_types:
                    problems.add(f"{where}: unknown action {action!r} on Resource \"*\"")
                elif resource_types[action] and action not in ACCOUNT_WIDE:
                    problems.add(
                        f"{where}: {action} on Resource \"*\", but IAM can scope it to {', '.join(resource_types[action])}"
                    )


def hook_roles(cfn, hook_ids, problems):
    """hook package -> the logical id of its role."""
    resources = cfn["Resources"]
    roles = {}
    for package, logical_id in hook_ids.items():
        role = resources[logical_id]["Properties"].get("Role", {})
        role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        if role_id not in resources:
            problems.add(f"{logical_id}: Role must be !GetAtt <a role in this template>.Arn, found {json.dumps(role)}")
            continue
        roles[package] = role_id
    return roles


def write_grants(cfn, hook_ids, package_roles, path):
    grants = {}
    for package, role_id in package_roles.items():
        actions = set()
        for _, statement in statements(cfn["Resources"][role_id]):
            if statement.get("Effect") == "Allow":
                actions.update(as_list(statement.get("Action", [])))
        environment = cfn["Resources"][hook_ids[package]]["Properties"].get("Environment", {}).get("Variables", {})
        grants[package] = {
            "function": hook_ids[package],
            "role": role_id,
            "actions": sorted(actions),
            # How the hook finds its plan: one plan (GREENLIGHT_PLAN), or one per deployment.
            "plan_parameter": "GREENLIGHT_PLAN_PARAMETER" in environment,
            "plan_catalog": "GREENLIGHT_PLAN_CATALOG_FILE" in environment,
        }
    Path(path).write_text(json.dumps(grants, indent=2))


def check_hook_roles(cfn, package_roles, sample_id, problems):
    resources = cfn["Resources"]
    roles = {}
    for package, role_id in package_roles.items():
        roles.setdefault(role_id, set()).add(package)
    deployment_group = f"{sample_id}DeploymentGroup" if sample_id else None
    for role_id, packages in roles.items():
        lambda_role = packages <= LAMBDA_HOOKS
        if not lambda_role and packages & LAMBDA_HOOKS:
            problems.add(f"{role_id}: serves both ECS and Lambda hooks ({', '.join(sorted(packages))}); give each platform its own role")
        role = resources[role_id]
        if role["Properties"].get("ManagedPolicyArns"):
            problems.add(f"{role_id}: managed policies bring grants this check cannot see; use inline statements")
        for policy_name, statement in statements(role):
            where = f"{role_id}/{policy_name}/{statement.get('Sid', '?')}"
            if statement.get("Effect") != "Allow":
                continue
            actions = {a.lower() for a in as_list(statement.get("Action", []))}
            targets = as_list(statement.get("Resource", []))
            if "codedeploy:getdeployment" in actions:
                for target in targets:
                    text = json.dumps(target)
                    if ":deploymentgroup:" not in text:
                        problems.add(f"{where}: codedeploy:GetDeployment must name a deployment group ARN, found {text}")
                    elif lambda_role and not (
                        refers_to(target, "ServerlessDeploymentApplication") and refers_to(target, deployment_group)
                    ):
                        problems.add(f"{where}: the Lambda hooks read only {deployment_group}, found {text}")
                    elif not lambda_role and not ("${EcsApplicationName}/${EcsDeploymentGroupName}" in text):
                        problems.add(f"{where}: the ECS hooks read only the ECS deployment group parameters, found {text}")
            lambda_actions = {a for a in actions if a.startswith("lambda:")}
            if lambda_actions and not lambda_role:
                problems.add(f"{where}: ECS hooks need no {', '.join(sorted(lambda_actions))}")
            if lambda_actions:
                for target in targets:
                    if not (sample_id and refers_to(target, sample_id)):
                        problems.add(f"{where}: {', '.join(sorted(lambda_actions))} only on {sample_id} and its versions, found {json.dumps(target)}")
            logs_actions = {a for a in actions if a.startswith("logs:")}
            if logs_actions:
                for target in targets:
                    if not any(refers_to(target, lid) for lid, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"):
                        problems.add(f"{where}: logs only on this template's log groups, found {json.dumps(target)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=str(REPO / "template.yaml"))
    parser.add_argument("--plans-out")
    parser.add_argument("--grants-out")
    args = parser.parse_args()
    logging.getLogger("samtranslator").setLevel(logging.ERROR)

    sam, cfn, code_uris = translate(args.template)
    problems = Problems()
    hook_ids = check_hooks(sam, cfn, code_uris, problems, Resolver(sam), args.plans_out)
    sample_id = check_sample_function(sam, cfn, hook_ids, problems)
    check_appspecs(problems)
    check_statement_shapes(cfn, problems)
    package_roles = hook_roles(cfn, hook_ids, problems)
    check_hook_roles(cfn, package_roles, sample_id, problems)
    if args.grants_out:
        write_grants(cfn, hook_ids, package_roles, args.grants_out)

    if problems:
        for problem in problems:
            print(f"template check: {problem}", file=sys.stderr)
        print(f"template check: {len(problems)} problem(s) in {args.template}", file=sys.stderr)
        return 1
    print(f"template check: {args.template} passed ({len(hook_ids)} hooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
