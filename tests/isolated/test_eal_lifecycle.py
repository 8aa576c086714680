"""EAL lifetime, each case in a fresh interpreter (DPDK initialises once per process)."""
import json
import os
import textwrap

import pytest

from tests.helpers import run_python

pytestmark = pytest.mark.isolated

PRELUDE = "import dpdkvirtio as dv, os, sys, json, logging\n"


def run(code, timeout=60):
    r = run_python(PRELUDE + textwrap.dedent(code), timeout=timeout)
    return r


def test_import_reports_dpdk_version():
    r = run("print(dv.DPDK_VERSION); print(dv.dpdk_version())")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert r.stdout.startswith("DPDK 22.11") and lines[0] == lines[1]   # one version, two names


def test_second_init_same_config_returns_it_other_config_raises():
    r = run("""
        e = dv.init(memory_mode="no-huge", log_level="warning")
        assert dv.init(memory_mode="no-huge", log_level="warning") is e
        try:
            dv.init(memory_mode="no-huge", memory_mb=256)
        except dv.EalError as x:
            print("EalError", x.errno, x)
        assert dv.current() is e
    """)
    assert r.returncode == 0, r.stderr
    assert "EalError 114" in r.stdout and "already initialised" in r.stdout
    assert "start a new process" in r.stdout


def test_failed_init_raises_with_dpdk_message_and_poisons_the_process():
    r = run("""
        try:
            dv.init(memory_mode="no-huge", extra_args=("--huge-worker-stack",), log_level="warning")
        except dv.EalError as x:
            print("first:", type(x).__name__, x.errno, str(x))
        try:
            dv.init(memory_mode="no-huge", log_level="warning")
        except dv.EalError as x:
            print("second:", x)
    """)
    assert r.returncode == 0, r.stderr
    assert "first: EalError 22" in r.stdout
    assert "cannot be specified together with --no-huge" in r.stdout   # what EAL logged
    assert "start a new process" in r.stdout
    assert "second:" in r.stdout and "failed" in r.stdout
    assert "Usage:" not in r.stdout                         # EAL's printf usage is kept off stdout


def test_unknown_eal_option_is_an_exception_not_an_exit():
    r = run("""
        try:
            dv.init(memory_mode="no-huge", extra_args=("--bogus-option",))
        except dv.EalError as x:
            print("raised", x.errno)
        print("still alive")
    """)
    assert r.returncode == 0, r.stderr
    assert "raised 22" in r.stdout and "still alive" in r.stdout


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("--log-level=help",)])
def test_arguments_that_would_exit_are_refused(args):
    r = run(f"""
        try:
            dv.init(memory_mode="no-huge", extra_args={args!r})
        except dv.ConfigError as x:
            print("refused:", x)
        print("alive", __import__("dpdkvirtio._core.eal", fromlist=["x"]).state())
    """)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "alive uninitialised" in r.stdout


def test_every_object_initialises_dpdk_when_needed():
    """One rule for entering the EAL: a mempool, like a port or a PMD, initialises DPDK
    with the defaults when nothing did (dpdkvirtio.init() first to choose settings)."""
    r = run("""
        from dpdkvirtio import eal
        assert not eal.alive()
        pool = dv.Mempool(255, name="x", cache_size=0)
        print("pool:", pool.name, eal.alive(), eal.current().memory_mode)
        pool.close()
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pool: x True "), r.stdout


def test_use_after_cleanup():
    r = run("""
        e = dv.init(memory_mode="no-huge", log_level="warning")
        mp = dv.Mempool(255, cache_size=0)
        e.close()
        try:
            mp.available
        except dv.MempoolError as x:
            print("pool:", x)                   # closed with the EAL
        for f in (lambda: dv.Mempool(255, name="y", cache_size=0), lambda: dv.VdevPort("net_null0"),
                  lambda: dv.Burst(8).alloc(mp, 1, b"x" * 60)):
            try:
                f()
            except dv.DpdkError as x:
                print("after:", type(x).__name__)
        try:
            dv.init(memory_mode="no-huge")
        except dv.EalError as x:
            print("reinit:", x)
    """)
    assert r.returncode == 0, r.stderr
    assert "pool: mempool 'dvpool0' is closed" in r.stdout
    assert r.stdout.count("after: EalError") == 2 and r.stdout.count("after: MempoolError") == 1
    assert "reinit:" in r.stdout and "cleaned-up" in r.stdout


def test_thread_affinity_restored_and_logs_reach_logging():
    r = run("""
        records = []
        class H(logging.Handler):
            def emit(self, rec): records.append((rec.name, rec.getMessage()))
        logging.getLogger("dpdkvirtio").addHandler(H())
        logging.getLogger("dpdkvirtio").setLevel(logging.DEBUG)
        before = os.sched_getaffinity(0)
        e = dv.init(memory_mode="no-huge", log_level="info")
        after = os.sched_getaffinity(0)
        import time; time.sleep(0.6)
        print(json.dumps({"same": before == after, "n": len(before),
              "eal_logs": sum(1 for n, m in records if n.startswith("dpdkvirtio.dpdk.lib.eal")),
              "workers": {str(k): v for k, v in e.workers.items()}}))
    """)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["same"] and out["eal_logs"] > 0
    assert len(out["workers"]) == out["n"]


def test_objects_are_inert_after_fork():
    r = run("""
        e = dv.init(memory_mode="no-huge", log_level="warning")
        port = dv.VdevPort("net_null0")
        b = dv.Burst(8)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                port.rx_burst(0, b)
                code = 1
            except dv.ForkedProcessError:
                pass
            try:
                dv.Mempool(255, name="c", cache_size=0)
                code = 2
            except dv.ForkedProcessError:
                pass
            try:
                b.alloc(port.mempool, 1, b"x" * 60)
                code = 3
            except dv.ForkedProcessError:
                pass
            try:
                port.tx_burst(0, b)
                code = 4
            except dv.ForkedProcessError:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent ok", port.rx_burst(0, b))
        b.free()
    """)
    assert r.returncode == 0, r.stderr
    assert "child 0" in r.stdout and "parent ok 8" in r.stdout


def test_exit_with_open_ports_and_running_pmd_is_clean(tmp_path):
    d = "/tmp/dvx-" + os.urandom(3).hex()
    os.mkdir(d)
    try:
        r = run(f"""
            e = dv.init(log_level="warning")
            v = dv.VhostUserPort("{d}/s.sock")
            u = dv.VirtioUserPort(v.path)
            v.wait_running(10)
            p = dv.Pmd()
            p.add_rxq(v, 0)
            p.add_generator(u, 0, dv.Stream(dv.udp_frame(64)))
            p.start()
            print("prefix", e.file_prefix, e.runtime_dir)
            # no close(): the interpreter exits with everything open
        """, timeout=60)
        assert r.returncode == 0, r.stderr
        prefix, runtime = r.stdout.split()[1:3]
        assert os.listdir(d) == []                         # socket removed
        assert not os.path.exists(runtime)
        assert "Traceback" not in r.stderr
    finally:
        os.rmdir(d)
