#!/usr/bin/env python3
"""Checks codedeploy-local against AWS's own service models, with boto3 as a second client.

botocore's `codedeploy`, `lambda`, `elbv2`, `cloudwatch`, `ssm` and `ecs` models are the reference. Every operation the emulator
serves must exist in them; every response must fit the operation's output shape; every error
must be one the operation models (or one AWS documents as common to all operations) and carry
the model's HTTP status. botocore's parser is lenient -- it drops unknown members and accepts
nulls -- so each raw response is also walked against the shapes here (`conforms`), and then
compared with what boto3 parsed from it (`agrees`): timestamps must come out as datetimes.
ELBv2 speaks awsQuery: its XML is walked against the shapes (`xml_conforms`) and read again with
botocore's `query` parser, and its error codes are the model's awsQuery codes.

Usage: check_fidelity.py ENDPOINT, with
  FIDELITY_OPERATIONS  {"codedeploy": [...], "lambda": [...], "elbv2": [...], "cloudwatch": [...],
                       "ssm": [...], "ecs": [...]}: the operations the emulator serves;
  FIDELITY_RESPONSES   [{"operation", "status", "headers", "body"}]: CodeDeploy error responses the
                       caller produced in-process, for errors no HTTP client can reach on cue.
Exits 1 and lists every mismatch; prints a table of what was checked either way.
"""

import base64
import datetime
import hashlib
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from xml.etree import ElementTree

import boto3
import botocore.session
from botocore.awsrequest import HeadersDict
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import create_parser

ENDPOINT = sys.argv[1].rstrip("/")
SOURCES = Path(__file__).resolve().parents[2] / "local" / "src"
ROLE = "arn:aws:iam::123456789012:role/codedeploy"
HOOK = "CodeDeployHook_echo"
# Errors any operation may return: AWS's common errors (API reference, "Common Errors") and the
# awsJson protocol's own, for requests that are no operation's input at all. A caller without the
# IAM grant gets AccessDeniedException from either service; Lambda answers it with 403.
GENERIC = {
    "json": {"ThrottlingException": 400, "InternalFailure": 500, "SerializationException": 400,
             "UnknownOperationException": 400, "AccessDeniedException": 400},
    "rest-json": {"AccessDeniedException": 403},
    # awsQuery's common errors (ELBv2): a bad parameter, a request that names no action, and a
    # caller without the IAM grant, which query services answer with AccessDenied and 403.
    "query": {"ValidationError": 400, "InvalidAction": 400, "MissingAction": 400, "AccessDenied": 403,
              "Throttling": 400, "InternalFailure": 500},
}
# Errors a service gives on any of its operations beyond its protocol's: SSM answers input that
# breaks the model's constraints or its naming rules with ValidationException (the PutParameter
# docs name it for a name with spaces), though the model lists it for few operations.
SERVICE_GENERIC = {"ssm": {"ValidationException": 400}}

MODELS = {name: botocore.session.get_session().get_service_model(name)
          for name in ("codedeploy", "lambda", "elbv2", "ssm", "ecs")}
failures = []
calls = Counter()
errors = defaultdict(set)
last_response = {}


def fail(message):
    if message not in failures:
        failures.append(message)
        print(f"MISMATCH {message}", flush=True)


# ---- shapes -------------------------------------------------------------------------------------

def conforms(shape, value, path):
    """Problems with `value` as the JSON serialization of `shape`."""
    if value is None:
        return [f"{path}: null (AWS leaves absent members out)"]
    kind = shape.type_name
    if kind == "structure" and shape.metadata.get("document"):
        return []  # a document (ECS's hookDetails) holds any JSON
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, the model has structure {shape.name}"]
        names = {m.serialization.get("name", n): m for n, m in shape.members.items()
                 if m.serialization.get("location") is None}
        problems = [f"{path}.{k}: not a member of {shape.name}" for k in value if k not in names]
        problems += [f"{path}.{n}: required member of {shape.name} missing" for n in shape.required_members
                     if n in names and n not in value]
        for key, item in value.items():
            if key in names:
                problems += conforms(names[key], item, f"{path}.{key}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, the model has a list"]
        return [p for i, item in enumerate(value) for p in conforms(shape.member, item, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, the model has a map"]
        return [p for k, v in value.items()
                for p in conforms(shape.key, k, f"{path} key") + conforms(shape.value, v, f"{path}[{k}]")]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    enum = getattr(shape, "enum", None)
    ok = {
        "string": isinstance(value, str) and (not enum or value in enum),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "long": isinstance(value, int) and not isinstance(value, bool),
        "double": number,
        "float": number,
        "boolean": isinstance(value, bool),
        "blob": isinstance(value, str),
        # awsJson and restJson bodies carry epoch seconds unless the shape says otherwise.
        "timestamp": isinstance(value, str) if shape.serialization.get("timestampFormat") == "iso8601" else number,
    }.get(kind, False)
    if not ok:
        return [f"{path}: {value!r:.60} is not a {kind} {shape.name}{f' of {enum}' if enum else ''}"]
    return []


def agrees(shape, raw, parsed, path):
    """Problems with what boto3 parsed (`parsed`) from the raw JSON (`raw`)."""
    kind = shape.type_name
    if kind == "structure":
        names = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()}
        problems = []
        for key, item in raw.items():
            if key in names and item is not None:
                name, member = names[key]
                if name not in parsed:
                    problems.append(f"{path}.{key}: boto3 did not parse it")
                else:
                    problems += agrees(member, item, parsed[name], f"{path}.{key}")
        return problems
    if kind == "list":
        return [p for i, (r, v) in enumerate(zip(raw, parsed)) for p in agrees(shape.member, r, v, f"{path}[{i}]")]
    if kind == "map":
        return [p for k, r in raw.items() for p in agrees(shape.value, r, parsed.get(k), f"{path}[{k}]")]
    if kind == "timestamp":
        if not isinstance(parsed, datetime.datetime):
            return [f"{path}: boto3 parsed {parsed!r} from {raw!r}, not a datetime"]
        if isinstance(raw, (int, float)) and abs(parsed.timestamp() - raw) > 0.001:
            return [f"{path}: boto3 parsed {parsed} from {raw}"]
        return []
    if kind != "blob" and parsed != raw:
        return [f"{path}: boto3 parsed {parsed!r:.60} from {raw!r:.60}"]
    return []


# ---- calls --------------------------------------------------------------------------------------

def client(service, validate=True):
    """A boto3 client on the emulator; `validate=False` sends what botocore would refuse to."""
    config = Config(retries={"total_max_attempts": 1}, parameter_validation=validate, read_timeout=120)
    made = boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1", config=config,
                        aws_access_key_id="fidelity", aws_secret_access_key="fidelity")
    made.meta.events.register("after-call", lambda http_response, **_: last_response.update(http=http_response))
    return made


def http_status(url):
    """The status a GET of url answers with, or the error that stopped it."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answered:
            return answered.status
    except (urllib.error.URLError, OSError) as error:
        return error


def call(api, operation, expect=None, **params):
    """Calls `operation` through boto3. With `expect`, the call must fail with that error code."""
    service = api.meta.service_model.service_name
    try:
        parsed = getattr(api, botocore.xform_name(operation))(**params)
    except ClientError as error:
        http, code = last_response["http"], error.response["Error"]["Code"]
        if code != expect:
            fail(f"{operation}: {code} ({error.response['Error']['Message']}), expected {expect or 'success'}")
        check_error(service, operation, http.status_code, http.headers, http.content, code)
        return None
    except BotoCoreError as error:
        fail(f"{operation}: boto3 could not complete the call: {error}")
        return None
    if expect:
        fail(f"{operation}: succeeded, expected {expect}")
    check_output(service, operation, last_response["http"], parsed)
    calls[service, operation] += 1
    return parsed


def json_body(content, what):
    """The JSON document in a body; both protocols answer with one (or nothing)."""
    try:
        return json.loads(content or b"{}")
    except ValueError:
        fail(f"{what}: the body is not JSON: {content[:120]!r}")
        return {}


def check_output(service, operation, http, parsed):
    if MODELS[service].protocol == "query":
        return check_query_output(service, operation, http, parsed)
    shape = MODELS[service].operation_model(operation).output_shape
    payload = shape.serialization.get("payload")
    if payload and shape.members[payload].type_name == "blob":
        return  # Invoke: the body is the function's own payload, checked by the scenario.
    raw = json_body(http.content, operation)
    problems = conforms(shape, raw, operation) + agrees(shape, raw, parsed, operation)
    for problem in problems:
        fail(problem)


def check_error(service, operation, status, headers, body, code):
    """The error must be modelled for the operation (or generic) and carry the model's status."""
    model = MODELS[service]
    if model.protocol == "query":
        return check_query_error(service, operation, status, body, code)
    modelled = {shape.name: shape for shape in model.operation_model(operation).error_shapes}
    raw = json_body(body, f"{operation} {code}")
    if code in modelled:
        shape = modelled[code]
        want = shape.metadata.get("error", {}).get("httpStatusCode", 400)
        if model.protocol == "json":  # members are the protocol's, not the (memberless) shape's
            extra = set(raw) - {"__type", "message"} - set(shape.members)
            problems = [f"{operation} {code}: {k} is not a member" for k in sorted(extra)]
        else:
            problems = conforms(shape, raw, f"{operation} {code} body")
        for problem in problems:
            fail(problem)
    elif code in GENERIC[model.protocol] or code in SERVICE_GENERIC.get(service, {}):
        want = {**GENERIC[model.protocol], **SERVICE_GENERIC.get(service, {})}[code]
    else:
        fail(f"{operation}: {code} is not an error the {service} model has for it")
        want = status
    if status != want:
        fail(f"{operation} {code}: HTTP {status}, the model says {want}")
    if model.protocol == "json" and raw.get("__type") != code:
        fail(f"{operation} {code}: body __type is {raw.get('__type')!r}")
    errors[service, operation].add(code)


def raw_request(method, path, body=b"", headers=None):
    """A request no SDK would send: (status, headers, body)."""
    request = urllib.request.Request(ENDPOINT + path, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_error(service, operation, expect, status, headers, body):
    """Parses a raw error response with botocore's own parser, then checks it like any other.
    `expect=None` takes any client error, as long as the model has it for the operation."""
    model = MODELS[service]
    response = {"status_code": status, "headers": HeadersDict(headers), "body": body}
    parsed = create_parser(model.protocol).parse(response, model.operation_model(operation).output_shape)
    code = parsed.get("Error", {}).get("Code")
    if code != expect and (expect or not 400 <= status < 500):
        fail(f"{operation}: HTTP {status} {code} ({body[:120]!r}), expected {expect}")
    check_error(service, operation, status, headers, body, code)


def codedeploy_raw(operation, body, target_prefix="CodeDeploy_20141006."):
    headers = {"X-Amz-Target": target_prefix + operation, "Content-Type": "application/x-amz-json-1.1"}
    return raw_request("POST", "/", body, headers)


# ---- awsQuery (ELBv2): XML responses ------------------------------------------------------------

def xml_tag(element):
    """An element's name without its namespace."""
    return element.tag.rsplit("}", 1)[-1]


def xml_root(body, what):
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        fail(f"{what}: the body is not XML ({error}): {body[:120]!r}")
        return None


def xml_conforms(shape, element, path):
    """Problems with `element` as the awsQuery XML serialization of `shape`."""
    kind = shape.type_name
    children = list(element)
    if kind == "structure":
        names = {m.serialization.get("name", n): m for n, m in shape.members.items()}
        problems = [f"{path}.{xml_tag(c)}: not a member of {shape.name}" for c in children if xml_tag(c) not in names]
        counts = Counter(xml_tag(c) for c in children)
        problems += [f"{path}.{n}: given {k} times" for n, k in counts.items() if k > 1]
        problems += [f"{path}.{n}: required member of {shape.name} missing" for n in shape.required_members
                     if shape.members[n].serialization.get("name", n) not in counts]
        for child in children:
            if xml_tag(child) in names:
                problems += xml_conforms(names[xml_tag(child)], child, f"{path}.{xml_tag(child)}")
        return problems
    if kind == "list":
        item = shape.member.serialization.get("name", "member")
        problems = [f"{path}: <{xml_tag(c)}> in a list of <{item}>" for c in children if xml_tag(c) != item]
        return problems + [p for i, c in enumerate(children) for p in xml_conforms(shape.member, c, f"{path}[{i}]")]
    if kind == "map":
        return [f"{path}: a map, which no ELBv2 output checked here has"]
    if children:
        return [f"{path}: elements inside a {kind}"]
    text = element.text or ""
    enum = getattr(shape, "enum", None)
    readers = {"integer": int, "long": int, "double": float, "float": float,
               "boolean": lambda t: {"true": True, "false": False}[t],
               "timestamp": lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))}
    try:
        readers.get(kind, str)(text)
    except (ValueError, KeyError):
        return [f"{path}: {text!r:.60} is not a {kind} {shape.name}"]
    if kind == "string" and enum and text not in enum:
        return [f"{path}: {text!r:.60} is not one of {shape.name}'s {enum}"]
    return []


def check_query_output(service, operation, http, parsed):
    """The XML envelope, then its result against the output shape, then botocore's query
    parser's reading of it against what boto3 returned."""
    model = MODELS[service]
    shape = model.operation_model(operation).output_shape
    root = xml_root(http.content, operation)
    if root is None:
        return
    namespace = model.metadata.get("xmlNamespace")
    if root.tag != f"{{{namespace}}}{operation}Response":
        fail(f"{operation}: root element {root.tag}, expected {operation}Response in {namespace}")
    wrapper = shape.serialization.get("resultWrapper")
    tags = [xml_tag(c) for c in root]
    if tags != [wrapper, "ResponseMetadata"]:
        fail(f"{operation}: the response holds {tags}, expected [{wrapper}, ResponseMetadata]")
    for child in root:
        if xml_tag(child) == wrapper:
            for problem in xml_conforms(shape, child, operation):
                fail(problem)
        elif xml_tag(child) == "ResponseMetadata" and not [r.text for r in child if xml_tag(r) == "RequestId"]:
            fail(f"{operation}: ResponseMetadata without a RequestId")
    response = {"status_code": http.status_code, "headers": http.headers, "body": http.content}
    reparsed = create_parser("query").parse(response, shape)
    reparsed.pop("ResponseMetadata", None)
    if reparsed != {k: v for k, v in parsed.items() if k != "ResponseMetadata"}:
        fail(f"{operation}: botocore's query parser read {reparsed!r:.200}, boto3 returned {parsed!r:.200}")
    if not http.headers.get("x-amzn-RequestId"):
        fail(f"{operation}: no x-amzn-RequestId header")


def check_query_error(service, operation, status, body, code):
    """`<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`, a code the model
    has for the operation (by its awsQuery code, not its shape name) or a common one, and the
    model's HTTP status."""
    model = MODELS[service]
    root = xml_root(body, f"{operation} {code}")
    if root is not None:
        error = [c for c in root if xml_tag(c) == "Error"]
        fields = {xml_tag(c): c.text for c in error[0]} if error else {}
        if xml_tag(root) != "ErrorResponse" or len(error) != 1:
            fail(f"{operation} {code}: {xml_tag(root)} with {len(error)} Error elements, expected one ErrorResponse")
        want_type = "Receiver" if status >= 500 else "Sender"
        if (fields.get("Type"), fields.get("Code")) != (want_type, code) or not fields.get("Message"):
            fail(f"{operation} {code}: Error {fields}, expected Type {want_type}, Code {code} and a Message")
        if not [c.text for c in root if xml_tag(c) == "RequestId"]:
            fail(f"{operation} {code}: no RequestId")
    modelled = {s.metadata.get("error", {}).get("code", s.name): s
                for s in model.operation_model(operation).error_shapes}
    if code in modelled:
        want = modelled[code].metadata.get("error", {}).get("httpStatusCode", 400)
    elif code in GENERIC[model.protocol]:
        want = GENERIC[model.protocol][code]
    else:
        fail(f"{operation}: {code} is not an error the {service} model has for it")
        want = status
    if status != want:
        fail(f"{operation} {code}: HTTP {status}, the model says {want}")
    errors[service, operation].add(code)


def elbv2_scenario():
    """The load balancer, target groups and listeners of the hosted ECS service, each found the
    ways a hook finds them, and every error the Describe operations answer."""
    elb, elb_loose = client("elbv2"), client("elbv2", validate=False)
    balancers = call(elb, "DescribeLoadBalancers")["LoadBalancers"]
    (balancer,) = [b for b in balancers if b["LoadBalancerName"] == "web"]
    arn = balancer["LoadBalancerArn"]
    if (balancer["DNSName"], balancer["Type"], balancer["State"]["Code"]) != ("127.0.0.1", "application", "active"):
        fail(f"DescribeLoadBalancers: {balancer}")
    if call(elb, "DescribeLoadBalancers", Names=["web"])["LoadBalancers"] != [balancer]:
        fail("DescribeLoadBalancers by name: not the load balancer listed")
    if call(elb, "DescribeLoadBalancers", LoadBalancerArns=[arn])["LoadBalancers"] != [balancer]:
        fail("DescribeLoadBalancers by ARN: not the load balancer listed")
    call(elb, "DescribeLoadBalancers", PageSize=1)
    call(elb, "DescribeLoadBalancers", "LoadBalancerNotFound", Names=["nope"])
    call(elb, "DescribeLoadBalancers", "LoadBalancerNotFound", LoadBalancerArns=[arn + "0"])
    call(elb, "DescribeLoadBalancers", "ValidationError", Names=["web"], LoadBalancerArns=[arn])
    call(elb_loose, "DescribeLoadBalancers", "ValidationError", PageSize=0)
    call(elb, "DescribeLoadBalancers", "ValidationError", Marker="not-a-marker")

    groups = call(elb, "DescribeTargetGroups", LoadBalancerArn=arn)["TargetGroups"]
    if [g["TargetGroupName"] for g in groups] != ["web-blue", "web-green"] or \
            any(g["LoadBalancerArns"] != [arn] for g in groups):
        fail(f"DescribeTargetGroups of {arn}: {groups}")
    green = groups[1]
    if call(elb, "DescribeTargetGroups", Names=["web-green"])["TargetGroups"] != [green]:
        fail("DescribeTargetGroups by name: not the group listed")
    if call(elb, "DescribeTargetGroups", TargetGroupArns=[green["TargetGroupArn"]])["TargetGroups"] != [green]:
        fail("DescribeTargetGroups by ARN: not the group listed")
    if call(elb, "DescribeTargetGroups", Names=[])["TargetGroups"] != []:  # sent as a bare `Names=`
        fail("DescribeTargetGroups with no names: groups listed")
    call(elb, "DescribeTargetGroups")
    call(elb, "DescribeTargetGroups", "TargetGroupNotFound", Names=["web-red"])
    call(elb, "DescribeTargetGroups", "TargetGroupNotFound", TargetGroupArns=[green["TargetGroupArn"] + "0"])
    call(elb, "DescribeTargetGroups", "LoadBalancerNotFound", LoadBalancerArn=arn + "0")
    call(elb, "DescribeTargetGroups", "ValidationError", Names=["web-green"], LoadBalancerArn=arn)

    listeners = call(elb, "DescribeListeners", LoadBalancerArn=arn)["Listeners"]
    for listener in listeners:
        # A hook builds the test listener's URL from these, so it must answer there.
        url = f"{listener['Protocol'].lower()}://{balancer['DNSName']}:{listener['Port']}/"
        status = http_status(url)
        if status != 200:
            fail(f"DescribeListeners: {url} answered {status}")
        forwarded = [t["TargetGroupArn"] for a in listener["DefaultActions"] for t in a["ForwardConfig"]["TargetGroups"]]
        if not forwarded or not set(forwarded) <= {g["TargetGroupArn"] for g in groups}:
            fail(f"DescribeListeners: {listener['ListenerArn']} forwards to {forwarded}")
    if len(listeners) != 2:
        fail(f"DescribeListeners of {arn}: {len(listeners)} listeners, expected production and test")
    test = listeners[-1]
    if call(elb, "DescribeListeners", ListenerArns=[test["ListenerArn"]])["Listeners"] != [test]:
        fail("DescribeListeners by ARN: not the listener listed")
    call(elb, "DescribeListeners", "ListenerNotFound", ListenerArns=[test["ListenerArn"] + "0"])
    call(elb, "DescribeListeners", "LoadBalancerNotFound", LoadBalancerArn=arn + "0")
    call(elb, "DescribeListeners", "ValidationError")
    call(elb, "DescribeListeners", "ValidationError", LoadBalancerArn=arn, ListenerArns=[test["ListenerArn"]])

    control("faults", {"denied": ["DescribeListeners"]})
    call(elb, "DescribeListeners", "AccessDenied", LoadBalancerArn=arn)
    control("faults", {})
    control("faults", {"throttled": ["DescribeTargetGroups"]})
    call(elb, "DescribeTargetGroups", "Throttling", LoadBalancerArn=arn)
    control("faults", {})

    # Requests no SDK sends: an action ELBv2 has but the emulator does not serve, and no action.
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    raw_error("elbv2", "DescribeListeners", "InvalidAction",
              *raw_request("POST", "/", b"Action=DescribeTags&Version=2015-12-01", form))
    raw_error("elbv2", "DescribeListeners", "MissingAction", *raw_request("POST", "/", b"Version=2015-12-01", form))


# ---- SSM Parameter Store (awsJson1_1) -----------------------------------------------------------

def ssm_scenario():
    """Parameters put, overwritten and read the ways a hook reads its configuration, and every
    error Parameter Store answers them with."""
    ssm, loose = client("ssm"), client("ssm", validate=False)
    plan = "/fidelity/web/plan"
    call(ssm, "PutParameter", Name=plan, Value='{"checks": []}', Type="String", Description="the web gate")
    call(ssm, "PutParameter", "ParameterAlreadyExists", Name=plan, Value="{}", Type="String")
    put = call(ssm, "PutParameter", Name=plan, Value='{"checks": [1]}', Overwrite=True)
    if put and (put["Version"], put["Tier"]) != (2, "Standard"):
        fail(f"PutParameter with Overwrite: {put}, expected version 2 in Standard")
    call(ssm, "PutParameter", Name="/fidelity/web/secret", Value="s3cr3t", Type="SecureString", KeyId="alias/fidelity")
    call(ssm, "PutParameter", Name="/fidelity/web/hosts", Value="a,b", Type="StringList", Tier="Intelligent-Tiering")
    big = call(ssm, "PutParameter", Name="/fidelity/web/big", Value="x" * 5000, Type="String",
               Tier="Intelligent-Tiering")
    if big and big["Tier"] != "Advanced":
        fail(f"PutParameter of 5000 bytes with Intelligent-Tiering: {big}")
    call(ssm, "PutParameter", Name="/fidelity/web/deep/one", Value="1", Type="String", DataType="text")
    call(ssm, "PutParameter", Name="fidelity-top", Value="top", Type="String")

    got = call(ssm, "GetParameter", Name=plan)
    if got:
        parameter = got["Parameter"]
        expected = {"Name": plan, "Type": "String", "Value": '{"checks": [1]}', "Version": 2, "DataType": "text",
                    "ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/fidelity/web/plan"}
        if {k: parameter.get(k) for k in expected} != expected:
            fail(f"GetParameter: {parameter}, expected {expected}")
    first = call(ssm, "GetParameter", Name=plan + ":1")
    if first and (first["Parameter"]["Value"], first["Parameter"].get("Selector")) != ('{"checks": []}', ":1"):
        fail(f"GetParameter {plan}:1: {first['Parameter']}")
    hidden = call(ssm, "GetParameter", Name="/fidelity/web/secret")
    if hidden:
        value = hidden["Parameter"]["Value"]
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            fail(f"GetParameter of a SecureString without decryption: {value!r} is not base64 ciphertext")
        if "s3cr3t" in value:
            fail("GetParameter of a SecureString without decryption returned the value")
    shown = call(ssm, "GetParameter", Name="/fidelity/web/secret", WithDecryption=True)
    if shown and shown["Parameter"]["Value"] != "s3cr3t":
        fail(f"GetParameter WithDecryption: {shown['Parameter']['Value']!r}")
    call(ssm, "GetParameter", Name="arn:aws:ssm:us-east-1:123456789012:parameter/fidelity/web/plan")
    call(ssm, "GetParameter", "ParameterNotFound", Name="/fidelity/none")
    call(ssm, "GetParameter", "ParameterVersionNotFound", Name=plan + ":9")
    call(loose, "GetParameter", "ValidationException")

    both = call(ssm, "GetParameters", Names=["/fidelity/web/secret", plan, "/fidelity/none", plan + ":9"],
                WithDecryption=True)
    if both:
        names = [p["Name"] for p in both["Parameters"]]
        if names != sorted([plan, "/fidelity/web/secret"]) or both["InvalidParameters"] != ["/fidelity/none",
                                                                                           plan + ":9"]:
            fail(f"GetParameters: {names}, invalid {both['InvalidParameters']}")
    call(loose, "GetParameters", "ValidationException", Names=[f"/fidelity/{n}" for n in range(11)])

    pages, listed, token = 0, [], None
    while True:
        page = call(ssm, "GetParametersByPath", Path="/fidelity", Recursive=True, MaxResults=2,
                    **({"NextToken": token} if token else {}))
        if not page:
            break
        pages += 1
        listed += [p["Name"] for p in page["Parameters"]]
        token = page.get("NextToken")
        if not token:
            break
    expected = sorted(["/fidelity/web/plan", "/fidelity/web/secret", "/fidelity/web/hosts", "/fidelity/web/big",
                       "/fidelity/web/deep/one"])
    if listed != expected or pages != 3:
        fail(f"GetParametersByPath /fidelity recursive, 2 a page: {listed} in {pages} pages, expected {expected}")
    children = call(ssm, "GetParametersByPath", Path="/fidelity/web/", WithDecryption=True)
    if children and len(children["Parameters"]) != 4:
        fail(f"GetParametersByPath /fidelity/web/: {[p['Name'] for p in children['Parameters']]}, expected 4")
    call(ssm, "GetParametersByPath", "InvalidNextToken", Path="/fidelity", NextToken="forged")
    call(ssm, "GetParametersByPath", "ValidationException", Path="fidelity")
    call(loose, "GetParametersByPath", "ValidationException", Path="/fidelity", MaxResults=11)

    bad_puts = [
        ("ValidationException", dict(Name="/has space", Value="v", Type="String")),
        ("ValidationException", dict(Name="not/qualified", Value="v", Type="String")),
        ("ValidationException", dict(Name="ssm-reserved", Value="v", Type="String")),
        ("AccessDeniedException", dict(Name="/aws/mine", Value="v", Type="String")),
        ("HierarchyLevelLimitExceededException",
         dict(Name="/" + "/".join(f"l{n}" for n in range(16)), Value="v", Type="String")),
        ("ValidationException", dict(Name="/fidelity/large", Value="x" * 4097, Type="String")),
        ("ValidationException", dict(Name="/fidelity/large", Value="x" * 8193, Type="String", Tier="Advanced")),
        ("ValidationException", dict(Name="/fidelity/untyped", Value="v")),
        ("ValidationException", dict(Name="/fidelity/keyed", Value="v", Type="String", KeyId="alias/x")),
        ("ValidationException", dict(Name="/fidelity/web/big", Value="small", Overwrite=True, Tier="Standard")),
        ("ValidationException", dict(Name="/fidelity/tagged", Value="v", Type="String",
                                     Tags=[{"Key": "team", "Value": "web"}])),
    ]
    for code, params in bad_puts:
        call(ssm, "PutParameter", code, **params)
    call(loose, "PutParameter", "ValidationException", Name="/fidelity/typo", Value="v", Type="Secret")

    call(ssm, "DeleteParameter", Name="fidelity-top")
    call(ssm, "DeleteParameter", "ParameterNotFound", Name="fidelity-top")

    control("faults", {"denied": ["GetParameter"]})
    call(ssm, "GetParameter", "AccessDeniedException", Name=plan)
    control("faults", {})
    control("faults", {"throttled": ["GetParametersByPath"]})
    call(ssm, "GetParametersByPath", "ThrottlingException", Path="/fidelity")
    control("faults", {})

    # Requests no SDK sends: an operation SSM has but the emulator does not serve, and no JSON.
    call(ssm, "DescribeParameters", "UnknownOperationException")
    headers = {"X-Amz-Target": "AmazonSSM.GetParameter", "Content-Type": "application/x-amz-json-1.1"}
    raw_error("ssm", "GetParameter", "SerializationException", *raw_request("POST", "/", b"{not json", headers))


# ---- ECS services that ECS deploys itself (awsJson1_1) ------------------------------------------

ECS_HOOK = "arn:aws:lambda:us-east-1:123456789012:function:ecs-hook"


def ecs_scenario():
    """A service behind the load balancer `native` (its target groups and listener rules found
    through ELBv2, as a template would name them), created, updated and described, and every
    error ECS answers these requests with."""
    ecs, loose, elb = client("ecs"), client("ecs", validate=False), client("elbv2")
    (balancer,) = call(elb, "DescribeLoadBalancers", Names=["native"])["LoadBalancers"]
    groups = call(elb, "DescribeTargetGroups", LoadBalancerArn=balancer["LoadBalancerArn"])["TargetGroups"]
    if [g["TargetGroupName"] for g in groups] != ["native-1", "native-2"]:
        fail(f"DescribeTargetGroups of native: {[g['TargetGroupName'] for g in groups]}")
    production, test = call(elb, "DescribeListeners", LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    rules = {}
    for role, listener in [("production", production), ("test", test)]:
        listed = call(elb, "DescribeRules", ListenerArn=listener["ListenerArn"])["Rules"]
        (rule,) = [r for r in listed if not r["IsDefault"]]
        rules[role] = rule["RuleArn"]
        if not rule["RuleArn"].startswith("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/native/"):
            fail(f"DescribeRules: {rule['RuleArn']} is not a listener rule ARN of native")
    if call(elb, "DescribeRules", RuleArns=[rules["test"]])["Rules"][0]["RuleArn"] != rules["test"]:
        fail("DescribeRules by ARN: not the rule listed")
    call(elb, "DescribeRules", "RuleNotFound", RuleArns=[rules["test"] + "0"])
    call(elb, "DescribeRules", "ListenerNotFound", ListenerArn=test["ListenerArn"] + "0")
    call(elb, "DescribeRules", "ValidationError")
    call(elb, "DescribeRules", "ValidationError", ListenerArn=test["ListenerArn"], RuleArns=[rules["test"]])

    advanced = {"alternateTargetGroupArn": groups[1]["TargetGroupArn"], "productionListenerRule": rules["production"],
                "testListenerRule": rules["test"], "roleArn": ROLE}
    balancers = [{"targetGroupArn": groups[0]["TargetGroupArn"], "containerName": "web", "containerPort": 8080,
                  "advancedConfiguration": advanced}]
    hooks = [{"hookTargetArn": ECS_HOOK, "roleArn": ROLE, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT",
                                                                             "PRODUCTION_TRAFFIC_SHIFT"],
              "hookDetails": {"plan": "smoke", "attempts": 2}}]
    configuration = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1},
                     "bakeTimeInMinutes": 1, "lifecycleHooks": hooks,
                     "alarms": {"alarmNames": ["native-5xx"], "rollback": True, "enable": True}}
    service = {"cluster": "fidelity", "serviceName": "native", "taskDefinition": "web:1", "desiredCount": 1,
               "loadBalancers": balancers, "deploymentConfiguration": configuration}
    created = call(ecs, "CreateService", **service)
    if created:
        got = created["service"]
        expected = {"serviceName": "native", "status": "ACTIVE", "desiredCount": 1,
                    "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/fidelity/native",
                    "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/fidelity",
                    "taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"}
        if {k: got.get(k) for k in expected} != expected or got["loadBalancers"] != balancers:
            fail(f"CreateService: {got}")
        if got["deploymentConfiguration"]["lifecycleHooks"][0]["hookDetails"] != hooks[0]["hookDetails"]:
            fail(f"CreateService: hookDetails came back as {got['deploymentConfiguration']['lifecycleHooks']}")
    for listener in (production, test):
        url = f"http://{balancer['DNSName']}:{listener['Port']}/"
        if http_status(url) != 200:
            fail(f"CreateService: the service does not answer on {url}")
    forwarded = call(elb, "DescribeListeners", ListenerArns=[production["ListenerArn"]])["Listeners"][0]
    if forwarded["DefaultActions"][0].get("TargetGroupArn") != groups[0]["TargetGroupArn"]:
        fail(f"DescribeListeners after CreateService: {forwarded['DefaultActions']}")

    def with_config(**changes):
        return dict(service, serviceName="other", deploymentConfiguration=dict(configuration, **changes))

    def with_advanced(**changes):
        return dict(service, serviceName="other",
                    loadBalancers=[dict(balancers[0], advancedConfiguration=dict(advanced, **changes))])

    stage_hook = dict(hooks[0], lifecycleStages=["SCALE_UP"])
    bad_services = [
        ("InvalidParameterException", ecs, service),  # not idempotent: it exists
        ("InvalidParameterException", loose, with_config(strategy="PURPLE")),
        ("InvalidParameterException", ecs, with_config(strategy="ROLLING")),
        ("InvalidParameterException", ecs, with_config(linearConfiguration={"stepPercent": 10.0})),
        ("InvalidParameterException", ecs, dict(service, serviceName="other", deploymentConfiguration={
            "strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}})),
        ("InvalidParameterException", ecs, with_config(canaryConfiguration={"canaryPercent": 100.5})),
        ("InvalidParameterException", ecs, with_config(bakeTimeInMinutes=1441)),
        ("InvalidParameterException", loose, with_config(lifecycleHooks=[stage_hook])),
        ("InvalidParameterException", loose, with_config(lifecycleHooks=[dict(hooks[0], hookDetails=[1, 2])])),
        ("InvalidParameterException", ecs, with_config(lifecycleHooks=[dict(hooks[0], hookTargetArn="ecs-hook")])),
        ("InvalidParameterException", ecs, with_config(lifecycleHooks=[dict(hooks[0], roleArn="ecs")])),
        ("InvalidParameterException", ecs, with_config(lifecycleHooks=[dict(hooks[0], lifecycleStages=[])])),
        ("InvalidParameterException", ecs, with_config(lifecycleHooks=[dict(hooks[0], targetType="PAUSE")])),
        ("InvalidParameterException", ecs, dict(service, serviceName="other",
                                                loadBalancers=[{k: v for k, v in balancers[0].items()
                                                                if k != "advancedConfiguration"}])),
        ("InvalidParameterException", ecs, with_advanced(alternateTargetGroupArn=groups[0]["TargetGroupArn"])),
        ("InvalidParameterException", ecs, with_advanced(productionListenerRule=rules["production"] + "0")),
        ("InvalidParameterException", ecs, with_advanced(testListenerRule=rules["production"])),
        ("InvalidParameterException", ecs, dict(service, serviceName="other", loadBalancers=[
            dict(balancers[0], targetGroupArn=groups[0]["TargetGroupArn"] + "0")])),
        ("InvalidParameterException", ecs, dict(service, serviceName="other")),  # its load balancer is taken
        ("InvalidParameterException", ecs, dict(service, serviceName="other", deploymentController={"type": "CODE_DEPLOY"})),
        ("InvalidParameterException", ecs, dict(service, serviceName="no spaces!")),
        ("ClientException", ecs, dict(service, serviceName="other", taskDefinition="web:9")),
    ]
    for code, api, params in bad_services:
        call(api, "CreateService", code, **params)

    described = call(ecs, "DescribeServices", cluster="fidelity", services=["native", "nope"])
    if described:
        if [s["serviceName"] for s in described["services"]] != ["native"]:
            fail(f"DescribeServices: {[s['serviceName'] for s in described['services']]}")
        if described["failures"] != [{"arn": "arn:aws:ecs:us-east-1:123456789012:service/fidelity/nope",
                                      "reason": "MISSING"}]:
            fail(f"DescribeServices failures: {described['failures']}")
        first_deployment = described["services"][0]["currentServiceDeployment"]
        (source_revision,) = [r["arn"] for r in described["services"][0]["currentServiceRevisions"]]
    call(ecs, "DescribeServices", services=["arn:aws:ecs:us-east-1:123456789012:service/fidelity/native"])
    call(ecs, "DescribeServices", "InvalidParameterException", cluster="fidelity", services=[f"s{n}" for n in range(11)])

    call(ecs, "UpdateService", "ServiceNotFoundException", cluster="fidelity", service="nope", taskDefinition="web:2")
    call(ecs, "UpdateService", "ClientException", cluster="fidelity", service="native", taskDefinition="web:9")
    call(ecs, "UpdateService", "InvalidParameterException", cluster="fidelity", service="native",
         deploymentConfiguration=dict(configuration, strategy="ROLLING"))
    updated = call(ecs, "UpdateService", cluster="fidelity", service="native", taskDefinition="web:2")
    call(ecs, "UpdateService", "ClientException", cluster="fidelity", service="native", taskDefinition="web:1")
    listed = call(ecs, "ListServiceDeployments", cluster="fidelity", service="native")["serviceDeployments"]
    if len(listed) != 2 or listed[1]["serviceDeploymentArn"] != first_deployment:
        fail(f"ListServiceDeployments: {listed}, expected the update's deployment then the creation's")
    deployment_arn = listed[0]["serviceDeploymentArn"]
    prefix = "arn:aws:ecs:us-east-1:123456789012:service-deployment/fidelity/native/"
    if not deployment_arn.startswith(prefix):
        fail(f"ListServiceDeployments: {deployment_arn} is not a service deployment ARN of fidelity/native")
    page = call(ecs, "ListServiceDeployments", cluster="fidelity", service="native", maxResults=1)
    if page and (len(page["serviceDeployments"]) != 1 or "nextToken" not in page):
        fail(f"ListServiceDeployments maxResults=1: {page}")
    if page:
        call(ecs, "ListServiceDeployments", cluster="fidelity", service="native", nextToken=page["nextToken"])
    call(ecs, "ListServiceDeployments", cluster="fidelity", service="native", status=["SUCCESSFUL"],
         createdAt={"after": datetime.datetime(2020, 1, 1)})
    call(ecs, "ListServiceDeployments", "ServiceNotFoundException", cluster="fidelity", service="nope")
    call(ecs, "ListServiceDeployments", "InvalidParameterException", cluster="fidelity", service="native",
         nextToken="forged")

    missing = prefix + "nope"
    found = call(ecs, "DescribeServiceDeployments", serviceDeploymentArns=[deployment_arn, first_deployment, missing])
    if found:
        if [d["serviceDeploymentArn"] for d in found["serviceDeployments"]] != [deployment_arn, first_deployment]:
            fail(f"DescribeServiceDeployments: {found['serviceDeployments']}")
        if found["failures"] != [{"arn": missing, "reason": "MISSING"}]:
            fail(f"DescribeServiceDeployments failures: {found['failures']}")
        deployment = found["serviceDeployments"][0]
        if [r["arn"] for r in deployment["sourceServiceRevisions"]] != [source_revision]:
            fail(f"DescribeServiceDeployments: sources {deployment['sourceServiceRevisions']}")
        target_revision = deployment["targetServiceRevision"]["arn"]
    call(ecs, "DescribeServiceDeployments", "InvalidParameterException", serviceDeploymentArns=["d-123"])
    call(ecs, "DescribeServiceDeployments", "InvalidParameterException", serviceDeploymentArns=[])

    revisions = call(ecs, "DescribeServiceRevisions", serviceRevisionArns=[source_revision, target_revision,
                                                                        source_revision + "0"])
    if revisions:
        resolved = [r["resolvedConfiguration"]["loadBalancers"] for r in revisions["serviceRevisions"]]
        expected = [[{"targetGroupArn": g["TargetGroupArn"], "productionListenerRule": rules["production"]}]
                    for g in groups]
        if resolved != expected:
            fail(f"DescribeServiceRevisions: resolvedConfiguration {resolved}, expected {expected}")
        if [r["taskDefinition"].rsplit("/", 1)[-1] for r in revisions["serviceRevisions"]] != ["web:1", "web:2"]:
            fail(f"DescribeServiceRevisions: {[r['taskDefinition'] for r in revisions['serviceRevisions']]}")
        if revisions["failures"] != [{"arn": source_revision + "0", "reason": "MISSING"}]:
            fail(f"DescribeServiceRevisions failures: {revisions['failures']}")
    call(ecs, "DescribeServiceRevisions", "InvalidParameterException", serviceRevisionArns=[deployment_arn])
    ecs_native_deployment(ecs, deployment_arn, target_revision)

    control("faults", {"denied": ["DescribeServiceDeployments"]})
    call(ecs, "DescribeServiceDeployments", "AccessDeniedException", serviceDeploymentArns=[deployment_arn])
    control("faults", {})
    control("faults", {"throttled": ["DescribeServices"]})
    call(ecs, "DescribeServices", "ThrottlingException", services=["native"])
    control("faults", {})
    call(ecs, "ListClusters", "UnknownOperationException")
    headers = {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.DescribeServices",
               "Content-Type": "application/x-amz-json-1.1"}
    raw_error("ecs", "DescribeServices", "SerializationException", *raw_request("POST", "/", b"{not json", headers))


def ecs_native_deployment(ecs, deployment_arn, target_revision):
    """The update's deployment, as DescribeServiceDeployments shows it while it runs and once it
    ends; then one whose hook fails, as it shows its rollback."""
    running = call(ecs, "DescribeServiceDeployments", serviceDeploymentArns=[deployment_arn])
    if running and running["serviceDeployments"][0]["status"] not in ("PENDING", "IN_PROGRESS"):
        fail(f"DescribeServiceDeployments just after UpdateService: {running['serviceDeployments'][0]['status']}")
    done = ecs_deployment_end(ecs, deployment_arn)
    if done["status"] != "SUCCESSFUL" or done["targetServiceRevision"]["requestedProductionTrafficWeight"] != 100.0:
        fail(f"DescribeServiceDeployments of the update: {done}")
    if done.get("alarms", {}).get("status") != "MONITORING_COMPLETE":
        fail(f"DescribeServiceDeployments alarms: {done.get('alarms')}")
    if [h["status"] for h in done["lifecycleHookDetails"]] != ["SUCCEEDED"]:
        fail(f"DescribeServiceDeployments lifecycleHookDetails: {done['lifecycleHookDetails']}")
    record = control("service-deployments/" + deployment_arn.rsplit("/", 1)[-1])
    stages = [e["stage"] for e in record["record"] if e["kind"] == "hook_invocation"]
    if stages != ["POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]:
        fail(f"/_local/service-deployments: hook invocations at {stages}")
    (service,) = call(ecs, "DescribeServices", cluster="fidelity", services=["native"])["services"]
    if service["currentServiceRevisions"][0]["arn"] != target_revision:
        fail(f"DescribeServices after the deployment: {service['currentServiceRevisions']}")

    failing = [{"hookTargetArn": ECS_HOOK + "-failing", "roleArn": ROLE, "lifecycleStages": ["POST_SCALE_UP"]}]
    call(ecs, "UpdateService", cluster="fidelity", service="native", forceNewDeployment=True,
         deploymentConfiguration={"strategy": "BLUE_GREEN", "lifecycleHooks": failing})
    latest = call(ecs, "ListServiceDeployments", cluster="fidelity", service="native", maxResults=1)
    rolled = ecs_deployment_end(ecs, latest["serviceDeployments"][0]["serviceDeploymentArn"])
    if rolled["status"] != "ROLLBACK_SUCCESSFUL" or "POST_SCALE_UP" not in rolled.get("rollback", {}).get("reason", ""):
        fail(f"DescribeServiceDeployments of a failed hook: {rolled}")
    if rolled.get("rollback", {}).get("serviceRevisionArn") != target_revision:
        fail(f"DescribeServiceDeployments rollback: {rolled.get('rollback')}, expected back to {target_revision}")
    call(ecs, "ListServiceDeployments", cluster="fidelity", service="native", status=["ROLLBACK_SUCCESSFUL"])


def ecs_deployment_end(ecs, arn, limit=90):
    until = time.monotonic() + limit
    while time.monotonic() < until:
        (deployment,) = call(ecs, "DescribeServiceDeployments", serviceDeploymentArns=[arn])["serviceDeployments"]
        if deployment["status"] in ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED"):
            return deployment
        time.sleep(0.2)
    raise SystemExit(f"{arn}: did not end within {limit} s: {deployment}")


# ---- the emulator's control API -----------------------------------------------------------------

def control(path, document=None):
    body = None if document is None else json.dumps(document).encode()
    status, _, content = raw_request("GET" if body is None else "POST", "/_local/" + path, body,
                                     {"Content-Type": "application/json"})
    assert status < 300, f"/_local/{path}: HTTP {status} {content!r}"
    return json.loads(content) if content else None


def wait_for(deployment_id, ready, what, limit=60):
    until = time.monotonic() + limit
    while time.monotonic() < until:
        record = control(f"deployments/{deployment_id}")
        found = ready(record)
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"{deployment_id}: no {what} within {limit} s: {json.dumps(record)[:2000]}")


def execution_of(deployment_id, event):
    """The hook execution id of `event`, once it is in progress."""
    return wait_for(deployment_id, lambda r: next((e["execution_id"] for e in r["events"] if e["name"] == event
                                                   and e["status"] == "InProgress" and e["execution_id"]), None),
                    f"{event} in progress")


def ended(deployment_id):
    return wait_for(deployment_id, lambda r: r["status"] in ("Succeeded", "Failed", "Stopped") and r, "end")


# ---- the scenario -------------------------------------------------------------------------------

def appspec(resource, hooks):
    content = json.dumps({"version": 0.0, "Resources": [resource], "Hooks": [{e: HOOK} for e in hooks]})
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}


def lambda_revision(current, target, hooks=("BeforeAllowTraffic", "AfterAllowTraffic")):
    properties = {"Name": "app", "Alias": "live", "CurrentVersion": current, "TargetVersion": target}
    return appspec({"app": {"Type": "AWS::Lambda::Function", "Properties": properties}}, hooks)


ECS_REVISION = appspec({"web": {"Type": "AWS::ECS::Service", "Properties": {
    "TaskDefinition": "web:2", "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}},
    ["AfterInstall"])


def scenario():
    cd, cd_loose, lam = client("codedeploy"), client("codedeploy", validate=False), client("lambda")
    app, group = {"applicationName": "fidelity-lambda"}, {"applicationName": "fidelity-lambda",
                                                         "deploymentGroupName": "live"}
    ecs_group = {"applicationName": "fidelity-ecs", "deploymentGroupName": "web"}

    # Applications and deployment groups.
    call(cd, "CreateApplication", computePlatform="Lambda", **app)
    call(cd, "CreateApplication", applicationName="fidelity-ecs", computePlatform="ECS")
    call(cd, "CreateApplication", "ApplicationAlreadyExistsException", computePlatform="Lambda", **app)
    call(cd, "CreateApplication", "InvalidComputePlatformException", applicationName="fidelity-ec2",
         computePlatform="Server")
    call(cd, "CreateApplication", "InvalidApplicationNameException", applicationName="no spaces!",
         computePlatform="Lambda")
    call(cd_loose, "CreateApplication", "ApplicationNameRequiredException", computePlatform="Lambda")
    rollback = {"enabled": True, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"]}
    call(cd, "CreateDeploymentGroup", serviceRoleArn=ROLE, autoRollbackConfiguration=rollback,
         deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce",
         deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
         tags=[{"Key": "team", "Value": "greenlight"}], **group)
    call(cd, "CreateDeploymentGroup", serviceRoleArn=ROLE, deploymentConfigName="CodeDeployDefault.ECSAllAtOnce",
         ecsServices=[{"serviceName": "web", "clusterName": "fidelity"}], **ecs_group)
    bad_groups = [
        ("DeploymentGroupAlreadyExistsException", cd, dict(serviceRoleArn=ROLE, **group)),
        ("RoleRequiredException", cd_loose, dict(group, deploymentGroupName="other")),
        ("InvalidRoleException", cd, dict(group, deploymentGroupName="other", serviceRoleArn="codedeploy")),
        ("ApplicationDoesNotExistException", cd, dict(serviceRoleArn=ROLE, applicationName="nope",
                                                      deploymentGroupName="other")),
        ("DeploymentConfigDoesNotExistException", cd, dict(group, deploymentGroupName="other", serviceRoleArn=ROLE,
                                                           deploymentConfigName="CodeDeployDefault.Nope")),
        ("InvalidDeploymentConfigNameException", cd, dict(group, deploymentGroupName="other", serviceRoleArn=ROLE,
                                                          deploymentConfigName="CodeDeployDefault.ECSAllAtOnce")),
        ("InvalidECSServiceException", cd, dict(ecs_group, deploymentGroupName="other", serviceRoleArn=ROLE,
                                                ecsServices=[{"serviceName": "nope", "clusterName": "fidelity"}])),
        ("InvalidECSServiceException", cd, dict(ecs_group, deploymentGroupName="other", serviceRoleArn=ROLE)),
        ("InvalidDeploymentGroupNameException", cd, dict(group, deploymentGroupName="no spaces!",
                                                         serviceRoleArn=ROLE)),
        ("DeploymentGroupNameRequiredException", cd_loose, dict(app, serviceRoleArn=ROLE)),
        ("InvalidTargetGroupPairException", cd, dict(ecs_group, deploymentGroupName="other", serviceRoleArn=ROLE,
                                                     ecsServices=[{"serviceName": "web", "clusterName": "fidelity"}],
                                                     loadBalancerInfo={"targetGroupPairInfoList": [
                                                         {"targetGroups": [{"name": "web-red"}, {"name": "web-blue"}]}]})),
        ("InvalidLoadBalancerInfoException", cd, dict(ecs_group, deploymentGroupName="other", serviceRoleArn=ROLE,
                                                      ecsServices=[{"serviceName": "web", "clusterName": "fidelity"}],
                                                      loadBalancerInfo={"elbInfoList": [{"name": "classic"}]})),
    ]
    for code, api, params in bad_groups:
        call(api, "CreateDeploymentGroup", code, **params)
    call(cd, "GetDeploymentGroup", **group)
    ecs_info = call(cd, "GetDeploymentGroup", **ecs_group)
    if ecs_info:
        ecs_group_info = ecs_info["deploymentGroupInfo"]
        if ecs_group_info.get("ecsServices") != [{"serviceName": "web", "clusterName": "fidelity"}]:
            fail(f"GetDeploymentGroup (ECS): ecsServices {ecs_group_info.get('ecsServices')}")
        check_ecs_load_balancer(ecs_group_info.get("loadBalancerInfo", {}))
    call(cd, "GetDeploymentGroup", "ApplicationDoesNotExistException", applicationName="nope",
         deploymentGroupName="live")
    call(cd, "GetDeploymentGroup", "DeploymentGroupDoesNotExistException", **dict(group, deploymentGroupName="nope"))
    call(cd_loose, "GetDeploymentGroup", "DeploymentGroupNameRequiredException", **app)

    # A Lambda deployment, held at each hook event until this script reports for it.
    lambda_id = call(cd, "CreateDeployment", revision=lambda_revision("1", "2"), description="fidelity",
                     **group)["deploymentId"]
    before = execution_of(lambda_id, "BeforeAllowTraffic")
    ecs_id = call(cd, "CreateDeployment", revision=ECS_REVISION, **ecs_group)["deploymentId"]
    ecs_execution = execution_of(ecs_id, "AfterInstall")
    bad_deployments = [
        ("DeploymentLimitExceededException", dict(group, revision=lambda_revision("1", "2"))),
        ("ApplicationDoesNotExistException", dict(group, applicationName="nope", revision=lambda_revision("1", "2"))),
        ("DeploymentGroupDoesNotExistException", dict(group, deploymentGroupName="nope",
                                                      revision=lambda_revision("1", "2"))),
        ("DeploymentGroupNameRequiredException", dict(app, revision=lambda_revision("1", "2"))),
        ("RevisionRequiredException", dict(group)),
        ("InvalidRevisionException", dict(group, revision={"revisionType": "S3", "s3Location": {
            "bucket": "b", "key": "k", "bundleType": "YAML"}})),
        ("InvalidRevisionException", dict(group, revision={"revisionType": "AppSpecContent",
                                                           "appSpecContent": {"content": "Resources: 3"}})),
        ("InvalidRevisionException", dict(group, revision=ECS_REVISION)),
        ("DescriptionTooLongException", dict(group, revision=lambda_revision("1", "2"), description="x" * 513)),
        ("DeploymentConfigDoesNotExistException", dict(group, revision=lambda_revision("1", "2"),
                                                       deploymentConfigName="CodeDeployDefault.Nope")),
        ("InvalidDeploymentConfigNameException", dict(group, revision=lambda_revision("1", "2"),
                                                      deploymentConfigName="CodeDeployDefault.ECSAllAtOnce")),
        ("InvalidDeploymentGroupNameException", dict(group, deploymentGroupName="no spaces!")),
        ("InvalidUpdateOutdatedInstancesOnlyValueException", dict(group, revision=lambda_revision("1", "2"),
                                                                  updateOutdatedInstancesOnly=True)),
        ("InvalidIgnoreApplicationStopFailuresValueException", dict(group, revision=lambda_revision("1", "2"),
                                                                    ignoreApplicationStopFailures=True)),
    ]
    for code, params in bad_deployments:
        call(cd, "CreateDeployment", code, **params)

    # The AppSpec behind each deployment, which GetDeployment leaves out.
    for application, revision, group_name in [("fidelity-lambda", lambda_revision("1", "2"), "live"),
                                              ("fidelity-ecs", ECS_REVISION, "web")]:
        content = revision["appSpecContent"]["content"]
        digest = hashlib.sha256(content.encode()).hexdigest()
        for asked in [revision, {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": digest}}]:
            got = call(cd, "GetApplicationRevision", applicationName=application, revision=asked)
            if got and (got["revision"]["appSpecContent"] != {"content": content, "sha256": digest}
                        or got["revisionInfo"].get("deploymentGroups") != [group_name]):
                fail(f"GetApplicationRevision of {application}: {got['revision']}, {got['revisionInfo']}")
    bad_revisions = [
        ("ApplicationDoesNotExistException", cd, dict(applicationName="nope", revision=ECS_REVISION)),
        ("InvalidApplicationNameException", cd, dict(applicationName="no spaces!", revision=ECS_REVISION)),
        ("ApplicationNameRequiredException", cd_loose, dict(revision=ECS_REVISION)),
        ("RevisionRequiredException", cd_loose, dict(applicationName="fidelity-ecs")),
        ("RevisionDoesNotExistException", cd, dict(applicationName="fidelity-lambda", revision=ECS_REVISION)),
        ("RevisionDoesNotExistException", cd, dict(applicationName="fidelity-ecs", revision={
            "revisionType": "S3", "s3Location": {"bucket": "b", "key": "k", "bundleType": "YAML"}})),
        ("InvalidRevisionException", cd, dict(applicationName="fidelity-ecs", revision={
            "revisionType": "AppSpecContent", "appSpecContent": {}})),
        ("InvalidRevisionException", cd, dict(applicationName="fidelity-ecs", revision={
            "revisionType": "AppSpecContent", "appSpecContent": {"content": "{}", "sha256": "0" * 64}})),
    ]
    for code, api, params in bad_revisions:
        call(api, "GetApplicationRevision", code, **params)

    # Reads while the hook event is in progress.
    deployment = {"deploymentId": lambda_id}
    info = call(cd, "GetDeployment", **deployment)["deploymentInfo"]
    if not isinstance(info.get("createTime"), datetime.datetime):
        fail(f"GetDeployment: createTime parsed as {info.get('createTime')!r}")
    sent = lambda_revision("1", "2")["appSpecContent"]["content"].encode()
    if info["revision"]["appSpecContent"].get("sha256") != hashlib.sha256(sent).hexdigest():
        fail(f"GetDeployment: revision.appSpecContent is {info['revision']['appSpecContent']}, without the "
             "content's SHA-256")
    (target,) = call(cd, "ListDeploymentTargets", **deployment)["targetIds"]
    call(cd, "ListDeploymentTargets", "InvalidNextTokenException", nextToken="page-2", **deployment)
    for filters, expected in [({"TargetStatus": ["InProgress", "Pending"]}, [target]),
                              ({"TargetStatus": ["Succeeded"]}, []), ({"ServerInstanceLabel": ["Blue"]}, [])]:
        listed = (call(cd, "ListDeploymentTargets", targetFilters=filters, **deployment) or {}).get("targetIds")
        if listed != expected:
            fail(f"ListDeploymentTargets with targetFilters {filters}: {listed}, expected {expected}")
    call(cd, "ListDeploymentTargets", "InvalidTargetFilterNameException", targetFilters={"Colour": ["Blue"]},
         **deployment)
    call(cd, "GetDeploymentTarget", targetId=target, **deployment)
    call(cd, "GetDeploymentTarget", "DeploymentTargetDoesNotExistException", targetId="nope:live", **deployment)
    call(cd, "GetDeploymentTarget", "DeploymentTargetIdRequiredException", targetId="", **deployment)
    call(cd, "BatchGetDeploymentTargets", targetIds=[target], **deployment)
    call(cd, "BatchGetDeploymentTargets", "DeploymentTargetListSizeExceededException", targetIds=[target, target],
         **deployment)
    call(cd, "BatchGetDeploymentTargets", "DeploymentTargetIdRequiredException", targetIds=[], **deployment)
    call(cd, "BatchGetDeploymentTargets", "DeploymentTargetDoesNotExistException", targetIds=["nope"], **deployment)
    call(cd_loose, "BatchGetDeploymentTargets", "InvalidDeploymentTargetIdException", targetIds=[7], **deployment)
    call(cd, "GetDeploymentGroup", **group)  # lastAttemptedDeployment, still in progress
    for operation, extra in [("GetDeployment", {}), ("ListDeploymentTargets", {}),
                             ("GetDeploymentTarget", {"targetId": target}),
                             ("BatchGetDeploymentTargets", {"targetIds": [target]}), ("StopDeployment", {}),
                             ("PutLifecycleEventHookExecutionStatus", {"status": "Succeeded"})]:
        call(cd_loose, operation, "DeploymentIdRequiredException", **extra)
        call(cd, operation, "InvalidDeploymentIdException", deploymentId="bogus", **extra)
        call(cd, operation, "DeploymentDoesNotExistException", deploymentId="d-AAAAAAAAA", **extra)

    # Reports: the checks CodeDeploy makes, then the accepted report and its repeat.
    report = dict(deployment, lifecycleEventHookExecutionId=before)
    call(cd, "PutLifecycleEventHookExecutionStatus", "InvalidLifecycleEventHookExecutionStatusException",
         status="Pending", **report)
    call(cd, "PutLifecycleEventHookExecutionStatus", "InvalidLifecycleEventHookExecutionIdException",
         status="Succeeded", **dict(report, lifecycleEventHookExecutionId="not-an-execution"))
    call(cd, "PutLifecycleEventHookExecutionStatus", "InvalidLifecycleEventHookExecutionIdException",
         status="Succeeded", **dict(report, lifecycleEventHookExecutionId=ecs_execution))
    control("faults", {"report_failures": ["throttle", "server_error"]})
    call(cd, "PutLifecycleEventHookExecutionStatus", "ThrottlingException", status="Succeeded", **report)
    call(cd, "PutLifecycleEventHookExecutionStatus", "InternalFailure", status="Succeeded", **report)
    answer = call(cd, "PutLifecycleEventHookExecutionStatus", status="Succeeded", **report)
    if answer and answer.get("lifecycleEventHookExecutionId") != before:
        fail(f"PutLifecycleEventHookExecutionStatus answered {answer}")
    call(cd, "PutLifecycleEventHookExecutionStatus", "LifecycleEventAlreadyCompletedException", status="Succeeded",
         **report)
    after = execution_of(lambda_id, "AfterAllowTraffic")
    call(cd, "PutLifecycleEventHookExecutionStatus", status="Succeeded", lifecycleEventHookExecutionId=after,
         **deployment)
    if ended(lambda_id)["status"] != "Succeeded":
        fail(f"{lambda_id} did not succeed: {control(f'deployments/{lambda_id}')}")
    call(cd, "GetDeployment", **deployment)
    call(cd, "GetDeploymentTarget", targetId=target, **deployment)
    call(cd, "GetDeploymentGroup", **group)  # lastSuccessfulDeployment
    call(cd, "StopDeployment", "DeploymentAlreadyCompletedException", **deployment)
    # Checked after the limit on one deployment at a time, so only once the group is free again.
    call(cd, "CreateDeployment", "InvalidRevisionException", revision=lambda_revision("1", "2"), **group)

    # The ECS deployment: task sets once Install has run.
    (ecs_target,) = call(cd, "ListDeploymentTargets", deploymentId=ecs_id)["targetIds"]
    sets = call(cd, "GetDeploymentTarget", deploymentId=ecs_id, targetId=ecs_target)
    labels = sorted(s["taskSetLabel"] for s in sets["deploymentTarget"]["ecsTarget"]["taskSetsInfo"]) if sets else []
    if labels != ["Blue", "Green"]:
        fail(f"GetDeploymentTarget (ECS): task sets {labels}, expected Blue and Green")
    call(cd, "PutLifecycleEventHookExecutionStatus", deploymentId=ecs_id, lifecycleEventHookExecutionId=ecs_execution,
         status="Succeeded")
    if ended(ecs_id)["status"] != "Succeeded":
        fail(f"{ecs_id} did not succeed: {control(f'deployments/{ecs_id}')}")
    call(cd, "BatchGetDeploymentTargets", deploymentId=ecs_id, targetIds=[ecs_target])

    # A stopped deployment: errorInformation and rollbackInfo.
    stopped_id = call(cd, "CreateDeployment", revision=lambda_revision("2", "1"), **group)["deploymentId"]
    held = execution_of(stopped_id, "BeforeAllowTraffic")
    call(cd, "StopDeployment", deploymentId=stopped_id, autoRollbackEnabled=True)
    ended(stopped_id)
    info = call(cd, "GetDeployment", deploymentId=stopped_id)["deploymentInfo"]
    if info["status"] != "Stopped" or "errorInformation" not in info:
        fail(f"GetDeployment of a stopped deployment: {info}")
    call(cd, "GetDeploymentTarget", deploymentId=stopped_id, targetId=target)
    call(cd, "PutLifecycleEventHookExecutionStatus", "LifecycleEventAlreadyCompletedException", status="Failed",
         deploymentId=stopped_id, lifecycleEventHookExecutionId=held)

    # Operations the emulator does not serve, and requests that are not JSON or not CodeDeploy.
    call(cd, "ListApplications", "UnknownOperationException")
    raw_error("codedeploy", "GetDeployment", "SerializationException", *codedeploy_raw("GetDeployment", b"{not json"))
    raw_error("codedeploy", "GetDeployment", "UnknownOperationException",
              *codedeploy_raw("GetDeployment", b"{}", target_prefix="Lambda_20150331."))

    # Lambda: Invoke by version and alias, each invocation type, a function error.
    alias = call(lam, "GetAlias", FunctionName="app", Name="live")
    result = call(lam, "Invoke", FunctionName="app", Qualifier="1", LogType="Tail", Payload=b'{"fidelity": 1}')
    if result:
        payload = json.loads(result["Payload"].read())
        log = base64.b64decode(result.get("LogResult", "")).decode()
        if (result["StatusCode"], result.get("ExecutedVersion"), payload.get("event")) != (200, "1", {"fidelity": 1}):
            fail(f"Invoke app:1: {result['StatusCode']} {result.get('ExecutedVersion')} {payload.get('event')}")
        if "took" not in log:
            fail(f"Invoke LogType Tail: log tail {log!r}")
    result = call(lam, "Invoke", FunctionName="app:live", Payload=b"{}")
    if result and alias and result.get("ExecutedVersion") != alias["FunctionVersion"]:
        fail(f"Invoke app:live ran {result.get('ExecutedVersion')}, the alias is on {alias['FunctionVersion']}")
    for invocation_type, status in [("Event", 202), ("DryRun", 204)]:
        result = call(lam, "Invoke", FunctionName="app", Qualifier="live", InvocationType=invocation_type)
        if result and result["StatusCode"] != status:
            fail(f"Invoke {invocation_type}: StatusCode {result['StatusCode']}, expected {status}")
    result = call(lam, "Invoke", FunctionName="broken", Payload=b"{}")
    if result and result.get("FunctionError") != "Unhandled":
        fail(f"Invoke of a failing function: FunctionError {result.get('FunctionError')!r}")
    large = b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    call(lam, "Invoke", FunctionName="app", Qualifier="1", Payload=large)  # under Lambda's 6 MB limit
    call(lam, "Invoke", "RequestTooLargeException", FunctionName="app", Payload=b"x" * (6 * 1024 * 1024 + 1))
    call(lam, "Invoke", "InvalidRequestContentException", FunctionName="app", Qualifier="1", Payload=b"not json")
    call(lam, "Invoke", "ResourceNotFoundException", FunctionName="nope")
    call(lam, "Invoke", "ResourceNotFoundException", FunctionName="app", Qualifier="9")
    call(lam, "Invoke", "InvalidParameterValueException", FunctionName="app", InvocationType="Sometime")
    call(lam, "Invoke", "InvalidParameterValueException", FunctionName="app:1", Qualifier="2")
    call(lam, "Invoke", "InvalidParameterValueException", FunctionName="no spaces!")
    # A role without the grants (an injected fault).
    control("faults", {"denied": ["Invoke", "GetDeployment"]})
    call(lam, "Invoke", "AccessDeniedException", FunctionName="app", Qualifier="1", Payload=b"{}")
    call(cd, "GetDeployment", "AccessDeniedException", deploymentId="d-AAAAAAAAA")
    control("faults", {})
    # An account over its request rate (an injected fault): each service's throttling error.
    control("faults", {"throttled": ["Invoke", "GetDeployment"]})
    call(lam, "Invoke", "TooManyRequestsException", FunctionName="app", Qualifier="1", Payload=b"{}")
    call(cd, "GetDeployment", "ThrottlingException", deploymentId="d-AAAAAAAAA")
    control("faults", {})

    # Lambda aliases: weights, then back.
    if alias:
        weights = {"AdditionalVersionWeights": {"1": 0.25}}
        moved = call(lam, "UpdateAlias", FunctionName="app", Name="live", FunctionVersion="2", RoutingConfig=weights)
        if moved and moved.get("RoutingConfig") != weights:
            fail(f"UpdateAlias: RoutingConfig {moved.get('RoutingConfig')}")
        call(lam, "UpdateAlias", FunctionName="app", Name="live", FunctionVersion=alias["FunctionVersion"],
             RoutingConfig={"AdditionalVersionWeights": {}})
    call(lam, "GetAlias", "ResourceNotFoundException", FunctionName="app", Name="nope")
    call(lam, "GetAlias", "ResourceNotFoundException", FunctionName="nope", Name="live")
    call(lam, "GetAlias", "InvalidParameterValueException", FunctionName="no spaces!", Name="live")
    call(lam, "UpdateAlias", "ResourceNotFoundException", FunctionName="app", Name="live", FunctionVersion="9")
    call(lam, "UpdateAlias", "InvalidParameterValueException", FunctionName="app", Name="live",
         RoutingConfig={"AdditionalVersionWeights": {"1": 1.5}})
    # The model names no error for a body that is not JSON (InvalidRequestContentException is
    # Invoke's); any client error it has for UpdateAlias will do.
    status, headers, body = raw_request("PUT", "/2015-03-31/functions/app/aliases/live", b"{not json",
                                        {"Content-Type": "application/json"})
    raw_error("lambda", "UpdateAlias", None, status, headers, body)


def check_ecs_load_balancer(info):
    """An ECS group's loadBalancerInfo names the target groups and listeners ELBv2 serves for its
    service, and the test listener's URL built from them answers."""
    pairs = info.get("targetGroupPairInfoList", [])
    if len(pairs) != 1:
        fail(f"GetDeploymentGroup (ECS): targetGroupPairInfoList {pairs}, expected one pair")
        return
    (pair,) = pairs
    names = [g["name"] for g in pair.get("targetGroups", [])]
    if names != ["web-blue", "web-green"]:
        fail(f"GetDeploymentGroup (ECS): target groups {names}")
    elb = client("elbv2")
    found = call(elb, "DescribeTargetGroups", Names=names)
    if found and [g["TargetGroupName"] for g in found["TargetGroups"]] != names:
        fail(f"DescribeTargetGroups of the group's target groups: {found['TargetGroups']}")
    for route in ("prodTrafficRoute", "testTrafficRoute"):
        arns = pair.get(route, {}).get("listenerArns", [])
        listeners = call(elb, "DescribeListeners", ListenerArns=arns) if len(arns) == 1 else None
        if not listeners:
            fail(f"GetDeploymentGroup (ECS): {route} {arns} names no listener ELBv2 serves")
            continue
        (listener,) = listeners["Listeners"]
        balancer = call(elb, "DescribeLoadBalancers", LoadBalancerArns=[listener["LoadBalancerArn"]])
        url = f"{listener['Protocol'].lower()}://{balancer['LoadBalancers'][0]['DNSName']}:{listener['Port']}/"
        status = http_status(url)
        if status != 200:
            fail(f"GetDeploymentGroup (ECS): {route}'s {url} answered {status}")


def in_process_responses():
    for response in json.loads(os.environ.get("FIDELITY_RESPONSES", "[]")):
        body = response["body"].encode()
        code = json.loads(body).get("__type")
        raw_error("codedeploy", response["operation"], code, response["status"], response["headers"], body)
        if code != "DeploymentNotStartedException":
            fail(f"{response['operation']} of a deployment not yet started: {code}")


# ---- CloudWatch (rpcv2Cbor through boto3, and raw awsJson1_0) -----------------------------------
# Self-contained: CloudWatch's responses are CBOR for boto3, and its errors carry awsQuery codes in
# x-amzn-query-error, so it has its own call and check functions.

MODELS["cloudwatch"] = botocore.session.get_session().get_service_model("cloudwatch")
CLOUDWATCH_TARGET = "GraniteServiceVersion20100801."
# Errors any CloudWatch operation may return (CloudWatch's "Common Errors"), by __type: the
# awsQueryError code it goes with and its HTTP status.
CLOUDWATCH_GENERIC = {"AccessDeniedException": ("AccessDenied", 400), "ValidationError": ("ValidationError", 400),
                      "ThrottlingException": ("Throttling", 400), "InternalFailure": (None, 500),
                      "SerializationException": (None, 400), "UnknownOperationException": (None, 400)}


def cloudwatch_cbor(content):
    """The CBOR body as botocore decodes it (tag 1 becomes a datetime)."""
    from botocore.parsers import RpcV2CBORParser
    return RpcV2CBORParser()._initial_body_parse(content) if content else {}


def cloudwatch_tagged(shape, value, path, problems):
    """`value` with its datetimes as epoch seconds; a timestamp member without tag 1, or tag 1 on
    anything else, is a problem."""
    kind = shape.type_name
    if kind == "timestamp":
        if not isinstance(value, datetime.datetime):
            problems.append(f"{path}: {value!r:.40} is not CBOR tag 1 (a timestamp)")
            return value
        return value.timestamp()
    if isinstance(value, datetime.datetime):
        problems.append(f"{path}: tag 1 on a {kind}")
        return value.timestamp()
    if kind == "structure" and isinstance(value, dict):
        names = {n: m for n, m in shape.members.items()}
        return {k: cloudwatch_tagged(names[k], v, f"{path}.{k}", problems) if k in names else v
                for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [cloudwatch_tagged(shape.member, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def cloudwatch_check_error(operation, status, headers, raw, code):
    """__type is modelled (or common), x-amzn-query-error names the model's awsQuery code, and
    the status is the model's."""
    model = MODELS["cloudwatch"]
    modelled = {shape.name: shape for shape in model.operation_model(operation).error_shapes}
    kind = raw.get("__type")
    query_header = HeadersDict(headers).get("x-amzn-query-error")
    if kind in modelled:
        error = modelled[kind].metadata.get("error", {})
        query_code, want = error.get("code"), error.get("httpStatusCode", 400)
    elif kind in CLOUDWATCH_GENERIC:
        query_code, want = CLOUDWATCH_GENERIC[kind]
    else:
        fail(f"cloudwatch {operation}: {kind} is not an error the model has for it")
        return
    fault = "Receiver" if want >= 500 else "Sender"
    if query_code and query_header != f"{query_code};{fault}":
        fail(f"cloudwatch {operation} {kind}: x-amzn-query-error {query_header!r}, expected {query_code};{fault}")
    if query_code and code != query_code:
        fail(f"cloudwatch {operation} {kind}: boto3 read code {code}, the model's awsQuery code is {query_code}")
    if status != want:
        fail(f"cloudwatch {operation} {kind}: HTTP {status}, the model says {want}")
    if not isinstance(raw.get("message"), str):
        fail(f"cloudwatch {operation} {kind}: no message")
    errors["cloudwatch", operation] |= {kind, code}


def cloudwatch_output(operation, raw, parsed, where):
    shape = MODELS["cloudwatch"].operation_model(operation).output_shape
    if shape is not None:
        for problem in conforms(shape, raw, operation) + agrees(shape, raw, parsed, operation):
            fail(f"({where}) {problem}")


def cloudwatch_call(api, operation, expect=None, **params):
    """Calls `operation` through boto3, which picks awsJson1_0 from CloudWatch's protocol list
    (botocore ranks json above smithy-rpc-v2-cbor). With `expect` (an awsQuery code), it must fail so."""
    try:
        parsed = getattr(api, botocore.xform_name(operation))(**params)
    except ClientError as error:
        http, code = last_response["http"], error.response["Error"]["Code"]
        if code != expect:
            fail(f"cloudwatch {operation}: {code} ({error.response['Error']['Message']}), expected {expect or 'success'}")
        cloudwatch_check_error(operation, http.status_code, http.headers, json_body(http.content, operation), code)
        return None
    except BotoCoreError as error:
        fail(f"cloudwatch {operation}: boto3 could not complete the call: {error}")
        return None
    if expect:
        fail(f"cloudwatch {operation}: succeeded, expected {expect}")
    cloudwatch_output(operation, json_body(last_response["http"].content, operation), parsed, "boto3")
    calls["cloudwatch", operation] += 1
    return parsed


def cloudwatch_cbor_call(operation, expect=None, **params):
    """Calls `operation` over rpcv2Cbor with botocore's own CBOR serializer and parser (what boto3
    would send if it ranked CBOR first), checking the raw CBOR too: tag 1 exactly on timestamps."""
    from botocore.serialize import create_serializer
    model = MODELS["cloudwatch"].operation_model(operation)
    request = create_serializer("smithy-rpc-v2-cbor", include_validation=False).serialize_to_request(params, model)
    status, headers, body = raw_request(request["method"], request["url_path"], request["body"],
                                        dict(request["headers"]))
    headers = HeadersDict(headers)
    if headers.get("smithy-protocol") != "rpc-v2-cbor":
        fail(f"cloudwatch {operation} (rpcv2Cbor): no smithy-protocol: rpc-v2-cbor header")
    response = {"status_code": status, "headers": headers, "body": body}
    parsed = create_parser("smithy-rpc-v2-cbor").parse(response, model.output_shape)
    if status >= 300:
        code = parsed.get("Error", {}).get("Code")
        if code != expect:
            fail(f"cloudwatch {operation} (rpcv2Cbor): HTTP {status} {code}, expected {expect or 'success'}")
        cloudwatch_check_error(operation, status, headers, cloudwatch_cbor(body), code)
        return None
    if expect:
        fail(f"cloudwatch {operation} (rpcv2Cbor): succeeded, expected {expect}")
    if headers.get("content-type") != "application/cbor":
        fail(f"cloudwatch {operation} (rpcv2Cbor): content type {headers.get('content-type')}")
    if model.output_shape is not None:
        problems = []
        raw = cloudwatch_tagged(model.output_shape, cloudwatch_cbor(body), operation, problems)
        for problem in problems:
            fail(problem)
        cloudwatch_output(operation, raw, parsed, "rpcv2Cbor")
    calls["cloudwatch", operation] += 1
    return parsed


def cloudwatch_raw(operation, document, expect=None):
    """The same operation over awsJson1_0: the body is checked against the output shape and parsed
    with botocore's json parser; an error must parse to the awsQuery code `expect`."""
    headers = {"X-Amz-Target": CLOUDWATCH_TARGET + operation, "Content-Type": "application/x-amz-json-1.0"}
    status, response_headers, body = raw_request("POST", "/", json.dumps(document).encode(), headers)
    model = MODELS["cloudwatch"]
    op = model.operation_model(operation)
    response = {"status_code": status, "headers": HeadersDict(response_headers), "body": body}
    parsed = create_parser("json").parse(response, op.output_shape)
    if status >= 300:
        code = parsed.get("Error", {}).get("Code")
        if code != expect:
            fail(f"cloudwatch {operation} (awsJson1_0): HTTP {status} {code} ({body[:120]!r}), expected {expect}")
        cloudwatch_check_error(operation, status, response_headers, json_body(body, operation), code)
        return None
    if expect:
        fail(f"cloudwatch {operation} (awsJson1_0): succeeded, expected {expect}")
    if HeadersDict(response_headers).get("content-type") != "application/x-amz-json-1.0":
        fail(f"cloudwatch {operation} (awsJson1_0): content type {response_headers.get('content-type')}")
    raw = json_body(body, operation)
    if op.output_shape is not None:
        for problem in conforms(op.output_shape, raw, operation) + agrees(op.output_shape, raw, parsed, operation):
            fail(f"(awsJson1_0) {problem}")
    return raw


def cloudwatch_scenario():
    cw, loose = client("cloudwatch"), client("cloudwatch", validate=False)
    cloudwatch_rehearsal("Fidelity-json", lambda operation, expect=None, **params:
                         cloudwatch_call(loose if expect == "MissingParameter" else cw, operation, expect, **params))
    cloudwatch_rehearsal("Fidelity-cbor", cloudwatch_cbor_call)
    cloudwatch_json_requests()


def cloudwatch_rehearsal(namespace, send):
    """Metrics, math, alarms and errors through `send(operation, expect=None, **params)`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    minute = now.replace(second=0, microsecond=0) - datetime.timedelta(minutes=3)
    dims = [{"Name": "Service", "Value": "fidelity"}]
    send("PutMetricData", Namespace=namespace, MetricData=[
        {"MetricName": "Requests", "Dimensions": dims, "Timestamp": minute, "Values": [1.0, 2.0], "Counts": [3.0, 1.0]},
        {"MetricName": "Errors", "Dimensions": dims, "Timestamp": minute, "Value": 1.0, "Unit": "Count"},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": minute,
         "StatisticValues": {"SampleCount": 2.0, "Sum": 3.0, "Minimum": 1.0, "Maximum": 2.0}}])
    metric = lambda name: {"Namespace": namespace, "MetricName": name, "Dimensions": dims}
    queries = [
        {"Id": "requests", "MetricStat": {"Metric": metric("Requests"), "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "errors", "MetricStat": {"Metric": metric("Errors"), "Period": 60, "Stat": "Sum"}},
        {"Id": "p50", "MetricStat": {"Metric": metric("Requests"), "Period": 60, "Stat": "p50"}},
        {"Id": "ratio", "Expression": "100 * errors / requests", "Label": "error rate"},
    ]
    window = {"StartTime": minute - datetime.timedelta(minutes=5), "EndTime": now + datetime.timedelta(minutes=1)}
    got = send("GetMetricData", MetricDataQueries=queries, **window)
    if got:
        values = {r["Id"]: r["Values"] for r in got["MetricDataResults"]}
        if values != {"errors": [1.0], "p50": [1.0], "ratio": [20.0]}:
            fail(f"cloudwatch GetMetricData: values {values}")
        if got["MetricDataResults"][0]["Timestamps"] != [minute]:
            fail(f"cloudwatch GetMetricData: timestamps {got['MetricDataResults'][0]['Timestamps']}, expected [{minute}]")
    send("PutMetricAlarm", AlarmName=namespace + "-errors", Namespace=namespace, MetricName="Errors",
                    Dimensions=dims, Statistic="Sum", Period=60, EvaluationPeriods=2, DatapointsToAlarm=1,
                    Threshold=0.5, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
                    AlarmDescription="errors of the fidelity service")
    send("PutMetricAlarm", AlarmName=namespace + "-ratio", Metrics=[queries[0], dict(queries[1], ReturnData=False),
        {"Id": "ratio", "Expression": "100 * errors / requests", "ReturnData": True}],
        EvaluationPeriods=1, Threshold=10.0, ComparisonOperator="GreaterThanOrEqualToThreshold")
    send("PutMetricAlarm", AlarmName=namespace + "-p99", Namespace=namespace, MetricName="Latency",
                    ExtendedStatistic="p99", Period=300, EvaluationPeriods=1, Threshold=1.0,
                    ComparisonOperator="LessThanThreshold")
    send("SetAlarmState", AlarmName=namespace + "-errors", StateValue="ALARM", StateReason="fidelity",
                    StateReasonData='{"checked": true}')
    send("DescribeAlarms", AlarmNamePrefix=namespace)
    send("DescribeAlarms", AlarmNames=[namespace + "-errors"], StateValue="ALARM", MaxRecords=1)
    send("DescribeAlarmHistory", AlarmName=namespace + "-errors")
    send("DescribeAlarmHistory", HistoryItemType="ConfigurationUpdate", ScanBy="TimestampAscending",
                    StartDate=now - datetime.timedelta(minutes=5), EndDate=now + datetime.timedelta(minutes=5))

    # Errors, each as the model has it.
    send("PutMetricData", "InvalidParameterCombination", Namespace=namespace,
                    MetricData=[{"MetricName": "M", "Value": 1.0, "Values": [1.0]}])
    send("PutMetricData", "InvalidParameterValue", Namespace="AWS/" + namespace,
                    MetricData=[{"MetricName": "M", "Value": 1.0}])
    send("PutMetricData", "MissingParameter", Namespace=namespace, MetricData=[{"Value": 1.0}])
    send("GetMetricData", "InvalidNextToken", MetricDataQueries=queries[1:2], NextToken="forged", **window)
    send("GetMetricData", "ValidationError", MetricDataQueries=[dict(queries[1], Id="Upper")], **window)
    send("DescribeAlarms", "InvalidNextToken", NextToken="forged")
    send("DescribeAlarmHistory", "InvalidNextToken", NextToken="forged")
    send("SetAlarmState", "ResourceNotFound", AlarmName="nope", StateValue="OK", StateReason="x")
    send("SetAlarmState", "InvalidFormat", AlarmName=namespace + "-errors", StateValue="OK",
                    StateReason="x", StateReasonData="not json")
    control("faults", {"denied": ["DescribeAlarms"]})
    send("DescribeAlarms", "AccessDenied")
    control("faults", {})
    control("faults", {"throttled": ["GetMetricData"]})
    send("GetMetricData", "Throttling", MetricDataQueries=queries[1:2], **window)
    control("faults", {})



def cloudwatch_json_requests():
    """Hand-written awsJson1_0 requests, each answer checked and parsed with botocore's json parser."""
    now = datetime.datetime.now(datetime.timezone.utc)
    minute = now.replace(second=0, microsecond=0) - datetime.timedelta(minutes=3)
    dims = [{"Name": "Service", "Value": "fidelity"}]
    metric = lambda name: {"Namespace": "Fidelity", "MetricName": name, "Dimensions": dims}
    queries = [
        {"Id": "requests", "MetricStat": {"Metric": metric("Requests"), "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "ratio", "Expression": "100 * requests / requests"},
    ]
    # The same handlers over awsJson1_0.
    stamp = minute.timestamp()
    cloudwatch_raw("PutMetricData", {"Namespace": "Fidelity", "MetricData": [
        {"MetricName": "Requests", "Dimensions": dims, "Timestamp": stamp, "Value": 1.0}]})
    raw = cloudwatch_raw("GetMetricData", {"MetricDataQueries": queries, "StartTime": stamp - 300,
                                           "EndTime": now.timestamp() + 60, "ScanBy": "TimestampAscending"})
    if raw and not all(isinstance(t, (int, float)) for r in raw["MetricDataResults"] for t in r["Timestamps"]):
        fail("cloudwatch GetMetricData (awsJson1_0): timestamps are not epoch seconds")
    cloudwatch_raw("PutMetricAlarm", {"AlarmName": "fidelity-json", "Namespace": "Fidelity", "MetricName": "Requests",
                                      "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "Threshold": 1,
                                      "ComparisonOperator": "GreaterThanThreshold"})
    cloudwatch_raw("SetAlarmState", {"AlarmName": "fidelity-json", "StateValue": "ALARM", "StateReason": "raw"})
    cloudwatch_raw("DescribeAlarms", {"AlarmNames": ["fidelity-json"]})
    cloudwatch_raw("DescribeAlarmHistory", {"AlarmName": "fidelity-json"})
    cloudwatch_raw("SetAlarmState", {"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"}, "ResourceNotFound")
    cloudwatch_raw("PutMetricData", {"Namespace": "Fidelity", "MetricData": [{"MetricName": "M"}]},
                   "InvalidParameterCombination")
    cloudwatch_raw("GetMetricData", {"MetricDataQueries": queries, "StartTime": stamp, "EndTime": stamp - 1},
                   "ValidationError")


def main():
    served = json.loads(os.environ["FIDELITY_OPERATIONS"])
    for service, operations in served.items():
        for operation in operations:
            if operation not in MODELS[service].operation_names:
                fail(f"{service} {operation}: served, but not an operation of the model")
    try:
        scenario()
    except Exception:  # a call the rest depends on failed; the mismatches above say why
        fail("the scenario stopped early:\n" + traceback.format_exc())
    try:
        elbv2_scenario()
    except Exception:
        fail("the ELBv2 scenario stopped early:\n" + traceback.format_exc())
    try:
        cloudwatch_scenario()
    except Exception:
        fail("the CloudWatch scenario stopped early:\n" + traceback.format_exc())
    try:
        ssm_scenario()
    except Exception:
        fail("the SSM scenario stopped early:\n" + traceback.format_exc())
    try:
        ecs_scenario()
    except Exception:
        fail("the ECS scenario stopped early:\n" + traceback.format_exc())
    in_process_responses()

    # Coverage: every served operation answered, every error code in the sources seen.
    for service, operations in served.items():
        for operation in operations:
            if not calls[service, operation]:
                fail(f"{service} {operation}: served but never answered successfully here")
    emitted = set()
    for source in sorted(SOURCES.rglob("*.rs")):
        # The runtime host's Runtime API is what functions call, not an AWS API of clients.
        if "runtime" not in source.relative_to(SOURCES).parts:
            emitted |= set(re.findall(r'"([A-Z][A-Za-z]+(?:Exception|Failure))"', source.read_text()))
    unseen = emitted - set().union(*errors.values())
    for code in sorted(unseen):
        fail(f"{code}: the emulator can return it, but no check here triggered it")

    width = max(len(f"{s} {o}") for s, o in set(calls) | set(errors))
    print(f"\n{'operation':<{width}}  ok calls  errors checked")
    for service, operation in sorted(set(calls) | set(errors)):
        codes = ", ".join(sorted(c.removesuffix("Exception") for c in errors[service, operation])) or "-"
        print(f"{service + ' ' + operation:<{width}}  {calls[service, operation]:>8}  {codes}")
    total = len(set().union(*errors.values()))
    print(f"\n{sum(calls.values())} successful calls, {total} distinct error codes, {len(failures)} mismatches")
    if failures:
        print("\nMismatches with the AWS models:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
