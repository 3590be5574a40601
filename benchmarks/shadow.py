"""What shadow scoring costs the service: the same service with a @challenger shadowing and
without, side by side in the same rounds.

Two services run on one home (one registry, one online store): `shadow on` scores the
@challenger on every request (the card's `shadow_share`, here 1.0) in its background thread;
`shadow off` (MLOPS_SERVING__SHADOW=false) follows the champion alone. The challenger is the
champion's model registered again, so it costs what a retrained model costs. Each round offers
every rate (`loadgen.open_loop`) to one service, then the other, the order swapped every round,
so a busy machine slows both alike; the idle one waits. Per rate, the median p99 over the rounds;
a rate is held when every round held it.

Targets (issue 30): shadow on holds at least 0.9x the highest rate shadow off holds, and its p99
at the card's rate (200/s) is at most shadow off's / 0.9 in the same run. The report also counts
what the shadow scored and skipped: a full queue skips, it never delays an answer.

    python -m benchmarks shadow [--rounds 3] [--seconds 10] [--warm-up 3] [--rates 200 ...]
                                [--profile server]

`--profile server` runs the same in the server profile (the serving benchmark's: Feast's
registry in PostgreSQL, the online store in Redis): the shadow scores on the features the
champion read from Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import statistics
import time
import urllib.request
from collections.abc import Sequence
from datetime import date
from typing import Any

from benchmarks.harness import parse_options, run_in_fresh_home, target
from benchmarks.loadgen import HELD_P99_MS, open_loop
from benchmarks.serving import _ratio, _requests, server_profile
from mlops.config.settings import get_settings
from serving.process import ServiceProcess, free_port, start_service

log = logging.getLogger("benchmarks.shadow")

RATES = (200, 400, 600, 800, 1000, 1200)
EVENTS_PER_DAY = 10_000
SMOKE = {"rates": [50.0], "seconds": 1.0, "warm_up": 0.5, "rounds": 1, "events_per_day": 3_000}
START = date(2026, 1, 1)
SEED = 7
TARGET_THROUGHPUT = 0.9
VARIANTS = {"shadow off": {"MLOPS_SERVING__SHADOW": "false"}, "shadow on": {}}


def main(argv: Sequence[str] | None = None, base_import_seconds: float | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks shadow", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="per rate, after warm-up")
    parser.add_argument("--warm-up", type=float, default=3, help="seconds, per rate")
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--events-per-day", type=int, default=EVENTS_PER_DAY)
    parser.add_argument(
        "--profile",
        choices=("local", "server"),
        default="local",
        help="server: Feast's registry in PostgreSQL, its online store in Redis",
    )
    args = parse_options(parser, argv, smoke=SMOKE)
    name = "shadow" if args.profile == "local" else f"shadow-{args.profile}"
    run_in_fresh_home(name, lambda: run(args), render, args)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["MLOPS_SERVING__INFRA_CHECK"] = "false"  # serving is measured, not the gate
    os.environ["MLOPS_PROFILE"] = "local"  # whatever the caller's environment says
    with server_profile() if args.profile == "server" else contextlib.nullcontext():
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    get_settings.cache_clear()
    settings = get_settings().apply()
    from flows.ingest import ingest
    from flows.train import train
    from mlops.contracts.usecase import active_use_case
    from mlops.stores.registry import ModelRegistry

    use_case = active_use_case(settings)
    assert use_case.generator is not None, f"{use_case.name} has no traffic generator"
    batches = use_case.generator.generate(
        settings.landing_dir,
        start=START,
        days=use_case.card.training.span_days,
        events_per_day=args.events_per_day,
        seed=SEED,
    )
    ingest(batches)
    champion = train(search_trials=1)
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    challenger = _register_again(registry, champion.version, champion.run_id)
    registry.challenge(challenger, "benchmark: the champion's model again")
    bodies = [json.dumps(r).encode() for r in _requests(settings, use_case)]

    services = {
        name: start_service(settings, port=free_port(), overrides=overrides)
        for name, overrides in VARIANTS.items()
    }
    try:
        _wait_for_challenger(services["shadow on"], challenger)
        rounds: dict[str, dict[float, list[dict[str, Any]]]] = {n: {} for n in services}
        for round_index in range(args.rounds):
            order = list(services) if round_index % 2 == 0 else list(reversed(services))
            for rate in args.rates:
                for name in order:
                    result = open_loop(
                        services[name].url, "/predict", bodies, rate, args.seconds, args.warm_up
                    ).to_dict()
                    log.info("round %d %s %g/s: %s", round_index, name, rate, result)
                    rounds[name].setdefault(rate, []).append(result)
        shadowed = _shadow_counts(services["shadow on"])
    finally:
        for service in services.values():
            service.stop()
    return _summary(rounds, shadowed, use_case.card.serving_slo.throughput_rps, args)


def _register_again(registry: Any, version: str, run_id: str) -> str:
    """The champion's model as a new version, registered from a run of its own."""
    model = registry.client.get_model_version(registry.name, version)
    experiment = registry.client.get_run(run_id).info.experiment_id
    run = registry.client.create_run(experiment, run_name=f"benchmark: v{version} again")
    registry.client.set_terminated(run.info.run_id)
    return str(registry.register(model.source, run.info.run_id))


def _wait_for_challenger(service: ServiceProcess, version: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(service.url + "/model", timeout=10) as answer:
            if json.load(answer).get("challenger_version") == version:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the service did not start shadowing with v{version}")


def _shadow_counts(service: ServiceProcess) -> dict[str, float]:
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    counts: dict[str, float] = {}
    pattern = r'^mlops_shadow_requests_total\{outcome="(\w+)"\} (\S+)$'
    for outcome, value in re.findall(pattern, metrics, re.M):
        counts[outcome] = counts.get(outcome, 0.0) + float(value)
    return counts


def _summary(
    rounds: dict[str, dict[float, list[dict[str, Any]]]],
    shadowed: dict[str, float],
    slo_rps: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rates = {
        name: {
            rate: {
                "p99_ms_median": statistics.median(r["p99_ms"] for r in results),
                "p50_ms_median": statistics.median(r["p50_ms"] for r in results),
                "held_in_every_round": all(r["held"] for r in results),
                "errors": sum(r["errors"] for r in results),
            }
            for rate, results in by_rate.items()
        }
        for name, by_rate in rounds.items()
    }
    held = {
        name: max((rate for rate, row in rows.items() if row["held_in_every_round"]), default=0.0)
        for name, rows in rates.items()
    }
    p99 = {name: rows.get(slo_rps, {}).get("p99_ms_median") for name, rows in rates.items()}
    throughput_ratio = held["shadow on"] / held["shadow off"] if held["shadow off"] else None
    p99_ratio = (
        p99["shadow on"] / p99["shadow off"]
        if p99["shadow on"] is not None and p99["shadow off"]
        else None
    )
    return {
        "profile": args.profile,
        "rounds": args.rounds,
        "seconds_per_rate": args.seconds,
        "warm_up_seconds": args.warm_up,
        "held_p99_bound_ms": HELD_P99_MS,
        "rates": rates,
        "highest_rate_held": held,
        "p99_ms_at_slo_rate": p99,
        "slo_rate": slo_rps,
        "throughput_ratio": throughput_ratio,
        "p99_ratio_at_slo_rate": p99_ratio,
        "shadow_requests": shadowed,
        "targets": [
            target(
                "shadow on / off, highest rate held",
                throughput_ratio,
                ">=",
                TARGET_THROUGHPUT,
                unit="x",
            ),
            target(
                f"shadow on / off, p99 at {slo_rps:g}/s",
                p99_ratio,
                "<=",
                1 / TARGET_THROUGHPUT,
                unit="x",
            ),
        ],
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report.get('profile', 'local')} profile, {report['rounds']} interleaved rounds, open "
        f"loop, {report['seconds_per_rate']:g} s per "
        f"rate after {report['warm_up_seconds']:g} s warm-up; held = every round without errors "
        f"and p99 <= {report['held_p99_bound_ms']:g} ms",
        f"{'service':<11} {'rate/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  held",
    ]
    for name, rows in report["rates"].items():
        for rate, row in rows.items():
            lines.append(
                f"{name:<11} {float(rate):>7g} {row['p50_ms_median']:>8.2f} "
                f"{row['p99_ms_median']:>8.2f} {row['errors']:>7}  "
                f"{'yes' if row['held_in_every_round'] else 'no'}"
            )
    held = report["highest_rate_held"]
    lines.append(
        "highest rate held: "
        + ", ".join(f"{name} {rate:g}/s" for name, rate in held.items())
        + f"; on/off {_ratio(report['throughput_ratio'])}; p99 at {report['slo_rate']:g}/s "
        f"on/off {_ratio(report['p99_ratio_at_slo_rate'])}"
    )
    counts = report["shadow_requests"]
    lines.append(
        "shadow scoring: "
        + ", ".join(f"{outcome} {count:.0f}" for outcome, count in sorted(counts.items()))
    )
    return "\n".join(lines)
