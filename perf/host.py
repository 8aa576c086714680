"""Host facts for benchmark records (from dpdkvirtio.hostinfo)."""
from dpdkvirtio.hostinfo import busy_pollers, fingerprint, same_host  # noqa: F401
