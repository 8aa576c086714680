"""Peers for tests and benchmarks, one module each: dpdk-testpmd (``testpmd``), a second
process of our own (``agent``), OVS-DPDK (``ovs``); ``process`` has what they share.
Runtime code does not import this package; perf/ and tests/ do."""

from .agent import Agent, AgentError
from .ovs import OvsDpdk, ovs_dpdk_available
from .process import cpus, front_back, unique_prefix
from .testpmd import TESTPMD, Testpmd

__all__ = ["Agent", "AgentError", "OvsDpdk", "ovs_dpdk_available", "cpus", "front_back",
           "unique_prefix",
           "TESTPMD", "Testpmd"]
