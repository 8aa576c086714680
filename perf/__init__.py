"""Benchmarks of dpdkvirtio, of three kinds:

* throughput scenarios (scenarios.py, run by ``perf run``, ``perf ab``, ``perf bisect``,
  ``perf calibrate``, ``perf ndr``/rfc2544.py): each side (ours, dpdk-testpmd, OVS-DPDK)
  measured with the same feeder and drain, in Mpps and busy cycles per packet;
* latency (latency.py, ``perf latency``): per-packet latency through each side;
* in-process studies of our own features (measured.py, capture.py, notify.py): what
  measured streams, capture and the notification modes cost and measure.

What they share to set up a run is setups.py; nothing here imports another module's
private names.
"""
