"""The console's function serves its few files and nothing else, each with its type and a strict policy."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.lambdas import FunctionPool
from infra.local.template import Template


@pytest.fixture(scope="module")
def console() -> FunctionPool:
    return FunctionPool(Template.load().functions()["ConsoleFunction"], size=1)


def get(pool: FunctionPool, route: str, proxy: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"routeKey": route, "rawPath": "/console" + (f"/{proxy}" if proxy else "")}
    if proxy is not None:
        event["pathParameters"] = {"proxy": proxy}
    return dict(pool.invoke(event))


def test_the_page_and_its_files_are_served_with_their_types(console: FunctionPool) -> None:
    page = get(console, "GET /console")
    assert page["statusCode"] == 200 and page["headers"]["content-type"].startswith("text/html")
    assert 'src="console/console.js"' in page["body"]
    for name, kind in (
        ("console.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("console.css", "text/css"),
    ):
        answer = get(console, "GET /console/{proxy+}", name)
        assert answer["statusCode"] == 200 and answer["headers"]["content-type"].startswith(kind), name


def test_every_answer_carries_a_policy_that_runs_only_the_pages_own_scripts(console: FunctionPool) -> None:
    for answer in (get(console, "GET /console"), get(console, "GET /console/{proxy+}", "nope.js")):
        policy = answer["headers"]["content-security-policy"]
        assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe" not in policy
        assert answer["headers"]["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "proxy", ["../app.py", "static/console.js", "..%2Fapp.py", "/etc/passwd", "app.py", "index.html", "console.js/"]
)
def test_no_path_outside_the_files_it_names_is_served(console: FunctionPool, proxy: str) -> None:
    answer = get(console, "GET /console/{proxy+}", proxy)
    assert answer["statusCode"] == 404 and answer["body"] == "Not Found"


def test_the_policy_lets_the_page_reach_only_the_files_storage_configuration_names(
    console: FunctionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On AWS: the bucket's origins, as template.yaml gives them; no wildcard and nothing else gets through.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    regional, default = "https://files-1.s3.eu-west-1.amazonaws.com", "https://files-1.s3.amazonaws.com"
    monkeypatch.setenv("BACKROOM_FILES_ORIGINS", f"{regional} {default} * https://*.amazonaws.com 'unsafe-eval'")
    policy = get(console, "GET /console")["headers"]["content-security-policy"]
    assert f"connect-src 'self' {regional} {default};" in policy
    assert "*" not in policy and "unsafe" not in policy
    # Where configuration names an S3 endpoint (the local stack, LocalStack), its origin instead.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566/")
    assert (
        "connect-src 'self' http://127.0.0.1:4566;"
        in get(console, "GET /console")["headers"]["content-security-policy"]
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.test:8443")
    policy = get(console, "GET /console/{proxy+}", "console.js")["headers"]["content-security-policy"]
    assert "connect-src 'self' https://s3.example.test:8443;" in policy
