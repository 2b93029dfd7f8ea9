"""The binary cache end to end (#20 items 4, 5, 7): `make build` pushes, another tree with another
prefix pulls in `only` mode and builds nothing, its prefix equal to a from-source build; entries
that are not to be trusted are refused (and rebuilt in `auto`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Tree, add_recipe, python_recipe

pytestmark = pytest.mark.slow


def _recipes(root: Path) -> None:
    python_recipe(root, "base", "1.0", {"base/__init__.py": "X = 1\n"})
    python_recipe(root, "mid", "1.0", {"mid/__init__.py": "import base\n"}, deps="$(PYTHON) base")
    add_recipe(root, "side", deps="", files={
        "spkg-install": 'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share/side" && echo "made for $SAGE_LOCAL" >'
                        ' "$SAGE_DESTDIR$SAGE_LOCAL/share/side/note"\n'})


def _tree(path: Path, prefix: Path | None = None, recipes_from: Tree | None = None) -> Tree:
    """A tree with the recipes; ``recipes_from``: a clone of another tree's (the same sdists: the
    test's sdists are not reproducible)."""
    tree = Tree(path)
    if prefix is not None:
        tree.prefix = prefix
    if recipes_from is None:
        _recipes(tree.root)
    else:
        for rel in ("build/pkgs", "upstream"):
            shutil.copytree(recipes_from.root / rel, tree.root / rel, dirs_exist_ok=True)
    tree.configure()
    return tree


def _built(result) -> list[str]:
    return sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith("sage-spkg "))


def _from_cache(tree: Tree) -> set[str]:
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    return {e["package"] for e in events if e.get("cache") and e["phase"] == "fetch" and e["event"] == "end"}


def _files(prefix: Path, named: Path | None = None) -> dict[str, bytes]:
    """The prefix's files (what packages installed), the prefix's path (``named``: as its files
    name it) made neutral; byte-code and its RECORD lines left out (their headers hold the time
    the source was installed)."""
    found = {}
    for path in sorted(prefix.rglob("*")):
        rel = str(path.relative_to(prefix))
        if path.is_dir() or rel.startswith(("var/", "bin/", "pyvenv.cfg", "lib64")) or "__pycache__" in rel:
            continue
        data = path.read_bytes().replace(str(named or prefix).encode(), b"PREFIX")
        if rel.endswith(".dist-info/RECORD"):
            data = b"\n".join(line for line in data.split(b"\n") if b"__pycache__" not in line)
        found[rel] = data
    return found


@pytest.fixture
def signing(tmp_path):
    keys = tmp_path / "keys"
    subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "keygen", "test-1", str(keys)], check=True,
                   capture_output=True)
    return {"secret": str(keys / "test-1.secret"), "public": (keys / "test-1.public").read_text().strip()}


def test_push_then_another_prefix_pulls_everything_in_only_mode(tmp_path, signing):
    cache = tmp_path / "cache"
    cache.mkdir()
    first = _tree(tmp_path / "one")
    push_env = {"SAGE_BINARY_CACHE_PUSH": f"file://{cache}", "SAGE_BINARY_CACHE_SIGNING_KEY": signing["secret"]}
    first.make("build", extra_env=push_env)
    manifests = sorted(p.name for p in (cache / "v1").glob("*.json"))
    assert len(manifests) == 3, manifests
    # another clone with another prefix path: everything, the staged package relocated
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local-two", recipes_from=first)
    pull_env = {"SAGE_BINARY_CACHE": f"file://{cache}", "SAGE_BINARY_CACHE_MODE": "only",
                "SAGE_BINARY_CACHE_TRUSTED_KEYS": signing["public"]}
    plan = second.sage("--plan").stdout  # (the plan's environment has no cache: says build)
    assert "base-1.0" in plan
    second.make("build", extra_env=pull_env)
    assert _from_cache(second) == {"base", "mid", "side"}
    assert not list((second.prefix / "var/tmp/sage/build").glob("*/src")) if (second.prefix / "var/tmp/sage/build").exists() else True
    assert second.python("import mid, base; print(base.X)").stdout.strip() == "1"
    assert (second.prefix / "share/side/note").read_text() == f"made for {second.prefix}\n"
    assert _files(second.prefix) == _files(first.prefix)
    assert len(_files(second.prefix)) >= 9
    third = second
    # the stamp lists only the wheel, as a local build's
    stamp = json.loads(third.stamp("base", "1.0").read_text())
    assert [f for f in stamp["files"] if f.endswith(".whl")] == stamp["files"]


def test_auto_mode_pulls_what_it_can_and_builds_the_rest(tmp_path):
    cache = tmp_path / "cache"
    first = _tree(tmp_path / "one")
    env = {"SAGE_BINARY_CACHE_PUSH": str(cache), "SAGE_BINARY_CACHE": f"file://{cache}",
           "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    # a cache configured (empty: every package misses and builds), no push yet: the build records
    # the keys that ./sage --cache push then publishes
    cache.mkdir()
    first.make("build", extra_env={k: v for k, v in env.items() if k != "SAGE_BINARY_CACHE_PUSH"})
    pushed = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "push"], env=dict(first.env, **env),
                            capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    assert sorted(line.split(":")[0] for line in pushed.stdout.splitlines()) == ["base", "mid", "side"]
    again = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "push", "base"],
                           env=dict(first.env, **env), capture_output=True, text=True)
    assert "has it already" in again.stdout

    # another prefix: the plan says what comes from the cache (side too: relocated)
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    plan = subprocess.run([sys.executable, str(ROOT / "sage"), "--plan"], env=dict(second.env, **env),
                          capture_output=True, text=True).stdout
    lines = {line.split()[1]: line for line in plan.splitlines() if line.strip()[:1].isdigit()}
    assert "from cache" in lines["base-1.0"] and "from cache" in lines["mid-1.0"], plan
    assert "from cache" in lines["side-none"], plan
    second.make("build", extra_env=env)
    assert _from_cache(second) == {"base", "mid", "side"}
    assert second.python("import mid").returncode == 0

    # a changed recipe: that package and its dependents build, the rest is pulled
    changed = _tree(tmp_path / "changed", prefix=tmp_path / "changed" / "local", recipes_from=first)
    (changed.root / "build/pkgs/base/spkg-check").write_text("true\n")
    changed.make("build", extra_env=env)
    assert _from_cache(changed) == {"side"} and _built_from_source(changed) == {"base", "mid"}
    changed = _tree(tmp_path / "changed2", prefix=tmp_path / "changed2" / "local", recipes_from=first)
    (changed.root / "build/pkgs/mid/spkg-check").write_text("true\n")
    changed.make("build", extra_env=env)
    assert _from_cache(changed) == {"base", "side"} and _built_from_source(changed) == {"mid"}

    # a corrupted artifact: refused, the package rebuilt; its dependent still pulled
    blob = next(iter(json.loads(p.read_text())["manifest"]["artifacts"][0]["sha256"]
                     for p in (cache / "v1").glob("*.json") if '"package": "base"' in p.read_text()))
    (cache / "v1/blobs" / blob).write_bytes(b"garbage")
    third = _tree(tmp_path / "three", prefix=tmp_path / "three" / "local", recipes_from=first)
    third.make("build", extra_env=env)
    assert _from_cache(third) == {"mid", "side"} and _built_from_source(third) == {"base"}
    assert "does not match the manifest's sha256" in (third.root / "logs/pkgs/base-1.0.log").read_text()
    assert third.python("import mid, base").returncode == 0


def _built_from_source(tree: Tree) -> set[str]:
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    return {e["package"] for e in events if e["phase"] == "build" and e["event"] == "end" and e["outcome"] == "ok"}


def test_bad_settings_are_told_clearly(tmp_path):
    tree = _tree(tmp_path / "one")
    for variable, value, message in (
            ("SAGE_BINARY_CACHE_MODE", "sometimes", "SAGE_BINARY_CACHE_MODE='sometimes': use one of auto, only, never"),
            ("SAGE_BINARY_CACHE_TRUST", "everything", "SAGE_BINARY_CACHE_TRUST='everything'"),
            ("SAGE_BINARY_CACHE_SIGNING_KEY", str(tmp_path / "none.secret"), "cannot read it")):
        result = tree.make("base", extra_env={variable: value}, check=False)
        assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    # an unreachable cache: a warning in auto, an error in only
    env = {"SAGE_BINARY_CACHE": str(tmp_path / "nowhere"), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    only = tree.make("base", extra_env=dict(env, SAGE_BINARY_CACHE_MODE="only"), check=False)
    assert only.returncode != 0 and "is not a directory" in (tree.root / "logs/pkgs/base-1.0.log").read_text()
    tree.make("base", extra_env=env)
    assert tree.python("import base").returncode == 0


def test_forced_builds_from_source_and_the_display_says_what_came_from_the_cache(tmp_path):
    import io

    from sage_build.face.progress import Progress, _Display
    from sage_build.face.timeline import render

    cache = tmp_path / "cache"
    first = _tree(tmp_path / "one")
    env = {"SAGE_BINARY_CACHE_PUSH": str(cache), "SAGE_BINARY_CACHE": str(cache), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    first.make("base", extra_env=env)
    assert (tmp_path / "one/logs/events.jsonl").exists() and len(list((cache / "v1").glob("*.json"))) == 1
    (first.root / "logs/events.jsonl").unlink()
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "-f", "base"], env=dict(first.env, **env),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _from_cache(first) == set() and _built_from_source(first) == {"base"}
    # another prefix pulls it; the line and the timeline say so
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    second.make("base", extra_env=env)
    events = [json.loads(line) for line in (second.root / "logs/events.jsonl").read_text().splitlines()]
    out = io.StringIO()
    display, state = _Display(terminal=False, out=out), Progress(planned=[])
    for event in events:
        state.apply(event)
        display.show(state, event)
    assert "base-1.0: from the binary cache in" in out.getvalue()
    assert "python3-venv" in out.getvalue() and "built in" in out.getvalue()
    assert "base-1.0 (from cache)" in render(events)


def test_concurrent_pushes_of_the_same_packages_are_harmless(tmp_path):
    first = _tree(tmp_path / "one")
    (tmp_path / "empty").mkdir()
    first.make("build", extra_env={"SAGE_BINARY_CACHE": f"file://{tmp_path / 'empty'}"})   # records the keys
    for round_ in range(4):
        cache = tmp_path / f"cache{round_}"
        env = dict(first.env, SAGE_BINARY_CACHE_PUSH=str(cache))
        pushes = [subprocess.Popen([sys.executable, str(ROOT / "sage"), "--cache", "push"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [p.communicate() + (p.returncode,) for p in pushes]
        assert all(code == 0 for _, _, code in outputs), outputs
        said = "".join(out for out, _, _ in outputs)
        assert said.count("pushed to") + said.count("has it already") == 9 and said.count("pushed to") == 3
        assert len(list((cache / "v1").glob("*.json"))) == 3
        assert not [p for p in cache.rglob("*") if ".sbtmp-" in p.name]
    from sage_build.cache.entry import pull
    from sage_build.cache.settings import CacheSettings

    key = json.loads((first.prefix / "var/lib/sage/cache-keys/base-1.0.json").read_text())["key"]
    assert pull(str(cache), key, "base", tmp_path / "out", CacheSettings(unsigned=True)).wheels
    # an installed wheel that is not what the recorded build made is not pushed
    stored = next((first.prefix / "var/lib/sage/wheels").glob("base-*.whl"))
    stored.write_bytes(stored.read_bytes() + b"changed")
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "push", "base"],
                            env=dict(first.env, SAGE_BINARY_CACHE_PUSH=str(tmp_path / "other")), capture_output=True,
                            text=True)
    assert result.returncode == 1 and "is not what the recorded build made" in result.stderr, result.stderr


def test_the_configuration_names_the_cache_and_the_environment_overrides_it(tmp_path, signing):
    cache = tmp_path / "cache"
    first = _tree(tmp_path / "one")
    first.make("base", extra_env={"SAGE_BINARY_CACHE_PUSH": str(cache),
                                  "SAGE_BINARY_CACHE_SIGNING_KEY": signing["secret"]})
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    second.configure(f"--with-binary-cache=file://{cache}", f"--with-binary-cache-trusted-key={signing['public']}")
    assert "from cache" in second.sage("--plan", "base").stdout
    second.make("base", extra_env={"SAGE_BINARY_CACHE": ""})  # the environment's empty list wins: build
    assert _from_cache(second) == set() and _built_from_source(second) == {"base"}
    (second.root / "logs/events.jsonl").unlink()
    second.sage("-f", "base")  # forced: from source
    assert _built_from_source(second) == {"base"}
    (second.root / "logs/events.jsonl").unlink()
    shutil.rmtree(second.prefix)
    second.make("base")
    assert _from_cache(second) == {"base"}


def test_a_build_without_a_cache_records_no_key_and_push_says_how(tmp_path):
    """A build with no binary cache configured computes no key (#19: the key reads the whole graph
    and runs the compiler, per package); pushing it afterwards says how to get one."""
    first = _tree(tmp_path / "one")
    first.make("build")
    assert not list((first.prefix / "var/lib/sage").glob("cache-keys/*.json"))
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "push", "base"],
                            env=dict(first.env, SAGE_BINARY_CACHE_PUSH=str(tmp_path / "c")), capture_output=True,
                            text=True)
    assert result.returncode == 1 and "a key is recorded when a binary cache is configured" in result.stderr
    assert f"SAGE_BINARY_CACHE_PUSH={tmp_path / 'c'} ./sage -f base" in result.stderr


def test_sage_check_builds_what_has_tests_unless_only_and_says_when_tests_did_not_run(tmp_path):
    """A pulled package has no build directory for its spkg-check. SAGE_CHECK=yes (its tests must
    run and pass here) builds a package that has one, in auto mode; in only mode (build nothing) it
    is pulled and the log, the events and the progress line say its tests did not run; so does
    SAGE_CHECK=warn, which pulls."""
    import io

    from sage_build.face.progress import Progress, _Display

    cache = tmp_path / "cache"
    env = {"SAGE_BINARY_CACHE_PUSH": str(cache), "SAGE_BINARY_CACHE": str(cache), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    first = _tree(tmp_path / "one")
    (first.root / "build/pkgs/base/spkg-check").write_text('echo "the tests of base ran"\n')
    first.configure()
    first.make("build", extra_env=env)
    assert len(list((cache / "v1").glob("*.json"))) == 3

    checking = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    plan = subprocess.run([sys.executable, str(ROOT / "sage"), "--plan"], env=dict(checking.env, SAGE_CHECK="yes", **env),
                          capture_output=True, text=True).stdout
    lines = {line.split()[1]: line for line in plan.splitlines() if line.strip()[:1].isdigit()}
    assert "build: " in lines["base-1.0"] and "from cache" in lines["mid-1.0"], plan
    checking.make("build", extra_env=dict(env, SAGE_CHECK="yes"))
    assert _from_cache(checking) == {"mid", "side"} and _built_from_source(checking) == {"base"}
    log = (checking.root / "logs/pkgs/base-1.0.log").read_text()
    assert "SAGE_CHECK=yes: building from source rather than pulling" in log and "the tests of base ran" in log
    assert json.loads(checking.stamp("base", "1.0").read_text())["test_result"] == "passed"
    assert "tests not run" not in (checking.root / "logs/pkgs/mid-1.0.log").read_text()  # it has none

    for mode, check in (("only", "yes"), ("auto", "warn")):
        tree = _tree(tmp_path / f"{mode}-{check}", prefix=tmp_path / f"{mode}-{check}" / "local", recipes_from=first)
        tree.make("build", extra_env=dict(env, SAGE_CHECK=check, SAGE_BINARY_CACHE_MODE=mode))
        assert _from_cache(tree) == {"base", "mid", "side"}, (mode, check)
        log = (tree.root / "logs/pkgs/base-1.0.log").read_text()
        assert "tests not run: from the binary cache" in log and "the tests of base ran" not in log
        events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
        assert {e["package"] for e in events if e.get("check")} == {"base"}
        out = io.StringIO()
        display, state = _Display(terminal=False, out=out), Progress(planned=[])
        for event in events:
            state.apply(event)
            display.show(state, event)
        said = [line for line in out.getvalue().splitlines() if "base-1.0:" in line]
        assert any("from the binary cache in" in line and ", tests not run: from the binary cache" in line
                   for line in said), said
        assert json.loads(tree.stamp("base", "1.0").read_text())["test_result"] == ""


def _fetch_starts(tree: Tree) -> dict[str, int]:
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    counts: dict[str, int] = {}
    for e in events:
        if e["phase"] == "fetch" and e["event"] == "start":
            counts[e["package"]] = counts.get(e["package"], 0) + 1
    return counts


def _phase_end(tree: Tree, package: str, phase: str) -> float:
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    return max(e["time"] for e in events if e["package"] == package and e["phase"] == phase and e["event"] == "end")


def test_a_cache_pulls_ahead_of_the_build_order(tmp_path, signing):
    """With a binary cache, make pulls what is not installed yet ahead of the dependency order (a
    pulled wheel needs nothing installed before it), side by side within -jN, as Nix substitutes
    before it builds; each package's rule then runs nothing. A package with an install-time script
    of its own (which may run what it depends on) is pulled in order."""
    cache = tmp_path / "cache"
    first = _tree(tmp_path / "one")
    # base installs slowly, and only after what its postinst needs: mid, which needs base, is pulled
    # ahead and installed before base is
    (first.root / "build/pkgs/base/spkg-postinst").write_text("sleep 1\n")
    first.configure()
    first.make("build", extra_env={"SAGE_BINARY_CACHE_PUSH": str(cache),
                                   "SAGE_BINARY_CACHE_SIGNING_KEY": signing["secret"]})
    env = {"SAGE_BINARY_CACHE": f"file://{cache}", "SAGE_BINARY_CACHE_MODE": "only",
           "SAGE_BINARY_CACHE_TRUSTED_KEYS": signing["public"]}
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    result = second.make("build", jobs=2, extra_env=env)
    assert _from_cache(second) == {"base", "mid", "side"}
    assert _fetch_starts(second) == {"base": 1, "mid": 1, "side": 1}  # one sage-spkg each, no second call
    assert "[mid-1.0] pulled ahead of the build order and installed" in result.stdout, result.stdout
    assert "[side-none] pulled ahead of the build order and installed" in result.stdout
    assert "[base-1.0] pulled ahead" not in result.stdout and "[base-1.0] installed" in result.stdout
    assert _phase_end(second, "mid", "install") < _phase_end(second, "base", "install")
    pulled = {p.name for p in (second.prefix / "var/tmp/sage/pulled-ahead").glob("*/*")}
    assert pulled == {"mid", "side"}
    assert second.python("import mid, base; print(base.X)").stdout.strip() == "1"
    assert _files(second.prefix) == _files(first.prefix)
    # nothing left to do: no package runs, none is pulled ahead again
    again = second.make("build", jobs=2, extra_env=env)
    assert _fetch_starts(second) == {"base": 1, "mid": 1, "side": 1}, again.stdout
    # no cache, mode never or SAGE_PULL_AHEAD=no: the packages' own rules, in order
    for tree_name, extra in (("never", {"SAGE_BINARY_CACHE_MODE": "never"}), ("no", {"SAGE_PULL_AHEAD": "no"})):
        tree = _tree(tmp_path / tree_name, prefix=tmp_path / tree_name / "local", recipes_from=first)
        result = tree.make("build", jobs=2, extra_env=dict(env, **extra))
        assert "pulled ahead" not in result.stdout and not (tree.prefix / "var/tmp/sage/pulled-ahead").exists()
        assert _phase_end(tree, "base", "install") < _phase_end(tree, "mid", "install")


def test_a_pull_ahead_miss_builds_in_order_or_fails_once_in_only_mode(tmp_path):
    cache = tmp_path / "cache"
    env = {"SAGE_BINARY_CACHE": str(cache), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    first = _tree(tmp_path / "one")
    first.make("build", extra_env=dict(env, SAGE_BINARY_CACHE_PUSH=str(cache)))
    # base changed: its key (and mid's, which includes it) misses; side is pulled ahead
    changed = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    (changed.root / "build/pkgs/base/spkg-check").write_text("true\n")
    result = changed.make("build", jobs=2, extra_env=env)
    assert _from_cache(changed) == {"side"} and _built_from_source(changed) == {"base", "mid"}
    assert _phase_end(changed, "base", "install") < _phase_end(changed, "mid", "install")
    assert "[side-none] pulled ahead" in result.stdout and "[mid-1.0] installed" in result.stdout
    assert changed.python("import mid").returncode == 0
    # only: the misses fail in their own rules, each said once; nothing half-installed
    strict = _tree(tmp_path / "three", prefix=tmp_path / "three" / "local", recipes_from=changed)
    result = strict.make("build", jobs=2, check=False, extra_env=dict(env, SAGE_BINARY_CACHE_MODE="only"))
    said = result.stdout + result.stderr
    assert result.returncode != 0 and said.count("Error: base-1.0 failed in phase 'fetch'") == 1, said
    assert "Traceback" not in said
    assert not (strict.prefix / "var/lib/sage/installed/base-1.0").exists()


@pytest.mark.parametrize("point", ["install-published", "record-manifest"])
def test_a_kill_during_a_pull_ahead_leaves_nothing_half_installed(tmp_path, point):
    cache = tmp_path / "cache"
    env = {"SAGE_BINARY_CACHE": str(cache), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    first = _tree(tmp_path / "one")
    first.make("build", extra_env=dict(env, SAGE_BINARY_CACHE_PUSH=str(cache)))
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    killed = second.make("mid", check=False, extra_env=dict(env, SAGE_TEST_KILL_AT=point))
    assert killed.returncode != 0
    markers = list((second.prefix / "var/tmp/sage/pulled-ahead").glob("*/*"))
    stamps = {p.name for p in (second.prefix / "var/lib/sage/installed").iterdir() if not p.name.startswith(".")}
    # a marker only beside its stamp (a kill between the two leaves the stamp alone)
    assert all(f"{m.name}-1.0" in stamps for m in markers), (markers, stamps)
    second.make("mid", extra_env=env)
    assert second.python("import mid, base").returncode == 0
    assert _files(second.prefix, second.prefix) == {k: v for k, v in _files(first.prefix).items()
                                                    if not k.startswith("share/side")}


def test_a_stray_pull_ahead_marker_never_leaves_a_package_uninstalled(tmp_path):
    """The file that tells make a package was pulled ahead is only a shortcut: found where no stamp
    is (planted, or the package uninstalled meanwhile), the package's own rule installs it."""
    cache = tmp_path / "cache"
    env = {"SAGE_BINARY_CACHE": str(cache), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    first = _tree(tmp_path / "one")
    first.make("build", extra_env=dict(env, SAGE_BINARY_CACHE_PUSH=str(cache)))
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    second.make("python3-venv")
    started = "1700000000.123456789"
    planted = second.prefix / "var/tmp/sage/pulled-ahead" / started / "base"
    planted.parent.mkdir(parents=True)
    planted.write_text("")
    result = second.make("mid", extra_env=dict(env, SAGE_MAKE_STARTED=started))
    assert second.stamp("base", "1.0").is_file(), result.stdout
    assert second.python("import mid, base").returncode == 0
    assert json.loads(second.stamp("base", "1.0").read_text())["files"]  # a real manifest, not a touched file


def test_a_pull_ahead_variable_in_makes_environment_changes_nothing(tmp_path):
    """SAGE_SPKG_PULL_AHEAD belongs to the pull-ahead rules alone: exported by mistake, it would make
    every package a pull that builds nothing, and make would end with nothing installed."""
    tree = _tree(tmp_path / "one")
    stray = tmp_path / "stray"
    result = tree.make("build", extra_env={"SAGE_SPKG_PULL_AHEAD": str(stray)})
    assert tree.python("import mid, base").returncode == 0, result.stdout
    assert (tree.prefix / "share/side/note").is_file()
    assert not stray.exists()
