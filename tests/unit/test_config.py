"""EalConfig → argv, and refusal of bad settings before DPDK sees them."""
import os

import pytest

from dpdkvirtio.config import EalConfig
from dpdkvirtio.errors import ConfigError

CPUS = [0, 1]


def test_default_argv_no_huge():
    argv = EalConfig(file_prefix="x1").to_argv("no-huge", cpus=CPUS)
    assert argv[0] == "dpdkvirtio"
    assert "--lcores=0@(0,1),1@0,2@1" in argv
    assert "--main-lcore=0" in argv and "--file-prefix=x1" in argv
    i = argv.index("--no-huge")
    assert argv[i + 1:i + 4] == ["-m", "512", "--no-shconf"]
    assert "--no-pci" in argv and "--iova-mode=va" in argv
    assert "--in-memory" not in argv          # refused together with --no-huge in 22.11


def test_hugepage_argv_shares_memory_by_fd():
    argv = EalConfig(file_prefix="x1").to_argv("hugepages", cpus=CPUS)
    assert "--in-memory" in argv and "--single-file-segments" in argv
    assert "--socket-mem=512" in argv and "--socket-limit=512" in argv   # never grows at runtime
    assert "--no-huge" not in argv


def test_workers_and_main_cpus():
    argv = EalConfig(workers={3: 1}, main_lcore=0, main_cpus=(0,), file_prefix="p").to_argv(
        "no-huge", cpus=CPUS)
    assert "--lcores=0@0,3@1" in argv


def test_default_prefix_is_per_process():
    assert EalConfig().resolved_prefix() == f"dv{os.getpid()}"


def test_memory_and_log_options():
    argv = EalConfig(memory_mb=256, log_level="debug", pci=True, telemetry=False,
                     file_prefix="q").to_argv("no-huge", cpus=CPUS)
    assert argv[argv.index("-m") + 1] == "256"
    assert "--log-level=8" in argv and "--no-pci" not in argv and "--no-telemetry" in argv


@pytest.mark.parametrize("kw, text", [
    (dict(memory_mode="huge"), "memory_mode"),
    (dict(memory_mb=4), "memory_mb"),
    (dict(log_level="loud"), "log_level"),
    (dict(iova_mode="xx"), "iova_mode"),
    (dict(file_prefix="a/b"), "file_prefix"),
    (dict(file_prefix=""), "file_prefix"),
    (dict(workers={0: 0}), "main lcore"),
    (dict(workers={1: 7}), "CPU 7"),
    (dict(workers={200: 0}), "lcore ids"),
    (dict(main_cpus=(9,)), "CPU 9"),
])
def test_bad_settings(kw, text):
    with pytest.raises(ConfigError, match=text):
        EalConfig(**kw).validate(CPUS)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--log-level=help"], ["--log-level", "help"]])
def test_options_that_exit_the_process_are_refused(args):
    with pytest.raises(ConfigError, match="exit the process"):
        EalConfig(extra_args=tuple(args)).validate(CPUS)


@pytest.mark.parametrize("opt, owner", [("-l", "lcores"), ("--lcores=0-1", "lcores"),
                                        ("--no-huge", "memory_mode"), ("--vdev=net_null0", "runtime"),
                                        ("--file-prefix=z", "file_prefix"), ("-m", "memory_mb")])
def test_options_owned_by_the_config_are_refused(opt, owner):
    with pytest.raises(ConfigError, match=owner):
        EalConfig(extra_args=(opt,)).validate(CPUS)


def test_extra_args_pass_through():
    argv = EalConfig(extra_args=("-d", "/usr/lib/x.so", "--huge-worker-stack=1024"),
                     file_prefix="z").to_argv("hugepages", cpus=CPUS)
    assert argv[-3:] == ["-d", "/usr/lib/x.so", "--huge-worker-stack=1024"]


def test_memory_mode_resolution():
    from dpdkvirtio import hugepages
    from dpdkvirtio.config import resolve_memory_mode
    none = hugepages.HugepageInfo(pools=[hugepages.PagePool(2048, None, 0, 0)])
    plenty = hugepages.HugepageInfo(pools=[hugepages.PagePool(2048, None, 1024, 1000)])
    assert resolve_memory_mode(EalConfig(), none)[0] == "no-huge"
    assert resolve_memory_mode(EalConfig(), plenty)[0] == "hugepages"
    assert resolve_memory_mode(EalConfig(memory_mode="no-huge"), plenty)[0] == "no-huge"
    with pytest.raises(ConfigError, match="Reserve more"):
        resolve_memory_mode(EalConfig(memory_mode="hugepages"), none)
