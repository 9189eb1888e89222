"""The human-readable table of a benchmark run, with the ratios the design is judged by."""

from __future__ import annotations

from dynamowave.bench.prices import PRICES_AS_OF, REGION
from dynamowave.bench.runner import BenchConfig, SystemResult


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def label(result: SystemResult) -> str:
    """The system, and its fan-out worker processes when it had any."""
    workers = result.extra.get("fanout_workers")
    return f"{result.system}-w{workers}" if workers else result.system


def table(results: list[SystemResult], config: BenchConfig) -> str:
    header = (
        f"{'system':<13} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'msg ms':>8} "
        f"{'RRU/msg':>8} {'WRU/msg':>8} {'SQS/msg':>8} {'posts/msg':>9} {'λ/msg':>6} {'$/M msgs':>9} {'floor':>8}"
    )
    lines = [
        f"dynamowave bench: {config.members} members, {config.idle:,} idle, "
        f"{results[0].messages if results else config.messages} messages, "
        f"post latency {config.post_latency_ms:g} ms (prices {REGION}, {PRICES_AS_OF})",
        header,
        "-" * len(header),
    ]
    for r in results:
        aws = r.aws_requests_per_message or {}
        lines.append(
            f"{label(r):<13} {r.deliveries_per_s:>9,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.message_ms_p50:>8.1f} "
            f"{_cell(aws.get('dynamodb_rru')):>8} {_cell(aws.get('dynamodb_wru')):>8} "
            f"{_cell(aws.get('sqs_requests')):>8} {_cell(aws.get('post_to_connection')):>9} "
            f"{_cell(aws.get('lambda_invocations')):>6} {_cell(r.usd_per_million_messages, 2):>9} "
            f"{_cell(r.apigw_floor_usd_per_million, 0):>8}"
        )
    for r in results:
        extra = r.extra
        if "messages_per_s" in extra:
            line = f"{label(r)}: {extra['messages_per_s']:g} messages/s achieved of {extra['rate']:g}"
            if "posts_per_delivery" in extra:
                line += f", {extra['posts_per_delivery']:g} posts per delivery"
            for unit in ("message", "join"):
                if f"busiest_item_writes_per_{unit}" in extra:
                    line += (
                        f", busiest item {extra['busiest_item_key']!r}: "
                        f"{extra[f'busiest_item_writes_per_{unit}']:g} writes per {unit}"
                    )
            if "transaction_conflicts" in extra:
                line += f", {extra['transaction_conflicts']} transactions cancelled"
            lines.append(line)
    by_system = {label(r): r for r in results}
    for ours in (r for r in results if r.system == "dynamowave"):
        for other in ("tutorial", "broadcast"):
            theirs = by_system.get(other)
            if theirs is not None and theirs.deliveries_per_s > 0:
                lines.append(
                    f"{label(ours)}/{other}: {ours.deliveries_per_s / theirs.deliveries_per_s:.2f}x deliveries/s, "
                    f"{ours.message_ms_p50 / max(theirs.message_ms_p50, 1e-9):.2f}x time per message"
                )
        if ours.usd_per_million_messages and ours.apigw_floor_usd_per_million:
            over = ours.usd_per_million_messages / ours.apigw_floor_usd_per_million - 1
            lines.append(
                f"{label(ours)} cost vs the API Gateway floor (1 in + 1 out per member): {over:+.1%}"
            )
    lines.append(
        "deliv/s: deliveries / time busy delivering; msg ms: send -> last member (median); floor: $/M msgs "
        "of API Gateway alone"
    )
    return "\n".join(lines)
