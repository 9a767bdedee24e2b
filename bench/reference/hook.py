"""The reference hook: a CodeDeploy lifecycle hook as it is usually written in Python.

One GET of TARGET_URL with urllib3; a 200 means Succeeded, anything else, or no answer, Failed.
The verdict goes to CodeDeploy with boto3. Both clients are built at import, during the Lambda
init phase, as AWS recommends. CA_BUNDLE, if set, names extra CAs to trust (a test CA).

Run it the way Lambda's Python runtime does, through the runtime interface client:

    python -m awslambdaric hook.handler
"""

import os

import boto3
import urllib3

TARGET_URL = os.environ["TARGET_URL"]

http = urllib3.PoolManager(
    ca_certs=os.environ.get("CA_BUNDLE") or None,
    retries=False,
    timeout=urllib3.Timeout(connect=5.0, read=10.0),
)
codedeploy = boto3.client("codedeploy")


def handler(event, context):
    try:
        status = "Succeeded" if http.request("GET", TARGET_URL).status == 200 else "Failed"
    except urllib3.exceptions.HTTPError as err:
        print(f"GET {TARGET_URL} failed: {err}")
        status = "Failed"
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return {"status": status}
