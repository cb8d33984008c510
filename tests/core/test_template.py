"""template.yaml and the code agree: every route and handler it declares exists, and no route is undeclared."""

from __future__ import annotations

import pytest

from infra.local.lambdas import FunctionPool, ensure_layer_on_path
from infra.local.provision import Stack
from infra.local.template import Template


def test_every_template_route_is_served_by_its_function_and_no_other() -> None:
    ensure_layer_on_path()
    template = Template.load()
    pools = {name: FunctionPool(f, size=1) for name, f in template.functions().items()}
    routes = template.routes()
    declared = {(r.function, r.method, r.path) for r in routes if r.method != "ANY"}
    # An ANY route takes every method of its path the code serves and no route of its own names (the
    # Tasks dialect's 405s); a `{proxy+}` one takes the paths no route takes (the runtime's 404).
    any_paths = {(r.function, r.path) for r in routes if r.method == "ANY" and "+}" not in r.path}
    catch_all = {r.function for r in routes if r.method == "ANY" and "+}" in r.path}

    in_code = set()
    for name, pool in pools.items():
        app = pool.app()
        if app is None:  # an SQS worker: no routes; or a page (the console): the routes it names
            in_code |= {(name, *key.split(" ", 1)) for key in getattr(pool.module, "PAGES", ())}
            continue
        schema = app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
        for path, item in schema["paths"].items():
            for method in item:
                if method in ("get", "post", "put", "patch", "delete"):
                    in_code.add((name, method.upper(), path))

    assert declared | {k for k in in_code if (k[0], k[2]) in any_paths} == in_code
    assert any_paths <= {(name, path) for name, _, path in in_code}  # each ANY route's path is served
    assert catch_all <= {name for name, _, _ in in_code}  # by a function that answers HTTP


def test_every_function_has_its_handler() -> None:
    for function in Template.load().functions().values():
        module, _, attr = function.handler.rpartition(".")
        source = (function.code_uri / f"{module}.py").read_text()
        assert f"def {attr}(" in source, f"{function.name}: {function.handler} is missing"


def test_every_queue_has_a_dead_letter_queue_and_workers_report_partial_failures() -> None:
    template = Template.load()
    queues = template.of_type("AWS::SQS::Queue")
    dead_letter = {
        p["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for p in queues.values() if "RedrivePolicy" in p
    }
    for name, props in queues.items():
        assert name in dead_letter or "RedrivePolicy" in props, f"{name} has no dead-letter queue"
    functions = template.functions()
    for source in template.queue_sources():
        assert source.partial_failures
        visibility = int(queues[source.queue]["VisibilityTimeout"])
        assert visibility >= 6 * functions[source.function].timeout


def test_a_jobs_chunks_each_get_a_worker_invocation_of_their_own() -> None:
    # A worker given a batch runs its messages one after another: with batches of five, a 5,000-row
    # import's five chunks ran in one invocation (and on one of the local stack's pollers), not at once.
    (jobs,) = [s for s in Template.load().queue_sources() if s.queue == "JobsQueue"]
    assert jobs.batch_size == 1


def test_the_local_stack_resolves_the_templates_subs_and_refuses_one_it_cannot() -> None:
    stack = Stack(refs={"FilesBucket": "files", "AWS::Region": "eu-west-1", "AWS::URLSuffix": "amazonaws.com"})
    sub = {"Fn::Sub": "https://${FilesBucket}.s3.${AWS::Region}.${AWS::URLSuffix}"}
    assert stack.resolve(sub) == "https://files.s3.eu-west-1.amazonaws.com"
    for unknown in ("${Api}.example", "${FilesBucket.Arn}", "${!Literal}", ["${X}", {"X": "y"}]):
        with pytest.raises(ValueError, match="local stack"):
            stack.resolve({"Fn::Sub": unknown})
