"""GitLab CI: a child pipeline of the plan (``trigger: include: artifact``, ``strategy: depend``).

One job per missing package, named after it, with ``needs:`` on the missing packages it waits for
(GitLab allows 50 by default: a job that would need more names none and waits for the earlier
stages instead, one stage per wave).  Nothing missing: one job that says so (a child pipeline
must have a job).  Pushing pipelines end with the cache's index job; a read-only pipeline (merge
requests, unprotected branches) builds what is missing in one job and pushes nothing, so that
no package is built twice for lack of a place to share it.
"""

from __future__ import annotations

from sage_build.base.errors import SageBuildError
from sage_build.ci.jobs import (
    dump_yaml,
    CACHE_VARIABLE, GITLAB_CHILD_LIMIT, GITLAB_NEEDS_LIMIT, Setup, index_script, job_script,
)
from sage_build.ci.plan import Plan, short_name

#: Top-level keywords of .gitlab-ci.yml and job names with a meaning of their own: never a
#: package's job name (package names have no '-', so the renamed ones collide with none).
RESERVED = frozenset({"image", "services", "stages", "types", "before_script", "after_script", "variables",
                      "cache", "include", "default", "workflow", "pages", "spec"})
NOTHING_JOB = "nothing-to-build"
INDEX_JOB = "cache-index"
READ_ONLY_JOB = "build-missing"


def job_name(package: str) -> str:
    name = short_name(package)
    return f"{name}-build" if name in RESERVED else name


def child_pipeline(plan: Plan, setup: Setup) -> dict:
    """The child pipeline as a mapping (see :func:`render`)."""
    waves = plan.waves()
    stages = [f"wave-{n}" for n in range(1, max(len(waves), 1) + 1)]
    pipeline: dict = {}
    variables = {"SAGE_BINARY_CACHE_MODE": "auto"}
    if setup.cache:
        variables[CACHE_VARIABLE] = setup.cache
    default: dict = {"interruptible": True}
    if setup.image:
        default["image"] = setup.image
    if setup.push and plan.missing:
        # a protected File variable holds the signing key; sage-build refuses a key others may read
        default["before_script"] = ['[ -z "${SAGE_BINARY_CACHE_SIGNING_KEY:-}" ] || chmod 600 "$SAGE_BINARY_CACHE_SIGNING_KEY"']
    jobs: dict[str, dict] = {}
    if not plan.missing:
        jobs[NOTHING_JOB] = {
            "stage": stages[0], "variables": {"GIT_STRATEGY": "none"},
            "script": [f"echo 'all {plan.considered} packages are in the binary cache: nothing to build'"],
        }
    elif not setup.push:
        names = [p.name for p in plan.missing]
        jobs[READ_ONLY_JOB] = {"stage": stages[0], "script": job_script(setup, names, read_only=True)}
        stages = stages[:1]
    else:
        for package in plan.missing:
            job: dict = {"stage": f"wave-{package.wave}"}
            if len(package.needs) <= GITLAB_NEEDS_LIMIT:
                # artifacts travel through the cache, not GitLab
                job["needs"] = [{"job": job_name(n), "artifacts": False} for n in package.needs]
            job["script"] = job_script(setup, [package.name])
            jobs[job_name(package.name)] = job
        index: dict = {"stage": "index", "when": "always", "script": index_script(setup)}
        if len(jobs) <= GITLAB_NEEDS_LIMIT:
            index["needs"] = [{"job": name, "artifacts": False} for name in jobs]
        jobs[INDEX_JOB] = index
        stages.append("index")
    pipeline["stages"] = stages
    pipeline["variables"] = variables
    pipeline["default"] = default
    pipeline.update(jobs)
    return pipeline


def parent_jobs(child_file: str = "sage-pipeline.yml", *, generate: str = "./sage --ci generate gitlab",
                configure: str = "./configure.py --quiet", image: str | None = None) -> dict:
    """The jobs a project's .gitlab-ci.yml adds: one generates the child pipeline (pushing only on
    a protected branch, outside merge requests), one runs it."""
    push_test = ('if [ "$CI_COMMIT_REF_PROTECTED" = true ] && [ "$CI_PIPELINE_SOURCE" != merge_request_event ];'
                 ' then PUSH=--push; else PUSH=; fi')
    plan: dict = {"stage": "sage-plan"}
    if image:
        plan["image"] = image
    plan["script"] = [configure, push_test,
                      f"{generate} $PUSH{' --image ' + image if image else ''} -o {child_file}"]
    plan["artifacts"] = {"paths": [child_file]}
    return {
        "stages": ["sage-plan", "sage-build"],
        "sage-plan": plan,
        "sage-build": {
            "stage": "sage-build",
            "needs": ["sage-plan"],
            "trigger": {"include": [{"artifact": child_file, "job": "sage-plan"}], "strategy": "depend"},
        },
    }


def render(pipeline: dict, *, header: str = "") -> str:
    """YAML text; an error when it exceeds GitLab's size limit for a generated child pipeline."""
    text = header + dump_yaml(pipeline)
    size = len(text.encode())
    if size > GITLAB_CHILD_LIMIT:
        raise SageBuildError(
            f"the generated pipeline is {size} bytes, over GitLab's {GITLAB_CHILD_LIMIT} for a child pipeline;"
            " generate it for fewer packages (./sage --ci generate gitlab PKG...) and trigger several")
    return text
