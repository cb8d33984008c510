"""Benchmark: each function's cold init beside the floor every handler pays, as a ratio (goal: at most 1.3).

Cold init is what Lambda's Init Duration counts: a fresh interpreter, from its start to the end of
the import of `functions/<name>/app.py`. The module is loaded the way the local stack loads it
(`infra/local/lambdas.py`: from its file, the layer's `python/` folder on the path, the function's
folder first as Lambda's /var/task), with the environment the local stack gives the functions
(template.yaml's Globals and function variables, dummy credentials, `POWERTOOLS_TRACE_DISABLED` as
`make run` sets it), and like Lambda without writing bytecode: the layer's modules are compiled as
they are imported unless a `__pycache__` is already there. No emulator: an import touches no AWS.

The floor is the same fresh interpreter running `import boto3` and creating one client, which every
handler pays. The framework is the floor plus what every HTTP function of this design is built on,
with nothing of Backroom: powertools' HTTP resolver with OpenAPI validation, one route with a pydantic
body, a Logger; the `/frame` column is each function against it (what Backroom itself adds). Each is
timed from the parent (the clock read before the spawn, against the clock the child prints once its
import is done) BENCH_COLDSTART_RUNS times (default 7), functions and floors taking turns so that
load from elsewhere on the machine falls on all alike; the table shows medians.

A second column times the same import with tracing on, as in AWS (`Tracing: Active`: the X-Ray SDK
loads; `LAMBDA_TASK_ROOT` set, no `POWERTOOLS_TRACE_DISABLED`): what tracing costs where it runs.
A third, with BENCH_COLDSTART_COMPILED=1, imports with every module's bytecode cached (a pycache
prefix in a temporary folder, filled by a first run): what shipping `.pyc` files in the layer would save.

    make bench                        # with the other benches (this one under a minute)
    python -m infra.bench.coldstart   # alone
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.local.lambdas import LAYER
from infra.local.template import ROOT, Template

RUNS = int(os.environ.get("BENCH_COLDSTART_RUNS", "7"))
COMPILED = os.environ.get("BENCH_COLDSTART_COMPILED", "") not in ("", "0")
GOAL = 1.3
REGION = "us-east-1"

# The child prints the wall clock once its import is done; the parent read the clock before the spawn.
FLOOR = (
    f"import boto3; boto3.session.Session().client('dynamodb', region_name={REGION!r}); import time; print(time.time())"
)
# The framework every HTTP function is built on, with nothing of Backroom: the floor, then powertools'
# HTTP resolver with its OpenAPI validation (as `dialect_app` makes it), one route with a pydantic body,
# and powertools' Logger. What no function of this design can start under.
FRAMEWORK = f"""import boto3; boto3.session.Session().client('dynamodb', region_name={REGION!r})
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from pydantic import BaseModel
logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)
class Body(BaseModel):
    name: str
@app.post("/things")
def create(body: Body) -> Body:
    return body
import time; print(time.time())"""
IMPORT = """import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
print(time.time())
"""


def base_env() -> dict[str, str]:
    """What every child gets: no PYTHONPATH nor endpoint from this shell, dummy credentials, no bytecode written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON", "LOCALSTACK"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def function_env(variables: dict[str, object], *, traced: bool) -> dict[str, str]:
    """The function's variables (references the stack would resolve get a placeholder) and the local stack's."""
    env = base_env()
    for key, value in variables.items():
        env[key] = value if isinstance(value, str) else f"bench-{key.lower()}"
    env.update({"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"})
    if traced:
        env["LAMBDA_TASK_ROOT"] = "/var/task"  # powertools traces only in Lambda
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def once(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from before the spawn to the child's clock after its import."""
    started = time.time()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1]) - started


def main() -> None:
    functions = Template.load().functions()
    names = sorted(functions)
    cases: dict[str, tuple[list[str], dict[str, str], Path]] = {
        "floor": ([sys.executable, "-c", FLOOR], base_env(), ROOT),
        "framework": ([sys.executable, "-c", FRAMEWORK], {**base_env(), "POWERTOOLS_TRACE_DISABLED": "true"}, ROOT),
    }
    columns = ["local", "traced", *(["compiled"] if COMPILED else [])]
    prefix = tempfile.mkdtemp(prefix="bench-pyc-") if COMPILED else ""
    for name in names:
        function = functions[name]
        module = function.handler.rpartition(".")[0].replace(".", "/") + ".py"
        path = Path(function.code_uri) / module
        search = f"{function.code_uri}{os.pathsep}{LAYER}"  # /var/task, then the layer's /opt/python
        for column in columns:
            env = {**function_env(function.environment, traced=column == "traced"), "PYTHONPATH": search}
            if column == "compiled":
                env.pop("PYTHONDONTWRITEBYTECODE")
                env["PYTHONPYCACHEPREFIX"] = prefix
            cases[f"{name} {column}"] = ([sys.executable, "-c", IMPORT, str(path)], env, Path(function.code_uri))
    if COMPILED:
        for key, (args, env, cwd) in cases.items():
            if key.endswith(" compiled"):
                once(args, env, cwd)  # fills the pycache prefix
    times: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(RUNS):
        for key, (args, env, cwd) in cases.items():
            times[key].append(once(args, env, cwd))
    median = {key: statistics.median(values) for key, values in times.items()}
    floor = median["floor"]
    framework = median["framework"]

    print(f"\nCold init: a fresh interpreter to its function's module imported, median of {RUNS} runs (seconds)")
    print(f"floor (import boto3 + one client): {floor:.3f} s; goal: local ratio at most {GOAL}")
    print(
        f"framework (the floor, powertools' validating HTTP resolver, one pydantic route, Logger): "
        f"{framework:.3f} s, {framework / floor:.2f} of the floor"
    )
    header = f"{'function':<24}{'local':>8}{'ratio':>7}{'/frame':>7}{'traced':>9}{'ratio':>7}"
    if COMPILED:
        header += f"{'compiled':>10}{'ratio':>7}"
    print(header)
    worst = 0.0
    for name in names:
        line = f"{name:<24}"
        for column in columns:
            value = median[f"{name} {column}"]
            line += f"{value:>{10 if column == 'compiled' else 8 if column == 'local' else 9}.3f}{value / floor:>7.2f}"
            if column == "local":
                line += f"{value / framework:>7.2f}"
        worst = max(worst, median[f"{name} local"] / floor)
        print(line)
    verdict = "met" if worst <= GOAL else "not met"
    print(f"worst local ratio {worst:.2f}: goal {verdict} (/frame: the same time against the framework alone)")


if __name__ == "__main__":
    main()
