"""`dynamowave redrive`: move dead-lettered fan-out jobs back to the fan-out queue.

Where the queues are, one of:
  --local [URL]              a running `dynamowave serve` (default http://127.0.0.1:8765): its
                             /dev/info names the embedded moto endpoint and the queue URLs
  --stack NAME               a deployed stack: its FanoutQueueUrl and DeadLetterQueueUrl outputs
  --queue-url U --dlq-url D  explicit URLs (with --endpoint-url for any SQS-compatible endpoint)
Exit status: 0 when every job handled was moved, 1 when some could not be re-sent (they stay in
the DLQ), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from dynamowave.cli import CommandError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DEFAULT_LOCAL_URL: Final = "http://127.0.0.1:8765"
# The local runtime's moto accepts any credentials; these keep a developer's real ones out of it.
LOCAL_KEY: Final = "testing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2] if __doc__ else None
    target = parser.add_argument_group("where the queues are")
    target.add_argument(
        "--local",
        nargs="?",
        const=DEFAULT_LOCAL_URL,
        metavar="URL",
        help=f"a running local runtime (default {DEFAULT_LOCAL_URL})",
    )
    target.add_argument("--stack", metavar="NAME", help="a deployed CloudFormation stack's outputs")
    target.add_argument("--queue-url", help="the fan-out queue (overrides the discovered one)")
    target.add_argument("--dlq-url", help="the dead-letter queue (overrides the discovered one)")
    target.add_argument(
        "--parked",
        action="store_true",
        help="move from the parked queue (dead letters that outlived auto-redrive) instead of the DLQ",
    )
    target.add_argument("--endpoint-url", help="SQS endpoint (e.g. a moto or LocalStack server)")
    target.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument("--max", type=int, metavar="N", help="move at most N jobs (default: all)")
    parser.add_argument(
        "--wait-seconds", type=int, default=1, help="long-poll time per receive; 0 for short polls"
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="use SQS StartMessageMoveTask (AWS only; bodies move unchanged, attempt counts kept)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


@dataclass(frozen=True)
class Target:
    queue_url: str
    dlq_url: str
    endpoint_url: str | None
    region: str | None
    local: bool


def run(args: argparse.Namespace) -> int:
    from dynamowave.redrive import Redriver, native_move

    if args.max is not None and args.max < 1:
        raise CommandError("--max must be at least 1")
    if not 0 <= args.wait_seconds <= 20:
        raise CommandError("--wait-seconds must be between 0 and 20")
    target = resolve_target(args)
    sqs = sqs_client(target)
    if args.native:
        if target.local:
            raise CommandError("--native needs AWS: moto has no StartMessageMoveTask")
        handle = native_move(sqs, dlq_url=target.dlq_url, queue_url=target.queue_url)
        print(f"started SQS message move task {handle} ({target.dlq_url} -> {target.queue_url})")
        return 0
    result = Redriver(
        sqs, dlq_url=target.dlq_url, queue_url=target.queue_url, wait_seconds=args.wait_seconds
    ).run(args.max)
    if args.json:
        print(json.dumps({**result.as_dict(), "dlq_url": target.dlq_url, "queue_url": target.queue_url}))
    else:
        print(f"moved {result.moved} job(s) from {target.dlq_url} to {target.queue_url}")
        if result.failed:
            print(f"{result.failed} job(s) could not be re-sent and stay in the dead-letter queue")
        if result.not_deleted:
            print(f"{result.not_deleted} job(s) were re-sent but are still in the dead-letter queue")
        if result.invalid:
            print(f"{result.invalid} message(s) are not fan-out jobs and were left in the dead-letter queue")
        for error in result.errors[:10]:
            print(f"  {error}", file=sys.stderr)
    return 0 if result.ok else 1


def resolve_target(args: argparse.Namespace) -> Target:
    queue_url, dlq_url = args.queue_url, args.dlq_url
    endpoint, region = args.endpoint_url, args.region
    if args.local and args.stack:
        raise CommandError("--local and --stack name different deployments: give one")
    if args.local:
        info = local_info(args.local)
        queue_url = queue_url or info.get("fanout_queue_url")
        dlq_url = dlq_url or info.get("fanout_parked_url" if args.parked else "fanout_dlq_url")
        endpoint = endpoint or info.get("aws_endpoint")
        region = region or info.get("region")
    elif args.stack:
        outputs = stack_outputs(args.stack, region)
        queue_url = queue_url or outputs.get("FanoutQueueUrl")
        dlq_url = dlq_url or outputs.get("ParkedQueueUrl" if args.parked else "DeadLetterQueueUrl")
    if not queue_url or not dlq_url:
        raise CommandError(
            "name the queues: --local [URL], --stack NAME, or --queue-url URL and --dlq-url URL"
        )
    return Target(str(queue_url), str(dlq_url), endpoint or None, region or None, bool(args.local))


def local_info(url: str) -> dict[str, Any]:
    """The local runtime's /dev/info: its moto endpoint, region and queue URLs."""
    info_url = url.rstrip("/") + "/dev/info"
    try:
        with urllib.request.urlopen(info_url, timeout=5) as response:  # noqa: S310  (http(s) URL from the user)
            info = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CommandError(
            f"no local runtime answered at {info_url} ({error}); is `dynamowave serve` running?"
        ) from None
    if not isinstance(info, dict) or not info.get("aws_endpoint"):
        raise CommandError(f"{info_url} did not describe a local runtime")
    return info


def stack_outputs(stack: str, region: str | None) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cloudformation: Any = boto3.session.Session(region_name=region).client("cloudformation")
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"cannot read stack {stack}: {error}") from None
    outputs = stacks[0].get("Outputs", []) if stacks else []
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in outputs}


def sqs_client(target: Target) -> SQSClient:
    import boto3

    if target.local:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_KEY,
            aws_secret_access_key=LOCAL_KEY,
            region_name=target.region or "us-east-1",
        )
    else:
        session = boto3.session.Session(region_name=target.region)
    return session.client("sqs", endpoint_url=target.endpoint_url)
