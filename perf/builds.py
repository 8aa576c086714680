"""Builds of the library at a git ref with meson options, for ``perf ab`` and ``bisect``.

A side is written ``REF[:OPTION=VALUE[,OPTION=VALUE...]]``: a git ref (``HEAD~3``, a tag,
a SHA) or ``.`` for the working tree (its tracked files as they are now, committed to no
branch with ``git stash create``; untracked files are not part of it). Each SHA is checked
out once into a git worktree under the cache (``$DV_PERF_BUILDS``, default
``~/.cache/dpdkvirtio/perf-builds/<sha>/src``; ``git worktree list`` shows them) and built
by meson in ``<sha>/build``; each (SHA, options) is assembled into an importable package in
``<sha>-<options hash>/pkg``. A second request for the same SHA and options finds the
package and builds nothing; another option set of a built SHA recompiles only what the
option reaches (``inject_busy_cycles``: one module).

``.`` without options is the checkout's own installed build when the running dpdkvirtio is
an editable install of this repository (meson-python rebuilds it from the working tree on
import, with the same project defaults: buildtype release, b_ndebug if-release).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_OPTION = re.compile(r"^[a-z_][a-z0-9_]*=[A-Za-z0-9_.+-]+$")


class BuildError(Exception):
    """A side could not be resolved or built (the message says which and why)."""


@dataclass(frozen=True)
class Side:
    spec: str                               # as the user wrote it
    ref: str                                # "." or a git ref
    options: tuple[str, ...] = field(default=())   # sorted "name=value"

    @property
    def options_key(self) -> str:
        return ",".join(self.options) or "default"


def parse_side(spec: str) -> Side:
    """``REF[:opt=val,...]`` -> Side. Raises BuildError for a malformed spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise BuildError("a side is REF[:OPTION=VALUE,...], e.g. HEAD~3 or .:inject_busy_cycles=20")
    ref, _, opts = spec.strip().partition(":")
    options = tuple(sorted(o.strip() for o in opts.split(",") if o.strip())) if opts else ()
    bad = [o for o in options if not _OPTION.match(o)]
    if not ref or bad:
        raise BuildError(f"side {spec!r}: expected REF[:OPTION=VALUE,...] with meson option "
                         f"names and plain values; bad: {bad or [ref]}")
    known = meson_options()
    unknown = [o.split("=")[0] for o in options if o.split("=")[0] not in known]
    if unknown:
        raise BuildError(f"side {spec!r}: unknown meson option(s) {unknown}; this project "
                         f"has {sorted(known)}")
    return Side(spec.strip(), ref, options)


def meson_options(repo: Path = REPO) -> set[str]:
    return set(option_defaults((repo / "meson_options.txt").read_text()))


def git(*args: str, repo: Path = REPO) -> str:
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"git {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip()


def is_ancestor(older: str, newer: str, repo: Path = REPO) -> bool:
    return subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", older,
                           newer], capture_output=True).returncode == 0


def resolve(side: Side, repo: Path = REPO) -> str:
    """The commit SHA a side builds (for ``.``, a commit of the working tree's tracked
    files that no branch points to)."""
    if side.ref == ".":
        return git("stash", "create", repo=repo) or git("rev-parse", "HEAD", repo=repo)
    try:
        return git("rev-parse", "--verify", "--end-of-options", f"{side.ref}^{{commit}}", repo=repo)
    except BuildError:
        raise BuildError(f"side {side.spec!r}: {side.ref!r} is not a commit of {repo}") from None


def cache_root() -> Path:
    return Path(os.environ.get("DV_PERF_BUILDS")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "dpdkvirtio" / "perf-builds")


def uses_installed_build(side: Side, repo: Path = REPO) -> bool:
    """``.`` without options, and the running package is this checkout's editable build."""
    if side.ref != "." or side.options:
        return False
    import dpdkvirtio
    return Path(dpdkvirtio.__file__).resolve().is_relative_to(repo.resolve())


@dataclass
class Build:
    side: Side
    sha: str
    package_dir: Path | None          # None: the running (editable) install
    cached: bool

    def describe(self) -> dict:
        return {"spec": self.side.spec, "sha": self.sha, "options": list(self.side.options),
                "build": "installed" if self.package_dir is None else str(self.package_dir)}


def build(side: Side, repo: Path = REPO, log=print) -> Build:
    """Build (or find in the cache) the package of ``side``. Raises BuildError with the
    tail of meson's or ninja's output when the build fails.

    Compiled modules depend only on ``cython/``, ``meson.build``, the option names and the
    option values, so one worktree and one meson build directory serve every commit with
    the same compiled inputs (a commit that changes Python or docs only compiles nothing)
    and every option set (another set is a ``meson configure`` and an incremental ninja
    run that compiles only the modules the option reaches). The package of each (SHA,
    options) takes its Python sources from that SHA. A lock file makes concurrent runs
    wait for each other."""
    sha = resolve(side, repo)
    if uses_installed_build(side, repo):
        return Build(side, sha, None, True)
    text = git("show", f"{sha}:meson_options.txt", repo=repo)
    values = option_defaults(text)
    for o in side.options:
        name, value = o.split("=", 1)
        if name not in values:
            raise BuildError(f"side {side.spec!r}: {sha[:12]} has no meson option {name!r} "
                             f"(it has {sorted(values)})")
        values[name] = value
    resolved = ",".join(f"{k}={v}" for k, v in sorted(values.items()))
    pkg = cache_root() / f"{sha[:16]}-{hashlib.sha1(resolved.encode()).hexdigest()[:8]}"
    if (pkg / "dpdkvirtio" / ".complete").exists():
        return Build(side, sha, pkg, True)
    inputs = git("rev-parse", f"{sha}:cython", f"{sha}:meson.build", repo=repo)
    compiled = hashlib.sha1((inputs + ",".join(sorted(values))).encode()).hexdigest()[:16]
    tree = cache_root() / f"compiled-{compiled}"
    tree.mkdir(parents=True, exist_ok=True)
    with open(tree / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (pkg / "dpdkvirtio" / ".complete").exists():        # built while we waited
            return Build(side, sha, pkg, True)
        # the build directory inside the tree, as the editable install's is: the same
        # relative paths give the same compiler command lines, so ccache (when installed,
        # meson uses it) serves every module the options do not change from earlier builds
        src, bdir = tree / "src", tree / "src" / "build"
        if not (src / ".git").exists():
            shutil.rmtree(src, ignore_errors=True)
            git("worktree", "prune", repo=repo)
            git("worktree", "add", "--detach", "--force", str(src), sha, repo=repo)
        log(f"perf: building {side.spec} ({sha[:12]}, {resolved}) in {bdir}")
        compile_tree(src, bdir, [f"-D{k}={v}" for k, v in sorted(values.items())])
        sources = pkg.with_name(pkg.name + ".src")
        shutil.rmtree(sources, ignore_errors=True)
        sources.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(repo), "archive", sha, "dpdkvirtio",
                                  "cython/dpdkvirtio/_core"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(sources)], input=archive.stdout, check=True)
        assemble(sources, bdir, pkg)
        shutil.rmtree(sources)
    return Build(side, sha, pkg, False)


def option_defaults(meson_options_txt: str) -> dict[str, str]:
    """The project options declared in a meson_options.txt, with their default values."""
    out = {}
    for m in re.finditer(r"option\(\s*'([a-z_0-9]+)'(.*?)\)\s*$", meson_options_txt,
                         re.S | re.M):
        value = re.search(r"value\s*:\s*('?)([^,')]*)\1", m.group(2))
        out[m.group(1)] = value.group(2).strip() if value else ""
    return out


def compile_tree(src: Path, bdir: Path, options: list[str], timeout_s: float = 1800) -> None:
    """meson setup (or reconfigure) + ninja, with the meson, ninja and cython of this
    interpreter's environment."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    if (bdir / "build.ninja").exists():
        cmd = [str(bin_dir / "meson"), "configure", str(bdir), *options]
    else:
        cmd = [str(bin_dir / "meson"), "setup", str(bdir), str(src), *options]
    for c in (cmd, [str(bin_dir / "ninja"), "-C", str(bdir)]):
        r = subprocess.run(c, cwd=src, env=env, capture_output=True, text=True, timeout=timeout_s)
        if r.returncode != 0:
            raise BuildError(f"{' '.join(c[:2])} failed in {bdir}:\n"
                             + (r.stdout[-3000:] + r.stderr[-3000:]).strip())


def assemble(src: Path, bdir: Path, into: Path) -> Path:
    """An importable package: ``into/dpdkvirtio`` = the tree's Python sources and the
    extension modules meson built. Returns ``into``."""
    pkg = into / "dpdkvirtio"
    shutil.rmtree(pkg, ignore_errors=True)
    shutil.copytree(src / "dpdkvirtio", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    modules = sorted(bdir.glob("*.cpython-*.so"))
    expected = len(list((src / "cython" / "dpdkvirtio" / "_core").glob("*.pyx")))
    if len(modules) != expected:
        raise BuildError(f"{bdir}: {len(modules)} extension modules built, {expected} expected")
    for so in modules:
        shutil.copy2(so, pkg / "_core" / so.name)
    (pkg / ".complete").write_text("")
    return into
