"""``edgeproof strategies deploy`` and ``edgeproof strategies export-cloudformation``: the deploy path of a
strategy (docs/strategies.md, "Deploying"). Registered by :mod:`edgeproof.analytics.cli_strategies`; the
work is in :mod:`edgeproof.analytics.deploy` and :mod:`edgeproof.analytics.strategies.cloudformation`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeproof.analytics.deploy import DEFAULT_MAX_UTILIZATION, RUNTIME, STAGE

from edgeproof.errors import EXIT_MISSED, EXIT_OK

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``deploy`` and ``export-cloudformation`` to the ``strategies`` subcommands."""
    p = sub.add_parser(
        "deploy", help="create/update the strategy's CloudFront Function, test it on worst-case requests, gate, publish",
        description=f"Create the strategy's {RUNTIME} viewer-request function (or update it, with its ETag), run "
        f"TestFunction ({STAGE} stage) on worst-case requests (the longest queries within CloudFront's URL "
        "limit, the most parameters, every Accept class, tracking parameters, mixed case), gate on the "
        "reported compute utilization and function errors, and publish to LIVE only with --publish. Exit 0 "
        "when the gate passes, 1 when it fails (nothing is published), 2 for an AWS error (one line).")
    p.add_argument("name", help="a canonical-mode strategy name or .toml file")
    p.add_argument("--function-name", required=True, metavar="F",
                   help="the CloudFront Function's name (1-64 letters, digits, '-', '_')")
    p.add_argument("--publish", action="store_true", help="publish to LIVE when the gate passes")
    p.add_argument("--dry-run", action="store_true",
                   help="print the calls it would make (code and events abbreviated), each checked with botocore's "
                   "parameter validation against the CloudFront model; no AWS call, no credentials needed")
    p.add_argument("--max-utilization", type=float, default=DEFAULT_MAX_UTILIZATION, metavar="PERCENT",
                   help=f"highest ComputeUtilization a request may reach (default {DEFAULT_MAX_UTILIZATION:g})")
    p.set_defaults(func=_deploy)

    p = sub.add_parser(
        "export-cloudformation", help="write a CloudFormation template of the strategy's image cache behaviour",
        description="A CloudFormation template (JSON): the viewer-request function (canonical mode), a cache "
        "policy whose key holds exactly what the strategy's key needs, an origin access control, and a "
        "distribution whose origin group has the derivative store (S3) primary and the transformer "
        "secondary. Deploy it with `aws cloudformation deploy --template-file FILE --stack-name S "
        "--parameter-overrides StoreBucket=B TransformerDomain=D`.")
    p.add_argument("name", help="a strategy name or .toml file")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--origin-shield", default=None, metavar="REGION",
                   help="enable Origin Shield in this region (e.g. us-east-2) on both origins")
    p.add_argument("--ttl", default="30d", help="DefaultTTL and MaxTTL, e.g. 30d, 24h (default 30d)")
    p.add_argument("--store-bucket", default=None, metavar="B", help="default of the StoreBucket parameter")
    p.add_argument("--transformer-domain", default=None, metavar="D",
                   help="default of the TransformerDomain parameter")
    p.add_argument("--no-auto-publish", dest="auto_publish", action="store_false",
                   help="default the AutoPublish parameter to false (function in DEVELOPMENT only, not attached)")
    p.set_defaults(func=_export_cloudformation)


def _deploy(args: argparse.Namespace) -> int:
    from edgeproof.analytics.deploy import (
        check_max_utilization,
        deploy,
        dry_run_calls,
        format_call,
        worst_case_requests,
    )
    from edgeproof.analytics.strategies import get_strategy

    check_max_utilization(args.max_utilization)
    strategy = get_strategy(args.name)
    if args.dry_run:
        calls = dry_run_calls(strategy, args.function_name, publish=args.publish)
        print(f"dry run: no AWS call made; {len(calls)} requests below, each valid for botocore's CloudFront "
              "model (parameter validation and the model's limits)")
        for i, call in enumerate(calls, 1):
            print(f"{i:>2}. {format_call(call)}")
            if call.when:
                print(f"    ({call.when})")
        print("worst-case requests (URL bytes, event bytes, what the strategy gives):")
        for r in worst_case_requests(strategy):
            print(f"  {r.url_bytes:>5,} {len(r.event_object()):>6,}  {r.label}: {r.expected(strategy)[:80]}"
                  + (f"  [{r.note}]" if r.note else ""))
        if not args.publish:
            print("PublishFunction: not without --publish")
        return EXIT_OK
    result = deploy(strategy, args.function_name, publish=args.publish, max_utilization=args.max_utilization,
                    progress=print)
    verdict = result.verdict
    print(verdict.headline)
    for line in verdict.failures:
        print(f"  {line}")
    if not verdict.passed:
        print(f"not published: {args.function_name} stays as it was in LIVE")
        return EXIT_MISSED
    if result.published:
        print(f"published {args.function_name} to LIVE (status {result.status or 'unknown'})")
    else:
        print(f"not published: {args.function_name} is updated in {STAGE} only; rerun with --publish to publish it")
    return EXIT_OK


def _export_cloudformation(args: argparse.Namespace) -> int:
    from edgeproof.analytics.replay import parse_duration
    from edgeproof.analytics.strategies import get_strategy
    from edgeproof.analytics.strategies.cloudformation import cloudformation_template

    export = cloudformation_template(get_strategy(args.name), ttl=parse_duration(args.ttl),
                                     origin_shield=args.origin_shield, store_bucket=args.store_bucket,
                                     transformer_domain=args.transformer_domain, auto_publish=args.auto_publish)
    text = export.to_json()
    for note in export.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} ({len(text.encode()):,} bytes, CloudFormation JSON)", file=sys.stderr)
    return EXIT_OK
