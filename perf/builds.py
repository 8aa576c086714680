"""Builds of the library at a git ref with meson options, for ``perf ab`` and ``bisect``.

A side is written ``REF[:OPTION=VALUE[,OPTION=VALUE...]]``: a git ref (``HEAD~3``, a tag,
a SHA) or ``.`` for the working tree (its tracked files as they are now, committed to no
branch with ``git stash create``; untracked files are not part of it). Each (SHA, options)
is checked out into a git worktree and built by meson into a directory of its own under
the cache (``$DV_PERF_BUILDS``, default ``~/.cache/dpdkvirtio/perf-builds``), then
assembled into an importable package next to it. A second request for the same SHA and
options finds the package and builds nothing.

``.`` without options is the checkout's own installed build when the running dpdkvirtio is
an editable install of this repository (meson-python rebuilds it from the working tree on
import, with the same project defaults: buildtype release, b_ndebug if-release).
"""

from __future__ import annotations

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
    text = (repo / "meson_options.txt").read_text()
    return set(re.findall(r"option\(\s*'([a-z_0-9]+)'", text))


def _git(*args: str, repo: Path = REPO) -> str:
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"git {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip()


def resolve(side: Side, repo: Path = REPO) -> str:
    """The commit SHA a side builds (for ``.``, a commit of the working tree's tracked
    files that no branch points to)."""
    if side.ref == ".":
        return _git("stash", "create", repo=repo) or _git("rev-parse", "HEAD", repo=repo)
    try:
        return _git("rev-parse", "--verify", "--end-of-options", f"{side.ref}^{{commit}}", repo=repo)
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
    tail of meson's or ninja's output when the build fails."""
    sha = resolve(side, repo)
    if uses_installed_build(side, repo):
        return Build(side, sha, None, True)
    key = f"{sha[:16]}-{hashlib.sha1(side.options_key.encode()).hexdigest()[:8]}"
    root = cache_root() / key
    pkg = root / "pkg"
    if (pkg / "dpdkvirtio" / ".complete").exists():
        return Build(side, sha, pkg, True)
    log(f"perf: building {side.spec} ({sha[:12]}, options {side.options_key}) in {root}")
    src, bdir = root / "src", root / "build"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _git("worktree", "prune", repo=repo)
    _git("worktree", "add", "--detach", "--force", str(src), sha, repo=repo)
    try:
        compile_tree(src, bdir, [f"-D{o}" for o in side.options])
        assemble(src, bdir, pkg)
    finally:
        _git("worktree", "remove", "--force", str(src), repo=repo)
    return Build(side, sha, pkg, False)


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
