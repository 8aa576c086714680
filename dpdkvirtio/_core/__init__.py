"""L1: the compiled extensions (one per resource). Loading any of them loads DPDK; the
runtime's version is checked once, here."""


def _check_runtime():
    from dpdkvirtio import _warn_old_dpdk
    from dpdkvirtio._core import eal
    _warn_old_dpdk(eal.version())


_check_runtime()
