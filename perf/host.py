"""Host facts for benchmark records (from dpdkvirtio.hostinfo)."""
from dpdkvirtio.hostinfo import busy_pollers, fingerprint, fingerprint_key, same_host  # noqa: F401


def memory_mode_for(choice: str) -> str:
    """``--memory-mode``: "auto" is hugepages when 2 GiB of them are free, else no-huge."""
    if choice != "auto":
        return choice
    from dpdkvirtio import hugepages
    return "hugepages" if hugepages.read_info().free_mb() >= 2048 else "no-huge"
