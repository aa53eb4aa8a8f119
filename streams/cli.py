"""The `referral-rewards` command line: one wiring point for every subcommand."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.app.settings import Settings

import contextlib

from streams.kafka import broker


def _kafka(args: argparse.Namespace) -> int:
    cfg = broker.BrokerConfig.from_env(args.port, secure=getattr(args, "secure", False))
    try:
        if args.action == "up":
            bootstrap, started = broker.up(cfg, fresh=args.fresh)
            print(bootstrap if started else f"{bootstrap} (already running)")
            if cfg.sasl_ssl_bootstrap:
                listener = cfg.secured
                print(
                    f"SASL_SSL on {cfg.sasl_ssl_bootstrap}: user referral, password in "
                    f"{listener.password_file}, CA {listener.ca_pem}"
                )
        elif args.action == "down":
            print("stopped" if broker.down(cfg) else "not running")
        elif args.action == "fetch":
            print(broker.fetch_jars())
        else:
            print(broker.status(cfg))
    except broker.BrokerError as exc:
        print(f"referral-rewards kafka {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _faults(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import time
    from pathlib import Path

    from streams.faults import FaultPlan, run_faults
    from streams.kafka import outage

    outage.install()  # the harness's own clients meet the broker's restart too
    cfg = broker.BrokerConfig.from_env(args.port)
    try:
        bootstrap, _ = broker.up(cfg)
    except broker.BrokerError as exc:
        print(f"referral-rewards faults: {exc}", file=sys.stderr)
        return 1
    plan = FaultPlan(
        events=args.events,
        kills=args.kills,
        feed_seconds=args.feed_seconds,
        broker_restart_at=None if args.no_broker_restart else 0.5,
        max_rewards=args.max_rewards,
        seed=args.seed,
    )
    folder = broker.cache_dir() / "faults" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"worker logs in {folder}")
    report = asyncio.run(run_faults(bootstrap, plan, broker_cfg=cfg, folder=folder))
    for line in report.lines():
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0 if report.ok else 1


def _schemas(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streams.contracts.compat import check_registry
    from streams.contracts.registry import SchemaRegistry, default_schema_dir

    root = Path(args.dir) if args.dir else default_schema_dir()
    try:
        registry = SchemaRegistry(root)
    except (OSError, ValueError) as exc:
        print(f"referral-rewards schemas check: {exc}", file=sys.stderr)
        return 2
    problems = check_registry(registry)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    versions = sum(len(registry.versions(t)) for t in registry.topics)
    print(f"{len(registry.topics)} topics, {versions} schema versions: BACKWARD_TRANSITIVE ok")
    return 0


def _usage(command: str, message: str) -> int:
    print(f"referral-rewards {command}: {message}", file=sys.stderr)
    return 2


def _programme(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from streams.rules.terms import load_terms

    return load_terms(Path(args.terms) if args.terms else None)


def _replay(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from streams.contracts import JsonlCodec, JsonlError, parse_time
    from streams.replay import input_events, replay
    from streams.rules.terms import TermsError

    def usage(message: str) -> int:
        return _usage("replay", message)

    if bool(args.events) == bool(args.from_kafka):
        return usage("give either --events FILE or --from-kafka")
    if args.events and not args.out:
        return usage("--events needs --out DIR")
    if args.from_kafka and bool(args.out) == bool(args.to_topics):
        return usage("--from-kafka needs one of --out DIR or --to-topics PREFIX")
    if args.to_topics is not None and not args.to_topics:
        return usage("--to-topics needs a non-empty prefix (never the live topics)")
    try:
        programme = _programme(args)
        as_of = parse_time(args.as_of) if args.as_of else None
        since = parse_time(args.since) if args.since else None
    except (TermsError, ValueError) as exc:
        return usage(str(exc))
    if args.from_kafka:
        from streams.app.settings import Topics
        from streams.audit.commands import replay_from_kafka
        from streams.audit.feed import InputReadError

        try:
            summary = asyncio.run(
                replay_from_kafka(
                    bootstrap=args.bootstrap,
                    topics=Topics(args.topic_prefix),
                    app_id=args.app_id,
                    programme=programme,
                    journal=args.journal,
                    since_ms=since,
                    as_of=as_of,
                    out_dir=Path(args.out) if args.out else None,
                    to_topics=args.to_topics,
                    quiet=args.quiet,
                )
            )
        except InputReadError as exc:
            print(f"referral-rewards replay: {exc}", file=sys.stderr)
            return 1
        print(summary.line())
        return 0
    events_path = Path(args.events)
    if not events_path.is_file():
        return usage(f"no events file {events_path}")
    try:
        summary = replay(
            input_events(JsonlCodec().read_file(events_path)), programme, Path(args.out), as_of
        )
    except JsonlError as exc:
        return usage(f"{events_path}: {exc}")
    print(summary.line())
    return 0


def _audit(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from rich.console import Console

    from streams.app.settings import Topics
    from streams.audit.commands import audit, print_audit
    from streams.contracts import parse_time
    from streams.rules.terms import TermsError

    if args.as_of and not args.from_inputs:
        return _usage("audit", "--as-of goes with --from-inputs (the journals carry their clock)")
    try:
        programme = _programme(args)
        as_of = parse_time(args.as_of) if args.as_of else None
    except (TermsError, ValueError) as exc:
        return _usage("audit", str(exc))
    result = asyncio.run(
        audit(
            bootstrap=args.bootstrap,
            topics=Topics(args.topic_prefix),
            app_id=args.app_id,
            programme=programme,
            quiet=args.quiet,
            from_inputs=args.from_inputs,
            as_of=as_of,
        )
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_audit(result, Console())
    return 0 if result["ok"] else 1


def _explain(args: argparse.Namespace) -> int:
    import asyncio

    from streams.audit.commands import explain

    return asyncio.run(
        explain(
            bootstrap=args.bootstrap,
            app_id=args.app_id,
            programme=_programme(args),
            lead=args.lead,
            referrer=args.referrer,
            as_json=args.json,
            quiet=args.quiet,
        )
    )


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streams.app.settings import Topics
    from streams.audit.commands import export
    from streams.contracts import parse_time

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        return _usage("export", str(exc))
    return export(
        bootstrap=args.bootstrap,
        topics=Topics(args.topic_prefix),
        topic=args.topic,
        since_ms=since,
        until_ms=until,
        out=Path(args.out) if args.out else None,
        quiet=args.quiet,
    )


def add_security_options(parser: argparse.ArgumentParser) -> None:
    """How to reach a secured cluster (streams.kafka.connection); each falls back to its
    environment variable. The SASL password has no flag: a flag's value shows in `ps`."""
    from streams.kafka.connection import ENV

    group = parser.add_argument_group(
        "secured clusters",
        f"the SASL password comes from ${ENV['password']} or the file in --sasl-password-file",
    )

    def option(flag: str, key: str, help_text: str, **kw: Any) -> None:
        group.add_argument(
            flag, default=os.environ.get(ENV[key]) or None, help=f"{help_text} (${ENV[key]})", **kw
        )

    option("--security-protocol", "protocol", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    option("--sasl-mechanism", "mechanism", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default)")
    option("--sasl-username", "username", "SASL user name")
    option("--sasl-password-file", "password_file", "file holding the SASL password")
    option("--ssl-cafile", "cafile", "CA certificates to trust (default: the system's)")
    option("--ssl-certfile", "certfile", "client certificate (mutual TLS)")
    option("--ssl-keyfile", "keyfile", "the client certificate's key")
    group.add_argument(
        "--ssl-no-check-hostname",
        action="store_true",
        default=(os.environ.get(ENV["check_hostname"]) or "true").lower() in ("0", "false", "no"),
        help=f"do not check the broker's name against its certificate (${ENV['check_hostname']}"
        "=false); for tests only",
    )


def use_security(args: argparse.Namespace) -> None:
    """Make the command's security options the ones every client connects with."""
    from streams.kafka import connection

    connection.use(
        connection.Security.build(
            protocol=args.security_protocol,
            mechanism=args.sasl_mechanism,
            username=args.sasl_username,
            password=os.environ.get(connection.ENV["password"]) or None,
            password_file=args.sasl_password_file,
            cafile=args.ssl_cafile,
            certfile=args.ssl_certfile,
            keyfile=args.ssl_keyfile,
            check_hostname=not args.ssl_no_check_hostname,
        )
    )


def add_log_options(parser: argparse.ArgumentParser, *, terms: bool = True) -> None:
    """Where the log is: the cluster, the deployment's names; and whether to show progress."""
    from streams.app.settings import default_bootstrap

    parser.add_argument("--bootstrap", default=default_bootstrap(), help="Kafka bootstrap servers")
    add_security_options(parser)
    parser.add_argument(
        "--app-id",
        default=os.environ.get("REFERRAL_APP_ID", "referral-rewards"),
        help="the worker's app id: names its journals",
    )
    parser.add_argument(
        "--topic-prefix",
        default=os.environ.get("REFERRAL_TOPIC_PREFIX", ""),
        help="prefix of the input and output topics",
    )
    if terms:
        parser.add_argument("--terms", default=None, help="terms TOML (default: shipped terms)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _worker_settings(args: argparse.Namespace) -> Settings:
    from pathlib import Path

    from streams.app.settings import ClockMode, Settings

    return Settings(
        bootstrap=args.bootstrap,
        app_id=args.app_id,
        terms=Path(args.terms) if args.terms else None,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        web_host=args.web_host,
        web_bind=args.web_bind,
        web_port=args.web_port,
        partitions=args.partitions,
        replication=args.replication,
        topic_prefix=args.topic_prefix,
        clock=ClockMode(args.clock),
        tick_interval_s=args.tick_interval,
        commit_interval_s=args.commit_interval,
        session_timeout_s=args.session_timeout,
        batch_size=args.batch_size,
        batch_wait_s=args.batch_wait,
        rounds_in_flight=args.rounds_in_flight,
        log_level=args.log_level,
    )


def _worker(args: argparse.Namespace) -> int:
    from streams.app.runner import run_worker

    try:
        settings = _worker_settings(args)
    except ValueError as exc:
        return _usage("worker", str(exc))
    return run_worker(settings)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The worker's flags; each falls back to an environment variable, then a local default."""
    from streams.app.settings import ENV, default_bootstrap

    def option(flag: str, field: str, default: str, help_text: str, **kw: Any) -> None:
        env = ENV[field]
        parser.add_argument(
            flag, default=_env(env, default), help=f"{help_text} (${env}, default {default})", **kw
        )

    parser.add_argument(
        "--bootstrap",
        default=default_bootstrap(),
        help="Kafka bootstrap servers ($REFERRAL_BOOTSTRAP, default the local broker)",
    )
    add_security_options(parser)
    option("--terms", "terms", "", "terms TOML file; empty means the shipped 2021-06-21 terms")
    option("--data-dir", "data_dir", "", "folder for table state; empty means the cache folder")
    option("--web-port", "web_port", "6066", "HTTP port for queries and metrics", type=int)
    option("--web-host", "web_host", "127.0.0.1", "HTTP address other workers reach this one at")
    option("--web-bind", "web_bind", "", "HTTP address to listen on (empty: --web-host)")
    option("--partitions", "partitions", "8", "partitions of every topic", type=int)
    option("--replication", "replication", "1", "replication factor of created topics", type=int)
    option("--app-id", "app_id", "referral-rewards", "consumer group and internal topic prefix")
    option("--topic-prefix", "topic_prefix", "", "prefix of the input and output topic names")
    option("--clock", "clock", "wall", "wall: clock records while caught up; events: none",
           choices=["wall", "events"])  # fmt: skip
    option("--tick-interval", "tick_interval_s", "1.0", "seconds between clock records",
           type=float)  # fmt: skip
    option("--commit-interval", "commit_interval_s", "2.8",
           "seconds between offset commits while busy (a quiet worker commits at once)",
           type=float)  # fmt: skip
    option("--session-timeout", "session_timeout_s", "10",
           "seconds before a silent worker's partitions move", type=float)  # fmt: skip
    option("--batch-size", "batch_size", "500",
           "most events an agent takes through the rules in one round", type=int)  # fmt: skip
    option("--batch-wait", "batch_wait_s", "0",
           "seconds a round with room waits for more records", type=float)  # fmt: skip
    option("--rounds-in-flight", "rounds_in_flight", "3",
           "rounds an agent computes before the oldest is stored", type=int)  # fmt: skip
    option("--log-level", "log_level", "info", "worker log level")


def _demo_options(args: argparse.Namespace, bootstrap: str) -> Any:
    from streams.demo import DemoOptions

    return DemoOptions(
        bootstrap=bootstrap,
        referrers=args.referrers,
        leads=args.leads,
        rate=args.rate,
        topic_prefix=args.topic_prefix,
    )


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from streams.demo import run_demo

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(_demo_options(args, args.bootstrap)))
    return 0


def _run(args: argparse.Namespace) -> int:
    """Local broker + worker (demo terms) + demo; Ctrl-C stops all three."""
    import asyncio
    import subprocess
    import time
    import urllib.request

    from streams.demo import demo_terms_path, run_demo

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: worker, then broker

    signal.signal(signal.SIGTERM, interrupt)
    cfg = broker.BrokerConfig.from_env()
    try:
        bootstrap, started = broker.up(cfg)
    except broker.BrokerError as exc:
        print(f"referral-rewards run: {exc}", file=sys.stderr)
        return 1
    print(f"Kafka on {bootstrap}; starting the worker (web on :{args.web_port}) ...")
    terms = args.terms or str(demo_terms_path())
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--bootstrap", bootstrap, "--terms", terms,
         "--web-port", str(args.web_port), "--topic-prefix", args.topic_prefix],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{args.web_port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        if worker.poll() is not None:
            print("referral-rewards run: the worker exited", file=sys.stderr)
            return 1
        print(f"worker ready: try http://127.0.0.1:{args.web_port}/metrics")
        asyncio.run(run_demo(_demo_options(args, bootstrap)))
    except KeyboardInterrupt:
        pass
    finally:
        if worker.poll() is None:
            worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        if started:
            broker.down(cfg)
            print("local broker stopped")
    return 0


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--referrers", type=int, default=2000, help="referrers (default 2000)")
    parser.add_argument("--leads", type=int, default=10000, help="leads to submit (default 10000)")
    parser.add_argument("--rate", type=float, default=50.0, help="events a second (default 50)")
    parser.add_argument(
        "--topic-prefix", default=os.environ.get("REFERRAL_TOPIC_PREFIX", ""), help="topic prefix"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="referral-rewards", description="Referral reward engine on Apache Kafka."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    kafka = commands.add_parser("kafka", help="the project's own local Kafka broker")
    kafka.add_argument("action", choices=["up", "down", "status", "fetch"])
    kafka.add_argument("--port", type=int, default=None, help="default $KAFKA_PORT or 9092")
    kafka.add_argument("--fresh", action="store_true", help="wipe the broker's data first")
    kafka.add_argument(
        "--secure",
        action="store_true",
        help="add a SASL_SSL listener (port +2, $KAFKA_SASL_SSL_PORT) with a local CA and a "
        "SCRAM user; its data must be formatted with it (--fresh once)",
    )
    kafka.set_defaults(handler=_kafka)

    faults = commands.add_parser(
        "faults", help="kill -9 workers and the broker under load, then verify (make faults)"
    )
    faults.add_argument("--events", type=int, default=20_000, help="scenario events to feed")
    faults.add_argument("--kills", type=int, default=10, help="worker SIGKILLs during the feed")
    faults.add_argument("--feed-seconds", type=float, default=90.0, help="how long the feed lasts")
    faults.add_argument("--no-broker-restart", action="store_true", help="leave the broker be")
    faults.add_argument("--max-rewards", type=int, default=None, help="a lower cap than 50")
    faults.add_argument("--seed", type=int, default=1, help="scenario and fault schedule seed")
    faults.add_argument("--port", type=int, default=None, help="local broker port ($KAFKA_PORT)")
    faults.add_argument("--json", default=None, help="write the report as JSON to this file")
    faults.set_defaults(handler=_faults)

    schemas = commands.add_parser("schemas", help="the Avro contracts in schemas/")
    schemas.add_argument("action", choices=["check"])
    schemas.add_argument("--dir", default=None, help="schema folder (default: the project's)")
    schemas.set_defaults(handler=_schemas)

    replay = commands.add_parser(
        "replay", help="run the rules over a JSONL log or the Kafka log; write the outputs"
    )
    replay.add_argument("--events", default=None, help="input events, one JSONL record a line")
    replay.add_argument("--from-kafka", action="store_true", help="read the log from Kafka")
    replay.add_argument(
        "--from", dest="since", default=None, help="with --from-kafka: start at this time"
    )
    replay.add_argument(
        "--from-beginning", action="store_true", help="with --from-kafka: the whole log (default)"
    )
    replay.add_argument(
        "--journal",
        action="store_true",
        help="replay the live worker's journals (clock records included) instead of the inputs",
    )
    replay.add_argument(
        "--as-of", default=None, help="advance the clock to this ISO-8601 UTC time at the end"
    )
    replay.add_argument("--out", default=None, help="folder for the two output files")
    replay.add_argument(
        "--to-topics", default=None, help="with --from-kafka: produce outputs to PREFIX<topic>"
    )
    add_log_options(replay)
    replay.set_defaults(handler=_replay)

    audit = commands.add_parser(
        "audit", help="recompute the outputs from the log and compare with what was emitted"
    )
    add_log_options(audit)
    audit.add_argument(
        "--from-inputs",
        action="store_true",
        help="recompute from the input topics (as replay --from-kafka does) instead of the "
        "worker's journals: also catches an input the worker never took in",
    )
    audit.add_argument(
        "--as-of",
        default=None,
        help="with --from-inputs: advance the recomputation's clock to this ISO-8601 UTC time",
    )
    audit.add_argument("--json", action="store_true", help="machine-readable report")
    audit.set_defaults(handler=_audit)

    explain = commands.add_parser("explain", help="the full story of a lead or a referrer")
    who = explain.add_mutually_exclusive_group(required=True)
    who.add_argument("--lead", default=None)
    who.add_argument("--referrer", default=None)
    add_log_options(explain)
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(handler=_explain)

    export = commands.add_parser("export", help="a topic as decoded JSONL")
    export.add_argument("--topic", required=True, help="contract name, e.g. invoice-paid")
    export.add_argument("--from", dest="since", default=None, help="ISO-8601 UTC start")
    export.add_argument("--to", dest="until", default=None, help="ISO-8601 UTC end")
    export.add_argument("--out", default=None, help="file (default: standard output)")
    add_log_options(export, terms=False)
    export.set_defaults(handler=_export)

    worker = commands.add_parser("worker", help="run the live processor on Kafka")
    add_worker_options(worker)
    worker.set_defaults(handler=_worker)

    from streams.app.settings import default_bootstrap

    demo = commands.add_parser("demo", help="publish a realistic stream and show the decisions")
    demo.add_argument("--bootstrap", default=default_bootstrap(), help="Kafka bootstrap servers")
    add_security_options(demo)
    add_demo_options(demo)
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="local broker + worker + demo (make run)")
    add_demo_options(run)
    run.add_argument("--web-port", type=int, default=6066, help="worker HTTP port")
    run.add_argument("--terms", default=None, help="terms file (default: the demo terms)")
    run.set_defaults(handler=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from aiokafka.errors import KafkaError

    from streams.kafka.connection import ConnectionConfigError

    args = build_parser().parse_args(argv)
    if hasattr(args, "security_protocol"):
        try:
            use_security(args)
        except ConnectionConfigError as exc:
            print(f"referral-rewards {args.command}: {exc}", file=sys.stderr)
            return 2
    handler = args.handler
    if not hasattr(args, "security_protocol") or args.command == "worker":
        return int(handler(args))
    # A tool fails fast with one line: the clients' own retry messages are not shown.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return int(handler(args))
    except (KafkaError, ConnectionError, OSError) as exc:
        print(f"referral-rewards {args.command}: {_connection_trouble(args, exc)}", file=sys.stderr)
        return 1


def _connection_trouble(args: argparse.Namespace, error: BaseException) -> str:
    """Why a tool could not talk to Kafka, as precisely as a probe can tell."""
    import asyncio

    from streams.kafka.connection import KafkaRefused, KafkaUnreachable, current, probe

    bootstrap = getattr(args, "bootstrap", "")
    try:
        asyncio.run(probe(bootstrap))
    except (KafkaRefused, KafkaUnreachable) as why:
        return f"cannot connect to Kafka at {bootstrap}: {why}"
    except Exception:
        pass
    return current().redact(f"{type(error).__name__}: {error}")
