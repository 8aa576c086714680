"""The pure modules import without the compiled extension (and so without DPDK)."""
import subprocess
import sys

from tests.helpers import REPO

PURE = ("errors", "config", "hugepages", "placement", "packets", "marker", "sockets", "streams",
        "virtio", "rpc", "switchconfig", "topology", "pcapfile", "progress", "decide")
CODE = f"""
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith("dpdkvirtio._core"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
for m in {PURE!r}:
    importlib.import_module("dpdkvirtio." + m)
import dpdkvirtio
assert "DPDK_VERSION" in dpdkvirtio.__all__
try:
    dpdkvirtio.Burst
except ImportError as e:
    print("needs the extension:", e)
print(sorted(k for k in sys.modules if k.startswith("dpdkvirtio")))
"""


def test_pure_modules_import_without_the_extension():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=str(REPO),
                       timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = eval(r.stdout.strip().splitlines()[-1])
    assert loaded == sorted(["dpdkvirtio"] + [f"dpdkvirtio.{m}" for m in PURE])
    assert "needs the extension: blocked: dpdkvirtio._core" in r.stdout   # the block was armed


def test_unit_tests_run_without_the_extension():
    """tests/unit (but the rails, which check the built modules, and this file) pass with
    dpdkvirtio._core unimportable: the pure modules and their tests need no DPDK."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.noextension",
                        "-p", "no:cacheprovider", "tests/unit",
                        "--ignore=tests/unit/test_rails.py",
                        "--ignore=tests/unit/test_pure_modules.py"],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "error" not in r.stdout.splitlines()[-1]
