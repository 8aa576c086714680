"""Side-by-side benchmarks of dpdkvirtio against dpdk-testpmd (and OVS-DPDK where
installed): ``python -m perf run``, ``python -m perf compare``, ``python -m perf ndr``."""
