"""GitHub Actions: a static workflow whose first job plans and whose waves run the plan.

GitHub Actions cannot load a generated workflow, so the workflow is written once (``./sage --ci
generate github``, committed) with one job per wave, as many as the tree's dependency levels.  Its
``plan`` job runs ``./sage --ci plan github``, which prunes the cached packages and writes one
matrix per wave as a job output; each wave job feeds it through ``fromJSON``.  A wave with nothing
to build is skipped with ``if:`` (an empty matrix is an error).  A matrix takes at most 256 entries:
beyond that, packages of a wave are grouped per entry and built by one ``make -j`` there.
``fail-fast: false`` and ``!cancelled()`` let everything build that does not depend on a failure.

Pushing happens only on a push to a protected branch, in the ``sage-binary-cache`` environment
(whose secrets hold the push URL and credentials; restrict it to protected branches); a pull
request's run gets neither the environment nor the variable: it builds what is missing in one job
and pushes nothing.
"""

from __future__ import annotations

import json

from sage_build.base.errors import SageBuildError
from sage_build.ci.jobs import (
    dump_yaml,
    CACHE_VARIABLE, GITHUB_MATRIX_LIMIT, GITHUB_OUTPUTS_LIMIT, PUSH_VARIABLE, Setup, job_script,
)
from sage_build.ci.plan import Plan

ENVIRONMENT = "sage-binary-cache"
#: Whether this run may push: a push to a protected branch (an expression of GitHub Actions).
MAY_PUSH = "github.event_name == 'push' && github.ref_protected"


#: The environment's secrets a pushing job gets: where to push, the S3 credentials (boto3 reads
#: them; a cache on another store needs its own), the signing key's text.
SIGNING_SECRET = "SAGE_BINARY_CACHE_SIGNING_KEY"
PUSH_SECRETS = (PUSH_VARIABLE, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", SIGNING_SECRET)
#: sage-build reads the signing key from a file only it may read: the secret's text goes there.
SIGNING_TEXT = "SIGNING_KEY_TEXT"
SIGNING_KEY_STEP = {
    "name": "signing key",
    "if": "${{ env.%s != '' }}" % SIGNING_TEXT,
    "run": (f'umask 077\nprintf \'%s\\n\' "${SIGNING_TEXT}" > "$RUNNER_TEMP/signing.key"\n'
            'echo "SAGE_BINARY_CACHE_SIGNING_KEY=$RUNNER_TEMP/signing.key" >> "$GITHUB_ENV"'),
}


def _entry(packages: list[str], options: str = "") -> dict[str, str]:
    name = packages[0] if len(packages) == 1 else f"{packages[0]} and {len(packages) - 1} more"
    return {"name": name, "packages": " ".join(packages), "options": options}


def wave_entries(packages: list[str]) -> list[dict[str, str]]:
    """A wave's matrix: one entry per package, or, beyond the matrix limit, groups of packages
    (one wave's packages need nothing of each other: one make -j builds a group)."""
    if not packages:
        return []
    groups = min(len(packages), GITHUB_MATRIX_LIMIT)
    size = -(-len(packages) // groups)   # ceiling: consecutive groups of `size`
    return [_entry(packages[start:start + size]) for start in range(0, len(packages), size)]


def plan_outputs(plan: Plan, waves: int, *, push: bool) -> dict[str, str]:
    """The plan job's outputs: ``wave1``..``waveN`` as JSON matrices (``[]`` for an empty wave).

    A read-only run builds everything missing in one entry of the first wave (one make orders it)."""
    if not push:
        missing = [p.name for p in plan.missing]
        found = [[_entry(missing, "--read-only")]] if missing else []
    else:
        found = [wave_entries(wave) for wave in plan.waves()]
    if len(found) > waves:
        raise SageBuildError(
            f"the plan has {len(found)} waves and the workflow {waves}: the recipes' dependencies grew deeper;"
            " run ./sage --ci generate github -o .github/workflows/sage-build.yml again and commit it")
    outputs = {f"wave{n}": json.dumps(found[n - 1] if n <= len(found) else [], separators=(",", ":"))
               for n in range(1, waves + 1)}
    size = sum(len(k) + len(v) for k, v in outputs.items())
    if size > GITHUB_OUTPUTS_LIMIT:
        raise SageBuildError(f"the plan's matrices take {size} bytes, over GitHub's {GITHUB_OUTPUTS_LIMIT}"
                             " for a job's outputs; generate a workflow for fewer packages")
    return outputs


def workflow(waves: int, setup: Setup, *, branches: tuple[str, ...] = ("main",)) -> dict:
    """The workflow as a mapping; ``waves``: the tree's dependency levels (a plan with nothing cached)."""
    configure = job_script(setup, [])[0]
    sage = setup.sage
    targets = " ".join(setup.targets)
    checkout = {"uses": "actions/checkout@v4"}
    env = {CACHE_VARIABLE: setup.cache if setup.cache else "${{ vars.%s }}" % CACHE_VARIABLE,
           "SAGE_BINARY_CACHE_MODE": "auto",
           # the public keys whose signatures a pull accepts: not a secret
           "SAGE_BINARY_CACHE_TRUSTED_KEYS": "${{ vars.SAGE_BINARY_CACHE_TRUSTED_KEYS }}"}
    # what a push needs, given only to a run that may push (the environment's secrets)
    push_env = {name: "${{ (%s) && secrets.%s || '' }}" % (MAY_PUSH, name) for name in PUSH_SECRETS}
    # the key's text under another name: the step below points SAGE_BINARY_CACHE_SIGNING_KEY at a file
    push_env[SIGNING_TEXT] = push_env.pop(SIGNING_SECRET)
    plan_job = {
        "runs-on": setup.runs_on,
        "outputs": {f"wave{n}": "${{ steps.plan.outputs.wave%d }}" % n for n in range(1, waves + 1)},
        "steps": [
            checkout,
            {"run": configure},
            {"id": "plan", "env": {"MAY_PUSH": "${{ %s }}" % MAY_PUSH},
             "run": (f'if [ "$MAY_PUSH" = true ]; then push=--push; else push=; fi\n'
                     f'{sage} --ci plan github --waves {waves} $push {targets}'.rstrip()
                     + ' >> "$GITHUB_OUTPUT"')},
        ],
    }
    jobs: dict[str, dict] = {"plan": plan_job}
    for n in range(1, waves + 1):
        jobs[f"wave{n}"] = {
            "name": "wave %d: ${{ matrix.name }}" % n,
            "needs": ["plan"] + ([f"wave{n - 1}"] if n > 1 else []),
            "if": "${{ !cancelled() && needs.plan.result == 'success' && needs.plan.outputs.wave%d != '[]' }}" % n,
            "runs-on": setup.runs_on,
            "environment": "${{ (%s) && '%s' || '' }}" % (MAY_PUSH, ENVIRONMENT),
            "strategy": {"fail-fast": False,
                         "matrix": {"include": "${{ fromJSON(needs.plan.outputs.wave%d) }}" % n}},
            "env": {**push_env, "PACKAGES": "${{ matrix.packages }}", "OPTIONS": "${{ matrix.options }}"},
            "steps": [checkout, SIGNING_KEY_STEP, {"run": configure},
                      {"run": f"{sage} --ci job $OPTIONS $PACKAGES"}],
        }
    jobs["index"] = {
        "needs": ["plan"] + ([f"wave{waves}"] if waves else []),
        "if": "${{ !cancelled() && needs.plan.result == 'success' && %s }}" % MAY_PUSH,
        "runs-on": setup.runs_on,
        "environment": ENVIRONMENT,
        "env": {name: "${{ secrets.%s }}" % name for name in PUSH_SECRETS if name != SIGNING_SECRET},
        "steps": [checkout, {"run": f'{sage} --cache index "${PUSH_VARIABLE}"'}],
    }
    return {
        "name": "sage-build",
        "on": {"push": {"branches": list(branches)}, "pull_request": None, "workflow_dispatch": None},
        "permissions": {"contents": "read"},
        "concurrency": {"group": "sage-build-${{ github.ref }}",
                        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}"},
        "env": env,
        "jobs": jobs,
    }


def render(data: dict, *, header: str = "") -> str:
    # None renders as an empty value (`pull_request:`), as GitHub's own examples write it
    text = dump_yaml(data)
    return header + text.replace(": null\n", ":\n")
