"""The deploy rehearsal (`make deploy-check`): template.yaml deploys in the emulator as declared, and broken
copies of it are caught. The broken copies are derived from the template, not from names written here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.deploy.rehearse import TEMPLATE, Report, load_template, main, rehearse


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _broken_copy(tmp_path: Path, sam: dict[str, Any]) -> Path:
    """The changed template, written beside links to the real code (CodeUri paths are relative to it)."""
    for entry in ("functions", "layers"):
        (tmp_path / entry).symlink_to(TEMPLATE.parent / entry)
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(sam, sort_keys=False))
    return path


def _functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


@pytest.fixture(scope="module")
def real() -> Report:
    return rehearse(TEMPLATE)


def test_the_template_deploys_as_declared(real: Report) -> None:
    # The real template, rehearsed as `make deploy-check` does: created, no check fails, and what moto
    # cannot create is named
    assert real.errors == []
    assert "CREATE_COMPLETE" in real.render()
    assert "AWS::ApiGatewayV2::Api" in real.not_emulated


def test_the_report_covers_every_queue_function_and_route(sam: dict[str, Any], real: Report) -> None:
    report = real

    passed = [f"{area}: {message}" for status, area, message in report.lines if status == "ok"]
    assert any(line.startswith("create stack:") and "CREATE_COMPLETE" in line for line in passed)
    for name, props in _functions(sam).items():
        assert any(line.startswith(f"function {name}: environment as declared") for line in passed), name
        told_of_table = ((props.get("Environment") or {}).get("Variables") or {}).get("BACKROOM_TABLE") != ""
        if told_of_table:  # not the console: it is told of no resource (an empty value), so granted none
            assert any(line.startswith(f"function {name}: policies name") for line in passed), name
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                route = f"route {event['Properties']['Method'].upper()} {event['Properties']['Path']}:"
                assert any(line.startswith(route) for line in passed), route
    queues = [k for k, v in sam["Resources"].items() if v["Type"] == "AWS::SQS::Queue"]
    for queue in queues:
        assert any(line.startswith(f"queue {queue}:") for line in passed), queue
    for kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue"):
        for logical in (k for k, v in sam["Resources"].items() if v["Type"] == kind):
            assert any(line.startswith("outputs:") and f"({logical})" in line for line in passed), logical


def test_the_rehearsal_bootstraps_the_created_stack_as_an_operator_would(real: Report) -> None:
    passed = [message for status, area, message in real.lines if status == "ok" and area == "bootstrap"]
    assert any("its password verifies" in line for line in passed), real.render()
    assert any(line.startswith("a second bootstrap is refused") for line in passed), real.render()


def test_a_stack_without_the_table_output_cannot_be_bootstrapped(tmp_path: Path, sam: dict[str, Any]) -> None:
    # Given a copy of the template whose outputs no longer name the table
    broken = copy.deepcopy(sam)
    del broken["Outputs"]["TableName"]

    report = rehearse(_broken_copy(tmp_path, broken))

    # Then the operator's bootstrap, which finds the table through the outputs, fails and says why
    assert "bootstrap: stack backroom-rehearsal has no output TableName: is it a Backroom stack?" in report.errors


def test_a_queue_without_its_dead_letter_queue_fails(
    tmp_path: Path, sam: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a copy of the template whose first queue with a dead-letter queue loses it
    broken = copy.deepcopy(sam)
    queue = next(
        k
        for k, v in broken["Resources"].items()
        if v["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in v.get("Properties", {})
    )
    del broken["Resources"][queue]["Properties"]["RedrivePolicy"]

    # When it is rehearsed, as `make deploy-check` would
    status = main(["--quiet", "--template", str(_broken_copy(tmp_path, broken))])

    # Then the rehearsal fails on that queue
    out = capsys.readouterr().out
    assert status == 1
    assert f"ERROR  queue {queue}: has no dead-letter queue" in out, out


def test_a_function_whose_policy_misses_its_table_fails(tmp_path: Path, sam: dict[str, Any]) -> None:
    # Given a copy where a function loses every policy that names the table
    broken = copy.deepcopy(sam)
    name, props = next(
        (k, p) for k, p in _functions(broken).items() if any("DynamoDB" in str(x) for x in p["Policies"])
    )
    props["Policies"] = [p for p in props["Policies"] if "DynamoDB" not in str(p)]

    report = rehearse(_broken_copy(tmp_path, broken))

    assert any(e.startswith(f"function {name}:") and "no policy names" in e for e in report.errors), report.errors


def test_a_function_without_its_handler_fails_before_translation(tmp_path: Path, sam: dict[str, Any]) -> None:
    broken = copy.deepcopy(sam)
    name, props = next(iter(_functions(broken).items()))
    props["Handler"] = "app.no_such_handler"

    report = rehearse(_broken_copy(tmp_path, broken))

    assert any(e.startswith(f"package {name}:") for e in report.errors), report.errors
