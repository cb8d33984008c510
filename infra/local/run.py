"""`make run`: the whole stack on this machine.

Starts the embedded emulator unless configuration names an endpoint (AWS_ENDPOINT_URL, or LOCALSTACK_HOST
as localstack-client reads it): AWS's DynamoDB Local on 127.0.0.1:8000 for DynamoDB (moto's where java or
the package is missing, or BACKROOM_LOCAL_DYNAMODB=moto), moto server on 127.0.0.1:4566 for the rest
(AWS_ENDPOINT_URL_DYNAMODB names another DynamoDB, as boto3 reads it); creates what template.yaml
declares and registers it as CloudFormation stack `backroom-local` (`--stack backroom-local`);
loads the demo data (not with --no-demo: an empty stack, for `backroom admin bootstrap`); serves the
API on 127.0.0.1:3000 through the real handlers; runs the worker handlers on their queues. Ctrl-C
stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from contextlib import suppress
from typing import Any

import boto3

from infra.local import dynamodb_local, emulator
from infra.local.emulator import Endpoints
from infra.local.lambdas import FunctionPool, ensure_layer_on_path
from infra.local.pollers import QueuePoller
from infra.local.provision import Stack, function_environment, provision, register, stack_outputs
from infra.local.template import Template

log = logging.getLogger("local.run")


def _defaults() -> None:
    """Dummy credentials and a region for the emulator; a real LocalStack accepts them too."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ["AWS_REGION"])
    # Handlers run here as in Lambda, minus X-Ray and CloudWatch metrics; their JSON logs stay quiet.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def prepare(
    endpoints: Endpoints, *, visibility: int | None = None, demo: bool = True, api_url: str | None = None
) -> tuple[Template, Stack]:
    """Create the template's resources, export the functions' environment, load the demo data. With the
    API's URL (the gateway runs here), register the stack as CloudFormation stack `backroom-local`."""
    template = Template.load()
    session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
    stack = provision(session, endpoints, template, visibility=visibility)
    if api_url is not None:
        register(session, endpoints.of("cloudformation"), stack_outputs(template, stack, api_url))
    os.environ.update(function_environment(template, stack))
    os.environ.update(endpoints.env())
    ensure_layer_on_path()
    if demo:
        from infra.demo.load import load_demo

        load_demo()
    return template, stack


def start_pollers(
    template: Template, stack: Stack, pools: dict[str, FunctionPool], stop: threading.Event, per_queue: int
) -> list[threading.Thread]:
    sqs = boto3.session.Session().client("sqs")  # where configuration (prepare's endpoints) says
    threads = []
    for source in template.queue_sources():
        poller = QueuePoller(
            source,
            pools[source.function],
            sqs,
            stack.queue_urls[source.queue],
            stack.attrs[(source.queue, "Arn")],
            os.environ["AWS_REGION"],
        )
        for i in range(per_queue):
            thread = threading.Thread(target=poller.run, args=(stop,), name=f"poller-{source.queue}-{i}", daemon=True)
            thread.start()
            threads.append(thread)
    return threads


def _endpoints(children: list[subprocess.Popen[bytes]]) -> Endpoints:
    """The endpoints configuration names, or the embedded emulator's: the children started go to `children`."""
    configured = emulator.configured_endpoint(dict(os.environ))
    dynamodb = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if configured is not None:
        log.info("using the AWS endpoint from configuration: %s", configured)
        return Endpoints(aws=configured, dynamodb=dynamodb)
    jvm = None
    if dynamodb is None and (why_not := dynamodb_local.unavailable()) is not None:
        log.info("DynamoDB on moto server, not DynamoDB Local: %s", why_not)
    elif dynamodb is None:
        dynamodb = f"http://{emulator.DEFAULT_HOST}:{dynamodb_local.DEFAULT_PORT}"
        if dynamodb_local.answers(dynamodb):
            log.info("reusing the DynamoDB already answering on %s", dynamodb)
        else:  # the JVM starts while moto server does
            jvm = dynamodb_local.launch(dynamodb_local.DEFAULT_PORT)
            children.append(jvm)
    aws = f"http://{emulator.DEFAULT_HOST}:{emulator.DEFAULT_PORT}"
    if emulator.answers(aws):
        log.info("reusing the emulator already answering on %s", aws)
    else:
        children.append(emulator.start_moto())
    if jvm is not None and dynamodb is not None:
        dynamodb_local.wait(jvm, dynamodb)
    endpoints = Endpoints(aws=aws, dynamodb=dynamodb)
    log.info("moto server on %s; DynamoDB: %s", aws, endpoints.engine)
    log.info("the CLI reaches this stack (--stack backroom-local) with: export %s", _exports(endpoints))
    return endpoints


def _exports(endpoints: Endpoints) -> str:
    return " ".join(f"{key}={value}" for key, value in endpoints.env().items())


def write_openapi(path: str) -> int:
    """`make openapi`: the document `/openapi.json` serves, from the handlers' own routes, without AWS."""
    import json
    from pathlib import Path

    from infra.local.gateway import merged_openapi

    ensure_layer_on_path()
    pools = {name: FunctionPool(f) for name, f in Template.load().functions().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(merged_openapi(pools), indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BACKROOM_PORT", "3000")))
    parser.add_argument("--no-gateway", action="store_true", help="run only the workers")
    parser.add_argument("--no-workers", action="store_true", help="run only the API")
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo data")
    parser.add_argument(
        "--pollers", type=int, default=int(os.environ.get("BACKROOM_POLLERS", "2")), help="concurrent pollers per queue"
    )
    parser.add_argument("--openapi", metavar="FILE", help="write the OpenAPI document to FILE and exit")
    args = parser.parse_args(argv)
    if args.openapi:
        return write_openapi(args.openapi)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)-16s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _defaults()

    children: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    server: Any = None
    try:
        endpoints = _endpoints(children)
        visibility = (
            int(os.environ["BACKROOM_VISIBILITY_TIMEOUT"]) if os.environ.get("BACKROOM_VISIBILITY_TIMEOUT") else None
        )
        api_url = None if args.no_gateway else f"http://{args.host}:{args.port}"
        demo = not args.no_demo and not args.no_gateway
        template, stack = prepare(endpoints, visibility=visibility, demo=demo, api_url=api_url)
        pools = {name: FunctionPool(f) for name, f in template.functions().items()}
        if not args.no_workers:
            start_pollers(template, stack, pools, stop, args.pollers)
            log.info("workers polling %s", ", ".join(s.queue for s in template.queue_sources()))
        if not args.no_gateway:
            from infra.local.gateway import Gateway, merged_openapi

            server = Gateway(template.routes(), pools, merged_openapi(pools)).serve(args.host, args.port)
            threading.Thread(target=server.serve_forever, name="gateway", daemon=True).start()
            log.info("Backroom API on http://%s:%d (OpenAPI at /openapi.json); Ctrl-C stops", args.host, args.port)
        for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a supervisor's stop
            signal.signal(signum, lambda *_: stop.set())
        with suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        stop.set()
        if server is not None:
            server.shutdown()
        for child in children:
            emulator.stop(child)
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
