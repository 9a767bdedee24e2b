"""Checks a deployment template the way CloudFormation will see it: transformed by the SAM translator, offline.

Three templates, three sets of checks. For template.yaml (the default), it asserts that
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

With --fleet-platform (examples/fleet/platform.yaml, the hooks once for a fleet), it asserts the
same of the functions (their CodeUri relative to examples/fleet) and of every IAM statement, and
that
- every hook reads its plan per deployment, from the parameter <PlanParameterPrefix>/{application}/
  {deployment_group}/{hook}, with its cache time from a parameter, and has no single plan;
- ssm:GetParameter is granted on the plans' path only, kms:Decrypt only on the key parameter, the
  CodeDeploy reads only on deployment groups, lambda:InvokeFunction only on a function-name prefix,
  and the EC2 network-interface actions only under the VPC condition;
- the ECS hooks' role reads ECS service deployments and revisions (ECS-native deployments), on
  those resource types only, and the Lambda hooks' role reads no ECS;
- the ECS hooks are put in the subnets with one security group under one condition, the Lambda
  hooks in no VPC, the group, the plan prefix and each ECS hook's ARN are exported for the
  service stacks, and the interface VPC endpoints are exactly those of the AWS APIs the ECS hooks'
  role grants calls to.

With --fleet-service (examples/fleet/service.yaml, one service's stack), it asserts that the stack
has an ECS CodeDeploy application and a blue/green deployment group with traffic control, both
listeners, two target groups and automatic rollback, and plan parameters named from the platform's
exported prefix, the application, the group and an ECS hook package, one per hook at most; a
listener ingress rule, if any, admits the platform's exported hook security group.

With --ecs-native-service (examples/ecs-native/service.yaml, one service deployed by ECS itself),
it asserts that the ECS service uses the ECS deployment controller with a blue/green, linear or
canary strategy, a bake time, and LinearConfiguration or CanaryConfiguration only with its own
strategy; that each LifecycleHooks entry imports a hook ARN the platform exports, at exactly the
stage that hook's binary serves, once; that each entry's HookDetails is {plan_parameter: !Ref P}
with P a plan parameter of this stack named under the platform's prefix and ending in the hook's
name, one plan per hook and none unused; that the invoke role is trusted by ecs.amazonaws.com
only and grants only lambda:InvokeFunction on exactly the hooks it invokes; that the load
balancer has both target groups, both listener rules and its own role, trusted by ECS with
AmazonECSInfrastructureRolePolicyForLoadBalancers; and the ingress rules as --fleet-service.

Which actions each hook needs is not decided here: tests/tests/least_privilege.rs derives them from
the AWS calls in the hook code and compares them with the grants this script writes out.

Usage: check_template.py [--template PATH] [--fleet-platform | --fleet-service | --ecs-native-service]
                         [--plans-out DIR] [--grants-out FILE]
With --plans-out, each plan the template carries is written to DIR so the caller can validate it
with the hooks' own plan loader: each hook's GREENLIGHT_PLAN, resolved with the parameter
defaults, as DIR/<package>.json; with --fleet-service and --ecs-native-service, each plan
parameter's value as DIR/<logical id>.json.
With --grants-out, FILE gets, for each hook package, its function, its role, whether its plan comes
per deployment (a parameter, a catalog), whether it runs in a VPC, and the actions the role's
statements allow, conditional ones included, as the template spells them (JSON).
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
# Where examples/fleet/platform.yaml lives: its CodeUris are relative to it, wherever a copy is checked.
FLEET_HOME = REPO / "examples" / "fleet"
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


def branches(node, conditions=()):
    """What a list entry can be, with the conditions under which it is: both sides of an Fn::If
    (the false side under "!<condition>"), nothing for AWS::NoValue, anything else as it is."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        name, when_true, when_false = node["Fn::If"]
        yield from branches(when_true, conditions + (name,))
        yield from branches(when_false, conditions + (f"!{name}",))
    elif node != {"Ref": "AWS::NoValue"}:
        yield node, conditions


def statements(role):
    """(policy name, statement, conditions) for every statement the role can have, conditional
    policies and statements included: a grant counts whether or not its condition holds."""
    for entry in as_list(role["Properties"].get("Policies", [])):
        for policy, policy_conditions in branches(entry):
            for item in as_list(policy["PolicyDocument"].get("Statement", [])):
                for statement, conditions in branches(item, policy_conditions):
                    yield policy.get("PolicyName", "?"), statement, conditions


def allowed(role_id, role, problems):
    """(where, lower-cased actions, resources, conditions) of every Allow statement the role can
    have, for the checks of what it grants; managed policies are refused, as grants unseen."""
    if role["Properties"].get("ManagedPolicyArns"):
        problems.add(f"{role_id}: managed policies bring grants this check cannot see; use inline statements")
    for policy_name, statement, conditions in statements(role):
        if statement.get("Effect") != "Allow":
            continue
        where = f"{role_id}/{policy_name}/{statement.get('Sid', '?')}"
        actions = {a.lower() for a in as_list(statement.get("Action", []))}
        yield where, actions, as_list(statement.get("Resource", [])), conditions


def check_hooks(sam, cfn, code_uris, problems, resolver, plans_out, home=REPO, fleet=False):
    """The hook functions; CodeUri is relative to home, the template's folder. With fleet, every
    plan comes per deployment from Parameter Store; without, each hook has one plan."""
    resources = cfn["Resources"]
    outputs = cfn.get("Outputs", {})
    hook_ids = {}
    plan_prefixes = set()
    for package in hook_packages():
        uri = Path(os.path.relpath(REPO / "hooks" / package, home)).as_posix()
        matches = [lid for lid, found in code_uris.items() if found == uri]
        if len(matches) != 1:
            problems.add(f"hooks/{package}: expected one function with CodeUri {uri}, found {len(matches)}")
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
        if fleet:
            prefix = check_plan_per_deployment(sam, logical_id, variables, problems)
            if prefix:
                plan_prefixes.add(prefix)
        elif ("GREENLIGHT_PLAN" in variables) == ("GREENLIGHT_PLAN_FILE" in variables):
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
    if fleet:
        if len(plan_prefixes) > 1:
            problems.add(f"the hooks read plans under different prefixes ({', '.join(sorted(plan_prefixes))}); a service's stack writes its plans under one")
        return hook_ids, next(iter(plan_prefixes), None)
    return hook_ids


PLAN_PLACEHOLDERS = "/{application}/{deployment_group}/{hook}"


def check_plan_per_deployment(sam, logical_id, variables, problems):
    """The plan is the deployment group's parameter under a prefix parameter: returns the prefix
    parameter's name. A single plan beside it would be refused by the hooks at start."""
    for single in ("GREENLIGHT_PLAN", "GREENLIGHT_PLAN_FILE"):
        if single in variables:
            problems.add(f"{logical_id}: {single} gives every service the same plan; the fleet's plans come per deployment")
    parameters = sam.get("Parameters", {})
    name = variables.get("GREENLIGHT_PLAN_PARAMETER")
    text = name.get("Fn::Sub") if isinstance(name, dict) else None
    match = re.fullmatch(r"\$\{(\w+)\}" + re.escape(PLAN_PLACEHOLDERS), text) if isinstance(text, str) else None
    prefix = match[1] if match and match[1] in parameters else None
    if not prefix:
        problems.add(
            f"{logical_id}: GREENLIGHT_PLAN_PARAMETER must be !Sub ${{<prefix parameter>}}{PLAN_PLACEHOLDERS}, found {json.dumps(name)}"
        )
    cache = variables.get("GREENLIGHT_PLAN_CACHE_SECONDS")
    if not (isinstance(cache, dict) and cache.get("Ref") in parameters):
        problems.add(f"{logical_id}: GREENLIGHT_PLAN_CACHE_SECONDS must be !Ref <a parameter>, found {json.dumps(cache)}")
    return prefix


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
        for policy_name, statement, _ in statements(resource):
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
        for _, statement, _ in statements(cfn["Resources"][role_id]):
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
            # Whether Lambda puts it in a VPC (under a condition or not), using the role to do so.
            "in_vpc": "VpcConfig" in cfn["Resources"][hook_ids[package]]["Properties"],
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
        for where, actions, targets, _ in allowed(role_id, resources[role_id], problems):
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

# How the IAM prefix of an action the ECS hooks are granted names the AWS API's interface VPC
# endpoint (com.amazonaws.<region>.<service>), where the two differ.
ENDPOINT_SERVICES = {"cloudwatch": "monitoring"}
# Granted to the hooks' role but called by an AWS service on the hook's behalf, not from the VPC.
CALLED_ON_THE_HOOKS_BEHALF = {
    "logs": "Lambda ships a function's logs itself",
    "ec2": "Lambda creates and deletes the function's network interfaces",
    "kms": "Parameter Store decrypts a SecureString plan",
}


def parameter_ref(node, sam):
    """The template parameter node is a !Ref of, or None."""
    name = node.get("Ref") if isinstance(node, dict) else None
    return name if name in sam.get("Parameters", {}) else None


def sub_text(node):
    """The text of a one-argument !Sub, or of a plain string; None for anything else."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and isinstance(node.get("Fn::Sub"), str):
        return node["Fn::Sub"]
    return None


def check_fleet_roles(sam, cfn, package_roles, plan_prefix, problems):
    """What the fleet's hook roles may touch: the plans' path, the key, deployment groups, a
    function-name prefix, their own log groups, and network interfaces only in a VPC."""
    resources = cfn["Resources"]
    def account(service):
        return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"

    plans = account("ssm") + f"parameter${{{plan_prefix}}}/*"
    log_groups = [lid for lid, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"]
    for role_id in sorted(set(package_roles.values())):
        for where, actions, targets, conditions in allowed(role_id, resources[role_id], problems):
            texts = [sub_text(t) for t in targets]
            if "ssm:getparameter" in actions and texts != [plans]:
                problems.add(f"{where}: ssm:GetParameter only on the plans' path, !Sub {plans}, found {json.dumps(targets)}")
            if "kms:decrypt" in actions and not all(parameter_ref(t, sam) for t in targets):
                problems.add(f"{where}: kms:Decrypt only on the plans' key, a !Ref of a key parameter, found {json.dumps(targets)}")
            if actions & {"codedeploy:getdeployment", "codedeploy:getdeploymentgroup"}:
                group = account("codedeploy") + "deploymentgroup:"
                if not all(t and t.startswith(group) for t in texts):
                    problems.add(f"{where}: the CodeDeploy reads only on deployment groups ({group}...), found {json.dumps(targets)}")
            lambda_actions = sorted(a for a in actions if a.startswith("lambda:"))
            if lambda_actions:
                function = account("lambda") + "function:"
                prefixed = re.compile(re.escape(function) + r"\$\{(\w+)\}\*")
                if not all(t and (m := prefixed.fullmatch(t)) and m[1] in sam.get("Parameters", {}) for t in texts):
                    problems.add(
                        f"{where}: {', '.join(lambda_actions)} only on a function-name prefix, !Sub {function}${{<parameter>}}*, found {json.dumps(targets)}"
                    )
            if any(a.startswith("logs:") for a in actions):
                for target in targets:
                    if not any(refers_to(target, lid) for lid in log_groups):
                        problems.add(f"{where}: logs only on this template's log groups, found {json.dumps(target)}")
            ec2_actions = sorted(a for a in actions if a.startswith("ec2:"))
            if ec2_actions and not [c for c in conditions if not c.startswith("!")]:
                problems.add(f"{where}: {', '.join(ec2_actions)} only under the condition that puts the hooks in a VPC")


def check_fleet_network(sam, cfn, hook_ids, package_roles, problems):
    """The ECS hooks in the subnets with one exported security group, the Lambda hooks in no VPC,
    and an interface endpoint for exactly the AWS APIs the ECS hooks call."""
    resources = cfn["Resources"]
    wiring = set()
    for package, logical_id in sorted(hook_ids.items()):
        vpc = resources[logical_id]["Properties"].get("VpcConfig")
        if package in LAMBDA_HOOKS:
            if vpc is not None:
                problems.add(f"{logical_id}: the Lambda hooks judge functions through the Lambda API and need no VpcConfig")
            continue
        shape = vpc.get("Fn::If") if isinstance(vpc, dict) else None
        config = shape[1] if isinstance(shape, list) and len(shape) == 3 else {}
        groups = as_list(config.get("SecurityGroupIds", [])) if isinstance(config, dict) else []
        group = groups[0].get("Ref") if len(groups) == 1 and isinstance(groups[0], dict) else None
        subnets = parameter_ref(config.get("SubnetIds"), sam) if isinstance(config, dict) else None
        if not (shape and shape[2] == {"Ref": "AWS::NoValue"} and subnets and group in resources):
            problems.add(
                f"{logical_id}: VpcConfig must be !If [<condition>, {{SubnetIds: !Ref <parameter>, SecurityGroupIds: [!Ref <security group>]}}, !Ref AWS::NoValue], found {json.dumps(vpc)}"
            )
            continue
        wiring.add((shape[0], subnets, group))
    if len(wiring) != 1:
        if wiring:
            problems.add(f"the ECS hooks differ in their VpcConfig ({sorted(wiring)}); one condition, subnets and group for all")
        return
    (in_vpc, subnets, group), = wiring
    hook_group = resources[group]
    if hook_group["Type"] != "AWS::EC2::SecurityGroup" or hook_group.get("Condition") != in_vpc:
        problems.add(f"{group}: must be an AWS::EC2::SecurityGroup with Condition {in_vpc}")
    exported = [
        (name, o) for name, o in cfn.get("Outputs", {}).items()
        if o.get("Value") == {"Ref": group}
        and o.get("Export", {}).get("Name") == {"Fn::Sub": f"${{AWS::StackName}}-{group}"}
    ]
    if len(exported) != 1 or exported[0][1].get("Condition") != in_vpc:
        problems.add(
            f"Outputs: export the hooks' security group once, as !Sub ${{AWS::StackName}}-{group} under Condition {in_vpc}, so service stacks can admit it"
        )

    ecs_roles = {package_roles[p] for p in hook_ids if p not in LAMBDA_HOOKS and p in package_roles}
    called = {}
    for role_id in sorted(ecs_roles):
        for _, statement, _ in statements(resources[role_id]):
            for action in as_list(statement.get("Action", [])):
                prefix = action.split(":")[0].lower()
                if prefix not in CALLED_ON_THE_HOOKS_BEHALF:
                    called.setdefault(ENDPOINT_SERVICES.get(prefix, prefix), action)
    endpoints = {}
    service_name = re.compile(r"com\.amazonaws\.\$\{AWS::Region\}\.([a-z0-9-]+)")
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::EC2::VPCEndpoint":
            continue
        props = resource["Properties"]
        match = service_name.fullmatch(sub_text(props.get("ServiceName")) or "")
        if not match:
            problems.add(f"{logical_id}: ServiceName must be !Sub com.amazonaws.${{AWS::Region}}.<service>, found {json.dumps(props.get('ServiceName'))}")
            continue
        endpoints[match[1]] = logical_id
        condition = resource.get("Condition")
        condition_spec = cfn.get("Conditions", {}).get(condition, {})
        if not condition or {"Condition": in_vpc} not in as_list(condition_spec.get("Fn::And", [])):
            problems.add(f"{logical_id}: Condition must be one that requires {in_vpc} (Fn::And with !Condition {in_vpc}), found {condition}")
        for key, want in (("VpcEndpointType", "Interface"), ("PrivateDnsEnabled", True), ("SubnetIds", {"Ref": subnets})):
            if props.get(key) != want:
                problems.add(f"{logical_id}: {key} must be {json.dumps(want)}, found {json.dumps(props.get(key))}")
        for ref in as_list(props.get("SecurityGroupIds", [])):
            admits = resources.get(ref.get("Ref") if isinstance(ref, dict) else None, {}).get("Properties", {})
            if not any(
                rule.get("SourceSecurityGroupId") == {"Ref": group} and rule.get("IpProtocol") == "tcp"
                and rule.get("FromPort", 0) <= 443 <= rule.get("ToPort", -1)
                for rule in admits.get("SecurityGroupIngress", [])
            ):
                problems.add(f"{logical_id}: its security group {json.dumps(ref)} must admit {group} on TCP 443")
        if not props.get("SecurityGroupIds"):
            problems.add(f"{logical_id}: SecurityGroupIds must name a group that admits {group} on TCP 443")
    for service, action in sorted(called.items()):
        if service not in endpoints:
            problems.add(f"no interface VPC endpoint for {service}, which the ECS hooks call ({action}): in subnets without a NAT gateway they cannot reach it")
    for service, logical_id in sorted(endpoints.items()):
        if service not in called:
            problems.add(f"{logical_id}: an endpoint for {service}, which the ECS hooks' role grants no call to")


# The ECS reads of ECS-native deployments (no CodeDeploy): the service deployment an event names,
# and its revisions. IAM scopes them to these resource types (and the service).
ECS_NATIVE_READS = ("ecs:DescribeServiceDeployments", "ecs:DescribeServiceRevisions")
ECS_RESOURCE_TYPES = ("service-deployment/", "service-revision/", "service/")


def check_fleet_ecs_reads(cfn, package_roles, problems):
    """The ECS hooks' role reads service deployments and revisions, on those resource types
    only; the Lambda hooks' role reads no ECS."""
    resources = cfn["Resources"]
    ecs = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:"
    for role_id in sorted(set(package_roles.values())):
        packages = {p for p, r in package_roles.items() if r == role_id}
        granted = set()
        for where, actions, targets, _ in allowed(role_id, resources[role_id], problems):
            ecs_actions = sorted(a for a in actions if a.startswith("ecs:"))
            granted.update(ecs_actions)
            if ecs_actions and packages <= LAMBDA_HOOKS:
                problems.add(f"{where}: the Lambda hooks judge no ECS deployment and need no {', '.join(ecs_actions)}")
            elif ecs_actions:
                texts = [sub_text(t) for t in targets]
                if not all(t and any(t.startswith(ecs + kind) for kind in ECS_RESOURCE_TYPES) for t in texts):
                    problems.add(
                        f"{where}: {', '.join(ecs_actions)} only on {', '.join(k.rstrip('/') for k in ECS_RESOURCE_TYPES)} ARNs (!Sub {ecs}<type>/...), found {json.dumps(targets)}"
                    )
        if not packages <= LAMBDA_HOOKS:
            for action in (a for a in ECS_NATIVE_READS if a.lower() not in granted):
                problems.add(f"{role_id}: grant {action}, which the ECS hooks call for ECS-native deployments")


def check_hook_arn_exports(cfn, hook_ids, problems):
    """Each ECS hook's ARN is exported as <stack>-<function>Arn, for service stacks'
    LifecycleHooks."""
    outputs = cfn.get("Outputs", {}).values()
    for package, logical_id in sorted(hook_ids.items()):
        if package in LAMBDA_HOOKS:
            continue
        want = {"Fn::Sub": f"${{AWS::StackName}}-{logical_id}Arn"}
        if not any(
            o.get("Value") == {"Fn::GetAtt": [logical_id, "Arn"]} and o.get("Export", {}).get("Name") == want
            for o in outputs
        ):
            problems.add(f"Outputs: export !GetAtt {logical_id}.Arn as !Sub {want['Fn::Sub']}, which ECS-native service stacks name their hooks by")


def check_plan_prefix_export(cfn, plan_prefix, problems):
    want = {"Fn::Sub": "${AWS::StackName}-PlanParameterPrefix"}
    if not any(
        o.get("Value") == {"Ref": plan_prefix} and o.get("Export", {}).get("Name") == want
        for o in cfn.get("Outputs", {}).values()
    ):
        problems.add(f"Outputs: export !Ref {plan_prefix} as !Sub {want['Fn::Sub']}, which service stacks name their plans by")


def shape(node):
    """An intrinsic expression as readable text: ${Name} for a Ref, import(...) for an
    Fn::ImportValue, Sub and Join done; None for anything else."""
    if isinstance(node, str):
        return node
    if not isinstance(node, dict) or len(node) != 1:
        return None
    (fn, arg), = node.items()
    if fn == "Ref":
        return f"${{{arg}}}"
    if fn == "Fn::ImportValue":
        inner = shape(arg)
        return f"import({inner})" if inner is not None else None
    if fn == "Fn::Sub":
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        local = {k: shape(v) for k, v in variables.items()}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: local.get(m[1]) or m[0], text)
    if fn == "Fn::Join":
        separator, parts = arg
        shown = [shape(p) for p in parts]
        return None if None in shown else separator.join(shown)
    return None


def resources_by_type(resources):
    """resource type -> the logical ids of that type."""
    found = {}
    for logical_id, resource in resources.items():
        found.setdefault(resource["Type"], []).append(logical_id)
    return found


# The export the platform names its plan prefix by, as shape() shows an import of it.
PLAN_PREFIX_IMPORT = "import(${PlatformStackName}-PlanParameterPrefix)"


def check_platform_stack_parameter(sam, problems):
    if "PlatformStackName" not in sam.get("Parameters", {}):
        problems.add("no PlatformStackName parameter, which the platform's exports are named by")


def check_plan_value(logical_id, plan, problems, plans_out):
    """A plan parameter's type and value; with plans_out, the value goes to <logical id>.json
    for the caller to load with the hooks' own plan loader."""
    if plan.get("Type") != "String":
        problems.add(f"{logical_id}: Type must be String (a SecureString cannot be created by CloudFormation)")
    value = plan.get("Value")
    if not isinstance(value, str):
        problems.add(f"{logical_id}: Value must be the plan as literal JSON, found {json.dumps(value)}")
    elif plans_out:
        Path(plans_out, f"{logical_id}.json").write_text(value)


def check_hook_ingress(resources, types, problems):
    """A listener ingress rule admits the platform's exported hook security group, and only
    under a condition: a platform outside a VPC exports no group."""
    hook_group = "import(${PlatformStackName}-HookSecurityGroup)"
    for logical_id in types.get("AWS::EC2::SecurityGroupIngress", []):
        resource = resources[logical_id]
        if shape(resource["Properties"].get("SourceSecurityGroupId")) != hook_group:
            problems.add(f"{logical_id}: SourceSecurityGroupId must be the platform's {hook_group}")
        if not resource.get("Condition"):
            problems.add(f"{logical_id}: needs a Condition: only a platform in a VPC exports its hook security group")


def check_fleet_service(sam, cfn, problems, plans_out):
    """One service's stack: its CodeDeploy application and blue/green group, its plan under the
    platform's prefix, and ingress for the platform's hooks."""
    resources = cfn["Resources"]
    by_type = resources_by_type(resources)
    applications = by_type.get("AWS::CodeDeploy::Application", [])
    groups = by_type.get("AWS::CodeDeploy::DeploymentGroup", [])
    if len(applications) != 1 or len(groups) != 1:
        problems.add(f"expected one CodeDeploy application and one deployment group, found {len(applications)} and {len(groups)}")
        return
    application, group = applications[0], groups[0]
    if resources[application]["Properties"].get("ComputePlatform") != "ECS":
        problems.add(f"{application}: ComputePlatform must be ECS")
    props = resources[group]["Properties"]
    if props.get("ApplicationName") != {"Ref": application}:
        problems.add(f"{group}: ApplicationName must be !Ref {application}")
    style = props.get("DeploymentStyle", {})
    if style != {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}:
        problems.add(f"{group}: DeploymentStyle must be BLUE_GREEN WITH_TRAFFIC_CONTROL, found {json.dumps(style)}")
    if len(props.get("ECSServices", [])) != 1:
        problems.add(f"{group}: ECSServices must name the one service")
    pairs = props.get("LoadBalancerInfo", {}).get("TargetGroupPairInfoList", [])
    pair = pairs[0] if len(pairs) == 1 else {}
    if len(pair.get("TargetGroups", [])) != 2:
        problems.add(f"{group}: TargetGroupPairInfoList must hold one pair of two target groups")
    for route in ("ProdTrafficRoute", "TestTrafficRoute"):
        # The hooks find ${production_url} and ${test_url} from these listeners.
        if len(pair.get(route, {}).get("ListenerArns", [])) != 1:
            problems.add(f"{group}: {route} must name one listener, which the hooks' URL variables come from")
    rollback = props.get("AutoRollbackConfiguration", {})
    if rollback.get("Enabled") is not True or "DEPLOYMENT_FAILURE" not in rollback.get("Events", []):
        problems.add(f"{group}: AutoRollbackConfiguration must be enabled for DEPLOYMENT_FAILURE, so a failed hook rolls back")

    want_group = f"{PLAN_PREFIX_IMPORT}/${{{application}}}/${{{group}}}"
    ecs_hooks = [package for package in hook_packages() if package not in LAMBDA_HOOKS]
    plans = by_type.get("AWS::SSM::Parameter", [])
    check_platform_stack_parameter(sam, problems)
    if not plans:
        problems.add("no plan parameter (AWS::SSM::Parameter): the platform's hooks would find no plan")
    hooks_with_plans = []
    for logical_id in plans:
        plan = resources[logical_id]["Properties"]
        name = shape(plan.get("Name"))
        hook = name.removeprefix(want_group + "/") if isinstance(name, str) else None
        if hook not in ecs_hooks:
            problems.add(
                f"{logical_id}: Name must be {want_group}/<hook>, with <hook> one of {', '.join(ecs_hooks)}, as the platform's hooks look it up, found {name}"
            )
        elif hook in hooks_with_plans:
            problems.add(f"{logical_id}: a second plan for {hook}")
        else:
            hooks_with_plans.append(hook)
        check_plan_value(logical_id, plan, problems, plans_out)
    check_hook_ingress(resources, by_type, problems)


# hook package -> the one ECS lifecycle stage its binary serves in an ECS-native deployment, as
# the hooks map them (docs/ecs-native.md). The Lambda hooks serve none.
ECS_STAGES = {
    "before-install": "PRE_SCALE_UP",
    "after-install": "POST_SCALE_UP",
    "after-allow-test-traffic": "POST_TEST_TRAFFIC_SHIFT",
    "before-allow-traffic": "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "after-allow-traffic": "POST_PRODUCTION_TRAFFIC_SHIFT",
}
# Strategy -> the configuration only it takes.
STRATEGY_CONFIGURATIONS = {"LINEAR": "LinearConfiguration", "CANARY": "CanaryConfiguration"}
ECS_NATIVE_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
LOAD_BALANCER_POLICY = "arn:${AWS::Partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"


def platform_hook_exports():
    """export name without the platform stack's name (AfterInstallHookArn) -> the hook package
    whose function ARN the platform template exports under it."""
    platform = yaml_parse((FLEET_HOME / "platform.yaml").read_text())
    resources = platform.get("Resources", {})
    exports = {}
    for output in platform.get("Outputs", {}).values():
        name = sub_text(output.get("Export", {}).get("Name")) or ""
        value = output.get("Value")
        function = value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None
        uri = resources.get(function, {}).get("Properties", {}).get("CodeUri")
        if name.startswith("${AWS::StackName}-") and value == {"Fn::GetAtt": [function, "Arn"]} and uri:
            exports[name.removeprefix("${AWS::StackName}-")] = Path(uri).name
    return exports


def condition_holds(name, conditions, values):
    """Evaluates the template condition name with parameters set to values; None if it depends
    on anything else."""
    def evaluate(node):
        if isinstance(node, str):
            return node
        if not isinstance(node, dict) or len(node) != 1:
            return None
        (fn, arg), = node.items()
        if fn == "Ref":
            return values.get(arg)
        if fn == "Condition":
            return condition_holds(arg, conditions, values)
        parts = [evaluate(a) for a in as_list(arg)]
        if None in parts:
            return None
        if fn == "Fn::Equals":
            return parts[0] == parts[1]
        if fn == "Fn::Not":
            return not parts[0]
        if fn == "Fn::And":
            return all(parts)
        if fn == "Fn::Or":
            return any(parts)
        return None

    return evaluate(conditions.get(name))


def present(node, conditions, values):
    """Whether a property given as node is there with parameters set to values (both sides of
    an Fn::If followed, AWS::NoValue absent); None if that cannot be decided."""
    if node is None or node == {"Ref": "AWS::NoValue"}:
        return False
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        name, when_true, when_false = node["Fn::If"]
        holds = condition_holds(name, conditions, values)
        return None if holds is None else present(when_true if holds else when_false, conditions, values)
    return True


def check_trusted_by_ecs_only(role_id, role, problems):
    trust = role["Properties"].get("AssumeRolePolicyDocument", {})
    for statement in as_list(trust.get("Statement", [])):
        principal = statement.get("Principal")
        services = as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
        if (
            statement.get("Effect") != "Allow"
            or as_list(statement.get("Action")) != ["sts:AssumeRole"]
            or set(principal) != {"Service"}
            or services != ["ecs.amazonaws.com"]
        ):
            problems.add(f"{role_id}: must be trusted by ecs.amazonaws.com only (sts:AssumeRole), found {json.dumps(statement)}")
    if not trust.get("Statement"):
        problems.add(f"{role_id}: must be trusted by ecs.amazonaws.com")


def check_ecs_native_service(sam, cfn, problems, plans_out):
    """One service's stack for ECS-native deployments: its service's strategy and lifecycle hooks
    (each hook at the stage its binary serves, invoked with a role that may invoke just them, its
    plan a parameter of this stack under the platform's prefix), and its load balancer's
    advanced configuration."""
    resources = cfn["Resources"]
    types = resources_by_type(resources)
    check_platform_stack_parameter(sam, problems)
    services = types.get("AWS::ECS::Service", [])
    if len(services) != 1:
        problems.add(f"expected one AWS::ECS::Service, found {len(services)}")
        return
    service = services[0]
    props = resources[service]["Properties"]
    if props.get("DeploymentController") != {"Type": "ECS"}:
        problems.add(f"{service}: DeploymentController must be {{Type: ECS}}: ECS runs the deployment and invokes the hooks, found {json.dumps(props.get('DeploymentController'))}")
    config = props.get("DeploymentConfiguration", {})

    # The strategy, and the configuration each strategy it can be takes.
    parameters = sam.get("Parameters", {})
    strategy = config.get("Strategy")
    name = parameter_ref(strategy, sam)
    if name:
        choices = as_list(parameters[name].get("AllowedValues", []))
    else:
        choices = [strategy]
    if not choices or not all(c in ECS_NATIVE_STRATEGIES for c in choices):
        problems.add(f"{service}: Strategy must be one of {', '.join(ECS_NATIVE_STRATEGIES)} (a parameter's AllowedValues too), found {json.dumps(strategy)} {choices}")
    conditions = cfn.get("Conditions", {})
    for choice in choices:
        values = {name: choice} if name else {}
        for wants, key in STRATEGY_CONFIGURATIONS.items():
            there = present(config.get(key), conditions, values)
            if there is None:
                problems.add(f"{service}: cannot tell whether {key} is set with Strategy {choice}: give it !If on a condition of Strategy alone")
            elif there and choice != wants:
                problems.add(f"{service}: {key} is set with Strategy {choice}; it belongs only with {wants}")
    if not isinstance(config.get("BakeTimeInMinutes"), int):
        problems.add(f"{service}: DeploymentConfiguration BakeTimeInMinutes must be set: how long blue stays up after the shift, for a late rollback")

    # The hooks, their stages, their plans and the role ECS invokes them with.
    exports = platform_hook_exports()
    plans = set(types.get("AWS::SSM::Parameter", []))
    hooks_by_role = {}
    plans_used = {}
    packages_wired = []
    hooks = as_list(config.get("LifecycleHooks", []))
    if not hooks:
        problems.add(f"{service}: DeploymentConfiguration LifecycleHooks names none of the platform's hooks")
    for index, hook in enumerate(hooks):
        where = f"{service}: LifecycleHooks[{index}]"
        target = hook.get("HookTargetArn")
        imported = shape(target) or ""
        export = re.fullmatch(r"import\(\$\{PlatformStackName\}-(\w+)\)", imported)
        package = exports.get(export[1]) if export else None
        if not package:
            problems.add(
                f"{where}: HookTargetArn must import one of the platform's hook ARNs (!ImportValue ${{PlatformStackName}}-<export>, one of {', '.join(sorted(exports))}), found {json.dumps(target)}"
            )
            continue
        where = f"{where} ({package})"
        stage = ECS_STAGES.get(package)
        stages = hook.get("LifecycleStages")
        if not stage:
            problems.add(f"{where}: {package} serves no ECS lifecycle stage; it answers FAILED wherever it is put")
        elif stages != [stage]:
            wrong = [s for s in as_list(stages or []) if s != stage]
            problems.add(
                f"{where}: LifecycleStages must be exactly [{stage}], the stage {package} serves; at {', '.join(wrong) or 'none'} it answers FAILED, found {json.dumps(stages)}"
            )
        if package in packages_wired:
            problems.add(f"{where}: {package} is named twice; one entry per hook, with its stage and plan")
        packages_wired.append(package)
        if hook.get("TargetType", "AWS_LAMBDA") != "AWS_LAMBDA":
            problems.add(f"{where}: TargetType must be AWS_LAMBDA")
        role = hook.get("RoleArn")
        role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        if role != {"Fn::GetAtt": [role_id, "Arn"]} or resources.get(role_id, {}).get("Type") != "AWS::IAM::Role":
            problems.add(f"{where}: RoleArn must be !GetAtt <a role in this stack>.Arn, found {json.dumps(role)}")
        else:
            hooks_by_role.setdefault(role_id, []).append(target)
        details = hook.get("HookDetails")
        plan = details.get("plan_parameter") if isinstance(details, dict) else None
        plan_id = plan.get("Ref") if isinstance(plan, dict) else None
        if set(details or {}) != {"plan_parameter"} or plan != {"Ref": plan_id} or plan_id not in plans:
            problems.add(
                f"{where}: HookDetails must be {{plan_parameter: !Ref <a plan parameter of this stack>}}, naming its plan, found {json.dumps(details)}"
            )
            continue
        if plan_id in plans_used:
            problems.add(f"{where}: {plan_id} is already the plan of {plans_used[plan_id]}; give each hook its own")
        plans_used[plan_id] = package
        plan_name = shape(resources[plan_id]["Properties"].get("Name"))
        if not (isinstance(plan_name, str) and plan_name.startswith(PLAN_PREFIX_IMPORT + "/") and plan_name.endswith(f"/{package}")):
            problems.add(
                f"{plan_id}: Name must be under the platform's prefix, {PLAN_PREFIX_IMPORT}/.../{package} (the hooks may read only parameters under it), found {plan_name}"
            )

    for plan_id in sorted(plans):
        if plan_id not in plans_used:
            problems.add(f"{plan_id}: no hook's HookDetails names it, so no hook reads it")
        check_plan_value(plan_id, resources[plan_id]["Properties"], problems, plans_out)

    # The invoke role: trusted by ECS, and may invoke exactly the hooks it is given for.
    for role_id, targets in sorted(hooks_by_role.items()):
        role = resources[role_id]
        check_trusted_by_ecs_only(role_id, role, problems)
        want = sorted(json.dumps(t, sort_keys=True) for t in targets)
        granted = []
        for where, actions, resources_granted, _ in allowed(role_id, role, problems):
            if actions != {"lambda:invokefunction"}:
                problems.add(f"{where}: ECS's invoke role may only lambda:InvokeFunction, found {', '.join(sorted(actions))}")
            granted.extend(json.dumps(r, sort_keys=True) for r in resources_granted)
        if sorted(set(granted)) != sorted(set(want)):
            problems.add(
                f"{role_id}: lambda:InvokeFunction on exactly the hooks ECS invokes with it ({', '.join(shape(t) or '?' for t in targets)}), found {', '.join(shape(json.loads(g)) or g for g in sorted(set(granted)))}"
            )

    # The load balancer: the rules ECS shifts, the target groups, and its role for that.
    balancers = as_list(props.get("LoadBalancers", []))
    if len(balancers) != 1:
        problems.add(f"{service}: LoadBalancers must hold one entry, whose listener rules ECS shifts, found {len(balancers)}")
        balancers = balancers[:1]
    for balancer in balancers:
        advanced = balancer.get("AdvancedConfiguration", {})
        if not balancer.get("TargetGroupArn"):
            problems.add(f"{service}: LoadBalancers TargetGroupArn must name the production target group")
        for key, why in (
            ("AlternateTargetGroupArn", "the target group green registers with"),
            ("ProductionListenerRule", "${production_url}, and the rule ECS shifts"),
            ("TestListenerRule", "${test_url}, which after-allow-test-traffic's checks use"),
            ("RoleArn", "the role ECS edits the listener rules with"),
        ):
            if not advanced.get(key):
                problems.add(f"{service}: LoadBalancers AdvancedConfiguration {key} must be set: {why}")
        role = advanced.get("RoleArn")
        role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        if role_id not in resources:
            if role:
                problems.add(f"{service}: AdvancedConfiguration RoleArn must be !GetAtt <a role in this stack>.Arn, found {json.dumps(role)}")
            continue
        if role_id in hooks_by_role:
            problems.add(f"{role_id}: the load balancer role and the hooks' invoke role must be two roles")
        check_trusted_by_ecs_only(role_id, resources[role_id], problems)
        managed = as_list(resources[role_id]["Properties"].get("ManagedPolicyArns", []))
        if [sub_text(m) for m in managed] != [LOAD_BALANCER_POLICY]:
            problems.add(f"{role_id}: ManagedPolicyArns must be [!Sub {LOAD_BALANCER_POLICY}], found {json.dumps(managed)}")
    check_hook_ingress(resources, types, problems)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=str(REPO / "template.yaml"))
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--fleet-platform", action="store_true", help="the hooks once for a fleet, plans per deployment")
    kind.add_argument("--fleet-service", action="store_true", help="one service's stack of a fleet")
    kind.add_argument("--ecs-native-service", action="store_true", help="one service's stack of a fleet, deployed by ECS")
    parser.add_argument("--plans-out")
    parser.add_argument("--grants-out")
    args = parser.parse_args()
    logging.getLogger("samtranslator").setLevel(logging.ERROR)

    sam, cfn, code_uris = translate(args.template)
    problems = Problems()
    hook_ids = {}
    if args.fleet_service:
        check_fleet_service(sam, cfn, problems, args.plans_out)
    elif args.ecs_native_service:
        check_ecs_native_service(sam, cfn, problems, args.plans_out)
        check_statement_shapes(cfn, problems)
    elif args.fleet_platform:
        hook_ids, plan_prefix = check_hooks(sam, cfn, code_uris, problems, None, None, FLEET_HOME, fleet=True)
        check_statement_shapes(cfn, problems)
        package_roles = hook_roles(cfn, hook_ids, problems)
        if plan_prefix:
            check_fleet_roles(sam, cfn, package_roles, plan_prefix, problems)
            check_plan_prefix_export(cfn, plan_prefix, problems)
        check_fleet_ecs_reads(cfn, package_roles, problems)
        check_hook_arn_exports(cfn, hook_ids, problems)
        check_fleet_network(sam, cfn, hook_ids, package_roles, problems)
    else:
        hook_ids = check_hooks(sam, cfn, code_uris, problems, Resolver(sam), args.plans_out)
        sample_id = check_sample_function(sam, cfn, hook_ids, problems)
        check_appspecs(problems)
        check_statement_shapes(cfn, problems)
        package_roles = hook_roles(cfn, hook_ids, problems)
        check_hook_roles(cfn, package_roles, sample_id, problems)
    if args.grants_out and hook_ids:
        write_grants(cfn, hook_ids, package_roles, args.grants_out)

    if problems:
        for problem in problems:
            print(f"template check: {problem}", file=sys.stderr)
        print(f"template check: {len(problems)} problem(s) in {args.template}", file=sys.stderr)
        return 1
    counted = f" ({len(hook_ids)} hooks)" if hook_ids else ""
    print(f"template check: {args.template} passed{counted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
