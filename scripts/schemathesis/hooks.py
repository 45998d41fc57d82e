"""Schemathesis hooks of scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

One check replaces the built-in `not_a_server_error`, which the script excludes: it is that
check, except for the one 5xx the contract asks for on a valid request while Postgres is up.
A `min_revision` ahead of the primary's newest revision is a 503 `unavailable`, never an
answer below it (ARCHITECTURE.md, decision 35), and a batch holding such a check is a 503 as a
whole. The run makes no writes, so that revision is the one the script read before starting
schemathesis (`AUTHZ_ST_REVISION`). Every other 5xx, including a 503 with no such
`min_revision` or with another code, still fails the run.
"""

import json
import os

import schemathesis
from schemathesis.checks import not_a_server_error

REVISION = int(os.environ["AUTHZ_ST_REVISION"])


def _min_revisions(body):
    """Every integer `min_revision` of a single or batch body (others are 400s)."""
    checks = body.get("checks") if isinstance(body, dict) and "checks" in body else [body]
    if not isinstance(checks, list):
        return []
    found = []
    for check in checks:
        value = check.get("min_revision") if isinstance(check, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append(value)
    return found


def _is_ahead_of_the_primary(response, case):
    if response.status_code != 503:
        return False
    if case.operation.path not in ("/v1/authorize", "/v1/authorize/batch"):
        return False
    try:
        code = json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return False
    return code == "unavailable" and any(value > REVISION for value in _min_revisions(case.body))


@schemathesis.check
def not_a_server_error_but_a_revision_ahead(ctx, response, case):
    """`not_a_server_error`, but a 503 for a `min_revision` ahead of the primary passes."""
    if _is_ahead_of_the_primary(response, case):
        return True
    return not_a_server_error(ctx, response, case)
