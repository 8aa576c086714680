"""pytest plugin (``-p tests.noextension``): the compiled extension cannot be imported, as
on a machine without DPDK. Used to show that the unit tests need neither."""
import importlib.abc
import sys


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "dpdkvirtio._core" or name.startswith("dpdkvirtio._core."):
            raise ImportError(f"blocked (no DPDK here): {name}")
        return None


sys.meta_path.insert(0, _Block())
