"""Schemathesis against a live server: every operation of ``/api/schema`` fuzzed over HTTP (issue 5 "Done when").

Starts a real web process (daphne, as in the distributed run mode) on a scratch PostgreSQL database, migrates it,
seeds demo data (``seed_demo --with-media``), creates an API key and turns key auth on, then, for every operation
of the OpenAPI document the server publishes, sends Hypothesis-generated requests — valid ones (positive) and
invalid ones (negative), most of them with ids that exist where the list endpoints have some — and runs the
response checks:

- ``not_a_server_error`` (a 5xx is a server error),
- ``status_code_conformance`` (the status is documented for the operation),
- ``content_type_conformance`` (the Content-Type is documented for that status),
- ``response_schema_conformance`` (the body validates against the documented schema),
- ``response_headers_conformance`` (documented headers are present and valid).

Throttling is off (``THROTTLE_ENABLED=false``) so that 429s do not hide results. Destructive operations that
would wipe the seeded data run last (see ``RUN_LAST``); none is skipped.

    .venv/bin/python -m bench.schema_fuzz                      # scratch DB hsi_schema_fuzz, 25+10 examples/operation
    .venv/bin/python -m bench.schema_fuzz --examples 100 --negative 50
    .venv/bin/python -m bench.schema_fuzz --base-url http://127.0.0.1:8000 --api-key hsi_...   # a running server
    .venv/bin/python -m bench.schema_fuzz --only /api/cameras   # operations whose path contains this text

Prints: operations tested, examples sent, server errors, schema violations, then every failing operation with
its failure kinds, counts and one reproducing request each. Exits 0 (a report) unless ``--strict``, which exits 1
when any failure was found. ``fuzz()`` is what ``tests/e2e/test_openapi_fuzz.py`` runs against its own server.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
# A 5xx is a "server error"; a response failing any other check is one "schema violation" (counted once per
# response, whatever the number of checks it fails).

# (method, path prefix): operations that wipe or reset what the others need (the seeded rows, the DLQ): they
# run after every other operation, in this order, so their effect cannot turn later operations into 404s.
RUN_LAST: tuple[tuple[str, str], ...] = (
    ("DELETE", "/api/dlq"),
    ("POST", "/api/system/cleanup"),
    ("POST", "/api/admin/seed"),
    ("POST", "/api/admin/clear"),
)
# (method, path regex, reason): operations not fuzzed at all. Keep empty unless an operation cannot be run
# against a test install (it reaches outside the machine, or takes the install down).
EXCLUDED: tuple[tuple[str, str, str], ...] = ()

# Responses the application never produced, tolerated with the reason (counted and printed, never a violation):
# (method, path regex, reason, predicate on the response).
TOLERATED: tuple[tuple[str, str, str, object], ...] = (
    (
        "POST",
        r"/uploads/?$",
        "Twisted under daphne parses multipart POST bodies itself (twisted.web.http.Request.requestReceived, "
        "parsePOSTFormSubmission=True) and answers one it cannot parse with a bare '400 Bad Request' (no headers, "
        "no body) before the request reaches Django",
        lambda r: r.status_code == 400 and not r.content and "x-request-id" not in r.headers,
    ),
)

# Path parameters whose known values (ids that exist) come from these list endpoints' ``items[*].id``.
ID_SOURCES: dict[str, tuple[str, ...]] = {
    "camera_id": ("/api/cameras",),
    "event_id": ("/api/events",),
    "detection_id": ("/api/detections",),
    "zone_id": ("/api/zones",),
    "alert_id": ("/api/alerts",),
    "rule_id": ("/api/alerts/rules",),
    "channel_id": ("/api/notifications/channels",),
    "period_id": ("/api/notifications/quiet-hours",),
    "delivery_id": ("/api/notifications/deliveries",),
    "job_id": ("/api/dlq",),
    "entity_id": ("/api/entities",),
}
KNOWN_IDS_PER_PARAMETER = 3
METHOD_ORDER = {"GET": 0, "HEAD": 1, "OPTIONS": 2, "POST": 3, "PUT": 4, "PATCH": 5, "DELETE": 6}


# --- results -------------------------------------------------------------------------------------------------


@dataclass
class OperationResult:
    label: str
    examples: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0
    schema_violations: int = 0
    failures: Counter = field(default_factory=Counter)  # "check: title" -> count
    samples: dict[str, str] = field(default_factory=dict)  # "check: title" -> one reproduction
    errors: list[str] = field(default_factory=list)  # harness/transport errors (connection refused, ...)
    tolerated: Counter = field(default_factory=Counter)  # reason -> count (see TOLERATED)
    request_seconds: float = 0.0  # waiting for the server (the rest of the run is generation and checks)

    @property
    def failed(self) -> bool:
        return bool(self.server_errors or self.schema_violations or self.errors)


@dataclass
class FuzzReport:
    operations: list[OperationResult]
    skipped: list[tuple[str, str]]  # (label, reason)
    seconds: float

    @property
    def examples(self) -> int:
        return sum(o.examples for o in self.operations)

    @property
    def server_errors(self) -> int:
        return sum(o.server_errors for o in self.operations)

    @property
    def schema_violations(self) -> int:
        return sum(o.schema_violations for o in self.operations)

    @property
    def harness_errors(self) -> int:
        return sum(len(o.errors) for o in self.operations)

    @property
    def tolerated(self) -> int:
        return sum(sum(o.tolerated.values()) for o in self.operations)

    @property
    def failing(self) -> list[OperationResult]:
        return [o for o in self.operations if o.failed]

    def format(self, *, samples: bool = True) -> str:
        lines = [
            f"operations tested: {len(self.operations)}" + (f" (skipped {len(self.skipped)})" if self.skipped else ""),
            f"examples:          {self.examples}",
            f"server errors:     {self.server_errors}",
            f"schema violations: {self.schema_violations}",
            f"harness errors:    {self.harness_errors}",
            f"tolerated:         {self.tolerated} (responses the application never produced, see TOLERATED)",
            f"time:              {self.seconds:.1f} s"
            f" ({sum(o.request_seconds for o in self.operations):.1f} s waiting for responses)",
        ]
        for label, reason in self.skipped:
            lines.append(f"  skipped {label}: {reason}")
        for result in self.operations:
            for reason, count in result.tolerated.items():
                lines.append(f"  tolerated {count} × {result.label}: {reason}")
        failing = self.failing
        if failing:
            lines.append(f"failing operations: {len(failing)}")
        for result in failing:
            statuses = ", ".join(f"{status}×{n}" for status, n in sorted(result.statuses.items()))
            lines.append(f"- {result.label}  ({result.examples} examples; statuses {statuses})")
            for kind, count in result.failures.most_common():
                lines.append(f"    {count:>4} × {kind}")
                if samples and kind in result.samples:
                    lines.extend(f"           {line}" for line in result.samples[kind].splitlines())
            for error in result.errors[:3]:
                lines.append(f"    harness error: {error}")
        return "\n".join(lines)


# --- fuzzing -------------------------------------------------------------------------------------------------


def _run_position(method: str, path: str) -> tuple[int, int, str]:
    for index, (last_method, prefix) in enumerate(RUN_LAST):
        if method == last_method and path.rstrip("/").startswith(prefix):
            return (1, index, path)
    return (0, METHOD_ORDER.get(method, 9), path)


def _excluded(method: str, path: str) -> str | None:
    for excluded_method, pattern, reason in EXCLUDED:
        if method == excluded_method and re.search(pattern, path):
            return reason
    return None


def known_ids(session, base_url: str, headers: dict[str, str]) -> dict[str, list[str]]:
    """Ids that exist, per path parameter name, read from the list endpoints (missing endpoints are skipped)."""
    found: dict[str, list[str]] = {}
    for parameter, sources in ID_SOURCES.items():
        values: list[str] = []
        for source in sources:
            try:
                response = session.get(f"{base_url}{source}", params={"limit": 20}, headers=headers, timeout=30)
            except Exception:  # noqa: BLE001 - an endpoint that does not exist yet or fails is just no source
                continue
            if response.status_code != 200:
                continue
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                values += [str(item["id"]) for item in response.json().get("items", []) if "id" in item]
        if values:
            found[parameter] = values[:KNOWN_IDS_PER_PARAMETER]
    return found


def _describe_failure(failure, case, response) -> tuple[bool, str, str]:
    """``(is_server_error, kind, sample)``: the kind groups failures of one cause, the sample reproduces one."""
    from schemathesis.core.failures import ServerError

    server_error = isinstance(failure, ServerError)
    title = getattr(failure, "title", "") or type(failure).__name__
    message = (getattr(failure, "message", "") or "").strip()
    first_line = message.splitlines()[0][:160] if message else ""
    kind = f"{type(failure).__name__}: {title}" + (f" — {first_line}" if first_line and not server_error else "")
    try:
        curl = case.as_curl_command()
    except Exception:  # noqa: BLE001 - a reproduction is a courtesy
        curl = f"{case.method} {case.formatted_path}"
    content_type = ", ".join(response.headers.get("content-type", []))
    sample = f"{curl}\n-> {response.status_code} {content_type}: {response.text[:300]}"
    if message and not server_error:
        sample += "\n" + "\n".join(message.splitlines()[:8])
    return server_error, kind, sample


def _other_inputs(operation) -> bool:
    """Whether the operation takes anything besides its path parameters (query, headers, cookies, body)."""
    return any(len(part) for part in (operation.query, operation.headers, operation.cookies, operation.body))


def _any_segment(parameter) -> bool:
    """A path parameter that any URL segment satisfies (``[^/]+``): its only negations contain ``/`` or are
    empty, which change the route rather than the value, so Hypothesis would only burn draws looking for one."""
    schema = (getattr(parameter, "definition", None) or {}).get("schema") or {}
    return schema.get("type", "string") == "string" and schema.get("pattern") in (None, "^[^/]+$", "^.+$")


def _strategy(operation, mode, ids: dict[str, list[str]]):
    """Generated cases; when every path parameter has known ids, also cases with ids that exist (past the 404).

    Negative cases with known ids are only drawn when something else can be made invalid (the query or the body):
    with every input fixed there is nothing to negate, and Hypothesis would only burn draws looking for one.
    Returns None when the mode cannot produce a case (nothing at all to negate).
    """
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    names = [parameter.name for parameter in operation.path_parameters]
    negative = mode == GenerationMode.NEGATIVE
    if negative and not _other_inputs(operation) and all(_any_segment(p) for p in operation.path_parameters):
        return None
    strategies = [operation.as_strategy(generation_mode=mode)]
    if names and all(name in ids for name in names) and (not negative or _other_inputs(operation)):
        rounds = max(len(ids[name]) for name in names)
        strategies += [
            operation.as_strategy(
                generation_mode=mode, path_parameters={name: ids[name][i % len(ids[name])] for name in names}
            )
            for i in range(rounds)
        ]
    return st.one_of(strategies)


def _fuzz_operation(
    operation, outcome: OperationResult, *, base_url, session, headers, ids, checks, examples, negative, seed
) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from schemathesis import GenerationMode
    from schemathesis.core.failures import Failure, FailureGroup

    method = operation.method.upper()
    tolerated = [
        (reason, predicate)
        for tolerated_method, pattern, reason, predicate in TOLERATED
        if tolerated_method == method and re.search(pattern, operation.path)
    ]

    def send(case) -> None:
        outcome.examples += 1
        sent = time.perf_counter()
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except Exception as exc:  # noqa: BLE001 - transport errors are reported, not raised
            outcome.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        finally:
            outcome.request_seconds += time.perf_counter() - sent
        outcome.statuses[response.status_code] += 1
        for reason, predicate in tolerated:
            if predicate(response):
                outcome.tolerated[reason] += 1
                return
        if response.status_code >= 500:
            outcome.server_errors += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
            return
        except FailureGroup as group:
            failures = list(group.exceptions)
        except Failure as failure:
            failures = [failure]
        except Exception as exc:  # noqa: BLE001
            outcome.errors.append(f"validation crashed: {type(exc).__name__}: {exc}"[:300])
            return
        violated = False
        for failure in failures:
            server_error, kind, sample = _describe_failure(failure, case, response)
            outcome.failures[kind] += 1
            outcome.samples.setdefault(kind, sample)
            violated = violated or not server_error
        outcome.schema_violations += int(violated)

    for mode, count in ((GenerationMode.POSITIVE, examples), (GenerationMode.NEGATIVE, negative)):
        if count <= 0:
            continue
        try:
            strategy = _strategy(operation, mode, ids)
        except Exception as exc:  # noqa: BLE001 - a schema schemathesis cannot generate from
            outcome.errors.append(f"{mode.value} strategy: {type(exc).__name__}: {exc}"[:300])
            continue
        if strategy is None:
            continue
        runner = settings(
            max_examples=count,
            deadline=None,
            database=None,
            derandomize=seed is None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )(given(case=strategy)(send))
        if seed is not None:
            runner = hypothesis_seed(seed)(runner)
        try:
            runner()
        except Exception as exc:  # noqa: BLE001 - Unsatisfiable and the like: the operation is still reported
            if "Unsatisfiable" not in type(exc).__name__:
                outcome.errors.append(f"{mode.value} run: {type(exc).__name__}: {exc}"[:300])


def fuzz(
    base_url: str,
    *,
    api_key: str | None = None,
    examples: int = 25,
    negative: int = 10,
    only: str | None = None,
    seed: int | None = None,
    deadline_seconds: float | None = None,
    log=None,
) -> FuzzReport:
    """Fuzz every operation of ``{base_url}/api/schema`` against ``base_url``; returns the report.

    ``examples`` positive and ``negative`` negative examples per operation (Hypothesis may stop earlier when an
    operation has fewer distinct inputs). ``deadline_seconds`` bounds the whole run: operations not reached by
    then are reported as skipped.
    """
    import requests
    import schemathesis
    from schemathesis.checks import load_all_checks

    load_all_checks()
    from schemathesis.checks import CHECKS

    checks = [CHECKS.get_one(name) for name in CHECK_NAMES]
    headers = {"X-API-Key": api_key} if api_key else {}
    started = time.monotonic()
    session = requests.Session()
    schema = schemathesis.openapi.from_url(f"{base_url}/api/schema?format=json", headers=headers, timeout=60)
    ids = known_ids(session, base_url, headers)

    operations = []
    skipped: list[tuple[str, str]] = []
    for result in schema.get_all_operations():
        try:
            operation = result.ok()
        except Exception as exc:  # noqa: BLE001 - an operation schemathesis cannot read is a schema problem
            skipped.append(("(unreadable operation)", f"{type(exc).__name__}: {exc}"[:300]))
            continue
        label = f"{operation.method.upper()} {operation.path}"
        if only and only not in operation.path:
            continue
        reason = _excluded(operation.method.upper(), operation.path)
        if reason:
            skipped.append((label, reason))
            continue
        operations.append(operation)
    operations.sort(key=lambda op: _run_position(op.method.upper(), op.path))

    results: list[OperationResult] = []
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        if deadline_seconds is not None and time.monotonic() - started > deadline_seconds:
            skipped.append((label, f"run deadline of {deadline_seconds:.0f} s reached"))
            continue
        outcome = OperationResult(label=label)
        results.append(outcome)
        if log:
            log(f"{label} ...")
        _fuzz_operation(
            operation,
            outcome,
            base_url=base_url,
            session=session,
            headers=headers,
            ids=ids,
            checks=checks,
            examples=examples,
            negative=negative,
            seed=seed,
        )
    session.close()
    return FuzzReport(operations=results, skipped=skipped, seconds=time.monotonic() - started)


# --- a live server of its own --------------------------------------------------------------------------------


def _manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def _connections(db_base: str, db_name: str) -> int:
    """Sessions on the scratch database: the web process's idle persistent connections show up here."""
    import psycopg

    from bench._common import database_url

    with psycopg.connect(database_url(db_base, "postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db_name,)).fetchone()
    return int(row[0])


@contextlib.contextmanager
def live_server(db_base: str, db_name: str, redis_url: str, *, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A daphne web process on a fresh scratch database with demo data; yields ``(base_url, api_key)``."""
    from bench._common import database_url, drop_database, recreate_database
    from tests.e2e.processes import Deployment

    url = database_url(db_base, db_name)
    recreate_database(db_base, db_name)
    workdir = Path(tempfile.mkdtemp(prefix="hsi-schema-fuzz-"))
    (workdir / "foscam").mkdir()
    (workdir / "data").mkdir()
    deployment = Deployment(
        database_url=url,
        redis_url=redis_url,
        workdir=workdir,
        foscam_root=workdir / "foscam",
        data_dir=workdir / "data",
        settings={"API_KEY_ENABLED": "true", "THROTTLE_ENABLED": "false", "LOG_LEVEL": "warning"},
        key_prefix=f"hsi-fuzz:{uuid.uuid4().hex[:8]}",
    )
    env = deployment.environment()
    try:
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "seed_demo", "--cameras", "3", "--events", "30", "--with-media")
        api_key = _manage(env, "create_api_key", "schema-fuzz").strip()
        web = deployment.web()
        yield web.base_url, api_key
        print(f"PostgreSQL connections open on {db_name} after the run: {_connections(db_base, db_name)}")
    finally:
        deployment.stop_all()
        deployment.delete_redis_keys()
        if not keep:
            drop_database(db_base, db_name)
        print(f"server logs: {workdir / 'logs'}", file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="fuzz this running server instead of starting one")
    parser.add_argument("--api-key", help="X-API-Key for --base-url")
    parser.add_argument("--examples", type=int, default=25, help="positive examples per operation (25)")
    parser.add_argument("--negative", type=int, default=10, help="negative examples per operation (10)")
    parser.add_argument("--only", help="only operations whose path contains this text")
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: derandomized, same inputs every run)")
    parser.add_argument("--db-base", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="hsi_schema_fuzz")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--quiet", action="store_true", help="no per-operation progress lines")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any failure was found")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    options = {"examples": args.examples, "negative": args.negative, "only": args.only, "seed": args.seed, "log": log}
    if args.base_url:
        report = fuzz(args.base_url.rstrip("/"), api_key=args.api_key, **options)
    else:
        with live_server(args.db_base, args.db_name, args.redis_url, keep=args.keep) as (base_url, api_key):
            report = fuzz(base_url, api_key=api_key, **options)
    print(report.format())
    failed = report.server_errors or report.schema_violations or report.harness_errors
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
