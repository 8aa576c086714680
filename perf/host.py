"""Host facts for benchmark records (from dpdkvirtio.hostinfo)."""
from dpdkvirtio.hostinfo import busy_pollers, fingerprint, fingerprint_key, same_host  # noqa: F401
