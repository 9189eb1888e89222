"""Wires the local runtime: moto, tables and queues, function settings, gateway, event sources.

Order matters: boto3 is pointed at moto before any function code exists in the process, and the
functions' environment (including the Management API endpoint, which needs the bound port) is
set before their modules are imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dynamowave.local import fair_share
from dynamowave.local.config import RuntimeConfig
from dynamowave.local.faults import FaultInjector
from dynamowave.local.lambda_runner import Invocation, LambdaRunner
from dynamowave.local.provisioning import Resources
from dynamowave.local.sigv4 import LOCAL_CREDENTIALS, SigV4Verifier

log = logging.getLogger("dynamowave.runtime")

FANOUT = "fanout"  # the function `--fanout-workers` runs in worker processes

# Defaults for the functions' own observability in a terminal (a user's environment wins).
QUIET_FUNCTION_ENV = {
    "POWERTOOLS_SERVICE_NAME": "dynamowave",
    "POWERTOOLS_METRICS_NAMESPACE": "DynamoWave",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would flood the terminal
    "LOG_LEVEL": "WARNING",
}


def default_web_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "web"


class LocalRuntime:
    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.faults = FaultInjector(config.faults)
        self.runner = LambdaRunner(config.functions, region=config.region, account_id=config.account_id)
        self.resources: Resources | None = None
        self.aws_endpoint = ""
        self.port = 0
        self._moto: Any = None
        self._app_runner: web.AppRunner | None = None
        self._sqs_source: Any = None
        self._redrive_source: Any = None
        self._janitor: Any = None
        self.gateway: Any = None
        self.management: Any = None
        self._in_process_posts: Any = None
        self.secret = ""
        self.visibility_timeout = 0
        self._warmup: Any = None
        self._verifier = SigV4Verifier([LOCAL_CREDENTIALS], region=config.region)
        self._iam: Any = None
        self._policy_arguments: dict[str, Any] | None = None  # `--iam`: what local_policies was given
        self._principals: dict[str, str] = {}
        # The benchmark's meter: every botocore call a fan-out worker process makes, reported here.
        self.observe_worker_calls: Callable[[list[tuple[Any, ...]]], None] | None = None

    # ----- public surface ---------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self._public_host()}:{self.port}"

    @property
    def http_url(self) -> str:
        return self._local_url() + "/"

    @property
    def management_endpoint(self) -> str:
        # The functions call it over HTTP (GET/DELETE, the janitor): wherever the runtime listens.
        return f"{self._local_url()}/{self.config.stage}"

    def _local_url(self) -> str:
        """``http://host:port`` where this process reaches its own listener."""
        return f"http://{self._public_host()}:{self.port}"

    def _public_host(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    async def run_janitor(self) -> Invocation:
        assert self._janitor is not None
        invocation: Invocation = await self._janitor.fire()
        return invocation

    # ----- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        import asyncio

        from dynamowave.compat import check_versions

        # Loudly, before anything binds: the runtime's patches fit only the pinned libraries.
        check_versions()

        from dynamowave.local.dev_tokens import local_secret, state_dir
        from dynamowave.local.journal import JOURNAL_FILE
        from dynamowave.local.moto_backend import MotoBackend, point_boto3_at

        config = self.config
        if config.aws_endpoint:
            self.aws_endpoint = config.aws_endpoint
        else:
            folder = (config.state_dir or state_dir()) / "data"
            self._moto = MotoBackend(
                journal=folder / JOURNAL_FILE if config.persist else None, fsync=config.fsync
            )
            self.aws_endpoint = await asyncio.to_thread(self._moto.start)
            if config.persist:
                replayed = self._moto.replayed
                log.info(
                    "state kept in %s: %d change(s) and %d queued message(s) restored",
                    folder,
                    replayed.get("requests", 0),
                    replayed.get("messages", 0),
                )
        point_boto3_at(self.aws_endpoint, config.region)
        self.secret = config.jwt_secret or local_secret(config.state_dir)

        from dynamowave.local.provisioning import provision
        from functions.chat.schema import FANOUT_VISIBILITY_TIMEOUT_SECONDS

        visibility = config.visibility_timeout or FANOUT_VISIBILITY_TIMEOUT_SECONDS
        self.visibility_timeout = visibility
        self.resources = await asyncio.to_thread(
            provision,
            prefix=config.prefix,
            region=config.region,
            visibility_timeout=visibility,
            max_receive_count=config.max_receive_count,
            jwt_secret=self.secret,
        )
        await self._start_http()
        self._configure_functions()
        if config.fanout_workers:
            await self._start_worker_pool()
        # Handlers import in the background (about a second of powertools and boto3): the
        # service is ready sooner, and a request that comes first waits on the import lock,
        # like a Lambda cold start.
        self._warmup = asyncio.create_task(asyncio.to_thread(self._load_handlers))
        self._start_event_sources()

    def _load_handlers(self) -> None:
        for name in self.config.functions:
            if name in self.runner.pools:
                continue  # its worker processes import it
            try:
                self.runner.handler(name)
            except Exception as exc:  # a function not written yet: invoking it reports the error
                log.warning("cannot import the %s handler (%s); its invocations will fail", name, exc)

    async def _start_http(self) -> None:
        from dynamowave.local.admin_api import OperatorApi
        from dynamowave.local.dev_api import DevApi
        from dynamowave.local.gateway import WebSocketGateway
        from dynamowave.local.guard import AccessPolicy, guard_middleware
        from dynamowave.local.lambda_api import LambdaInvokeApi
        from dynamowave.local.management_api import ManagementApiEmulator
        from functions.chat.schema import ACTION_ROUTES, TWO_WAY_ROUTES

        config = self.config
        gateway = WebSocketGateway(config, self.runner, routes=ACTION_ROUTES, two_way=TWO_WAY_ROUTES)
        self.gateway = gateway
        dev = DevApi(
            gateway,
            self.faults,
            secret=self.secret,
            web_dir=config.web_dir or default_web_dir(),
            ws_url=lambda: self.ws_url + "/",
            run_janitor=self.run_janitor,
            info=self.info,
            policies=lambda: self._iam.policies if self._iam is not None else None,
        )

        async def root(request: web.Request) -> web.StreamResponse:
            # One URL for the web client and the WebSocket endpoint, told apart by the Upgrade header.
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await gateway.handle(request)
            return await dev.index(request)

        policy = AccessPolicy(
            bound_host=config.host,
            stage=config.stage,
            allowed_hosts=config.allowed_hosts,
            allowed_origins=config.allowed_origins,
        )
        # The guard runs before every route, /dev, /admin and the Management API included.
        app = web.Application(
            client_max_size=4 * config.message_limit, middlewares=[guard_middleware(policy)]
        )
        app.router.add_get("/", root)
        app.router.add_get(f"/{config.stage}", root)
        app.router.add_get(f"/{config.stage}/", root)
        dev.add_routes(app)
        self.management = ManagementApiEmulator(gateway, self.faults, self._verifier)
        self.management.add_routes(app, config.stage)
        LambdaInvokeApi(self.runner, self._invocable_functions()).add_routes(app)
        OperatorApi(self.runner, self.verifier(), config).add_routes(app)

        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        self._app_runner = runner
        self.port = int(runner.addresses[0][1])
        if config.host.strip("[]") == "::":
            # asyncio binds "::" IPv6-only (IPV6_V6ONLY): IPv4 on the same port too, so the
            # printed ws://127.0.0.1 URL answers.
            await web.TCPSite(runner, "0.0.0.0", self.port, reuse_address=True).start()
        gateway.domain_name = f"{self._public_host()}:{self.port}"

    def verifier(self) -> SigV4Verifier:
        """Who may sign calls to the runtime's signed APIs: the local credentials (`sigv4`), and
        with --iam each function's own."""
        return self._verifier

    def _invocable_functions(self) -> list[str]:
        """Functions other functions invoke through Lambda's API (the message reviewer)."""
        from dynamowave.local.config import REVIEW_FUNCTION

        return [name for name in self.config.functions if name == REVIEW_FUNCTION]

    def function_environment(self) -> dict[str, str]:
        from functions.chat.settings import ENV

        config = self.config
        assert self.resources is not None
        env = {key: os.environ.get(key, value) for key, value in QUIET_FUNCTION_ENV.items()}
        env.update(self.resources.function_environment(management_endpoint=self.management_endpoint))
        env.update(
            {
                # The janitor prunes by the same limits the gateway enforces.
                ENV.IDLE_TIMEOUT_SECONDS: str(max(1, round(config.idle_timeout))),
                ENV.MAX_CONNECTION_SECONDS: str(max(1, round(config.max_duration))),
                # The fan-out renews its records' visibility by the queue's own timeout.
                ENV.FANOUT_VISIBILITY_SECONDS: str(self.visibility_timeout),
                ENV.STAGE: config.stage,  # as the stack gives every function its stage
            }
        )
        if self._invocable_functions():
            from dynamowave.local.config import REVIEW_FUNCTION

            # boto3's lambda client in the functions calls this runtime's Invoke API.
            env["AWS_ENDPOINT_URL_LAMBDA"] = self._local_url()
            env[ENV.REVIEW_FUNCTION_ARN] = config.function_arn(REVIEW_FUNCTION)
        env.update(config.function_env)
        return env

    def function_environments(self) -> dict[str, dict[str, str]]:
        """Each function's own variables, built from the definition the stack builds them from
        (`functions.chat.settings.FUNCTION_RESOURCES`): its resources, then what every function
        gets (the tunables, observability defaults, ``--env``)."""
        from dynamowave.local.environments import function_environments

        # The local credentials are each function's own variables: `--iam` replaces them per function.
        variables = {**self.function_environment(), **LOCAL_CREDENTIALS.environment()}
        return function_environments(self.config.functions, variables)

    def _enforce_iam(self) -> None:
        """`--iam`: each function signs with its own credentials, and its calls are checked
        against the stack's grants (dynamowave/local/iam.py)."""
        from dynamowave.local.config import REVIEW_FUNCTION
        from dynamowave.local.iam import IamEnforcer, function_credentials, local_policies

        assert self.resources is not None
        config = self.config
        self._policy_arguments = dict(
            region=config.region,
            account_id=config.account_id,
            api_id=config.api_id,
            stage=config.stage,
            tables=self.resources.tables,
            queue_arns={
                "queue": self.resources.fanout_queue_arn,
                "dlq": self.resources.fanout_dlq_arn,
                "parked": self.resources.fanout_parked_arn,
            },
            function_arns={REVIEW_FUNCTION: config.function_arn(REVIEW_FUNCTION)},
            functions=list(config.functions),
        )
        policies = local_policies(**self._policy_arguments)
        principals = self._principals
        for name, env in self.runner.environments.items():
            if policies.governs(name):
                credentials = function_credentials(name)
                env.update(credentials.environment())
                env["AWS_SECURITY_TOKEN"] = credentials.token or ""
                self._verifier.add(credentials)
                principals[credentials.access_key] = name
        self.management.policies = policies
        self._iam = IamEnforcer(policies, principals)
        self._iam.install()

    async def _start_worker_pool(self) -> None:
        """`--fanout-workers N`: the fan-out's invocations run in N processes of their own
        (dynamowave/local/workers.py), each with the function's environment and `--iam` grants."""
        from dynamowave.local.environments import whole_environment
        from dynamowave.local.workers import WorkerPool, WorkerSpec

        config = self.config
        spec = WorkerSpec(
            function=config.function(FANOUT),
            environment=whole_environment(self.runner.environments.get(FANOUT, {})),
            management_prefix=self.management_endpoint + "/@connections/",
            credentials=self._verifier.known(),
            region=config.region,
            account_id=config.account_id,
            api_id=config.api_id,
            stage=config.stage,
            policies=self._policy_arguments,
            principals=dict(self._principals),
            record_calls=self.observe_worker_calls is not None,
        )
        pool = WorkerPool(
            spec,
            config.fanout_workers,
            self.management,
            policies=self._iam.policies if self._iam is not None else None,
            observe_calls=self.observe_worker_calls,
        )
        self.runner.pools[FANOUT] = pool
        await pool.start()

    def _configure_functions(self) -> None:
        import asyncio

        from dynamowave.local import environments
        from dynamowave.local.management_api import InProcessPosts

        os.environ.update(self.function_environment())
        # Each invocation sees its own function's variables only (dynamowave/local/environments.py).
        environments.install()
        self.runner.environments = self.function_environments()
        if self.config.iam:
            self._enforce_iam()
        # Before the functions' clients exist: botocore sessions pick it up when created.
        self._in_process_posts = InProcessPosts(
            self.management, self.management_endpoint, asyncio.get_running_loop()
        )
        self._in_process_posts.install()
        # Each AWS request names whose work it is: the embedded moto serves tenants fairly.
        fair_share.install()
        from functions.chat import deps

        deps.reset()

    def _start_event_sources(self) -> None:
        import boto3
        from botocore.config import Config

        from dynamowave.local.event_sources import Schedule, SqsEventSource, SqsMapping

        config = self.config
        assert self.resources is not None

        def sqs_for(function: str) -> Any:
            """An event source mapping reads its queue with the function's role (--iam: its
            own credentials, so the grant table decides whether it may)."""
            from dynamowave.local.iam import function_credentials

            own = function_credentials(function) if self._iam is not None else None
            return boto3.session.Session().client(
                "sqs",
                region_name=config.region,
                endpoint_url=self.aws_endpoint,
                aws_access_key_id=own.access_key if own else None,
                aws_secret_access_key=own.secret_key if own else None,
                aws_session_token=own.token if own else None,
                config=Config(
                    max_pool_connections=config.pollers + 8, read_timeout=config.poll_wait_seconds + 10
                ),
            )

        mapping = SqsMapping(
            function="fanout",
            queue_url=self.resources.fanout_queue_url,
            queue_arn=self.resources.fanout_queue_arn,
            region=config.region,
            batch_size=config.batch_size,
            batching_window=config.batching_window,
            pollers=config.pollers,
            wait_seconds=config.poll_wait_seconds,
        )
        self._sqs_source = SqsEventSource(mapping, self.runner, self.faults, sqs_for("fanout"))
        self._sqs_source.start()
        # Auto-redrive: the DLQ is the redriver's event source (faults are the fan-out's only).
        redrive = SqsMapping(
            function="redriver",
            queue_url=self.resources.fanout_dlq_url,
            queue_arn=self.resources.fanout_dlq_arn,
            region=config.region,
            batch_size=10,
            pollers=1,
            wait_seconds=config.poll_wait_seconds,
        )
        self._redrive_source = SqsEventSource(redrive, self.runner, FaultInjector(), sqs_for("redriver"))
        if config.auto_redrive:
            self._redrive_source.start()
        self._janitor = Schedule(
            self.runner,
            "janitor",
            interval=config.janitor_interval,
            rule_name=f"{config.prefix}-janitor",
            region=config.region,
            account_id=config.account_id,
        )
        self._janitor.start()

    def info(self) -> dict[str, Any]:
        resources = self.resources
        return {
            "ws_url": self.ws_url,
            "http_url": self.http_url,
            "management_endpoint": self.management_endpoint,
            "aws_endpoint": self.aws_endpoint,
            "region": self.config.region,
            "stage": self.config.stage,
            "tables": resources.tables if resources else {},
            "fanout_queue_url": resources.fanout_queue_url if resources else "",
            "fanout_dlq_url": resources.fanout_dlq_url if resources else "",
            "fanout_parked_url": resources.fanout_parked_url if resources else "",
            "connections": len(self.gateway.registry) if self.gateway else 0,
            "invocations": self.runner.invocations,
            "fanout_workers": self.runner.pools[FANOUT].info() if FANOUT in self.runner.pools else None,
            "throttled": self.gateway.throttled if self.gateway else 0,
            "faults": self.faults.config.to_json(),
            "injected_faults": dict(self.faults.injected),
        }

    async def stop(self) -> None:
        import asyncio

        if self._warmup is not None:
            await asyncio.gather(self._warmup, return_exceptions=True)
        if self.gateway is not None:
            await self.gateway.shutdown()
        if self._sqs_source is not None:
            await self._sqs_source.stop()
        if self._redrive_source is not None:
            await self._redrive_source.stop()
        for pool in self.runner.pools.values():
            await pool.stop()
        if self._janitor is not None:
            await self._janitor.stop()
        if self._app_runner is not None:
            await self._app_runner.cleanup()
        if self._moto is not None:
            await asyncio.to_thread(self._moto.stop)
        if self._in_process_posts is not None:
            self._in_process_posts.uninstall()
        if self._iam is not None:
            self._iam.uninstall()
        self.runner.shutdown()
