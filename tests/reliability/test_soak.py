"""Soak: traffic for --soak-seconds while the control plane does everything it can at
random (reconnects, queue moves between PMDs, PMD stop/start and re-pinning, rate and
burst changes, ports added and closed). The suite runs it briefly; users can run it for
hours: make test PYTEST_ARGS="tests/reliability/test_soak.py --soak-seconds 36000"."""
import os
import random
import time

import dpdkvirtio as dv
from tests.helpers import settle, steady_window
from tests.reliability.test_reliability import flowing_again


def test_soak(request, baseline, untouched, pmd, pmd2, sockdir):
    seconds = request.config.getoption("--soak-seconds")
    rng = random.Random(1125)
    v = dv.VhostUserPort(os.path.join(sockdir, "soak.sock"))
    u = dv.VirtioUserPort(v.path, queue_size=1024)
    assert v.wait_running(10)
    pool_base = v.mempool.in_use
    other = pmd2                    # the untouched pair's PMD stays its own
    stream = dv.Stream(dv.udp_frame(64), vars=[dv.FieldVar("ip.src", "127.0.0.1", "127.0.0.200")],
                       pps=1_000_000)
    built = 0
    g = pmd.add_generator(u, 0, stream)
    rx_pmd = other
    rx_pmd.add_rxq(v, 0)
    pmd.start()
    other.start()
    # (re-pinning to the other CPU would stack pollers on the untouched pair's CPU:
    # tests/core/test_pmd.py re-pins 50 times under traffic on its own)
    reconnect_drops = 0
    ops = {k: 0 for k in ("reconnect", "move_rxq", "pmd_restart", "rate", "burst", "extra_port")}
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            op = rng.choice(list(ops))
            ops[op] += 1
            if op == "reconnect":
                pmd.remove_generator(g)
                built += g.built
                settle(v, quiet=0.2)
                reconnect_drops += sum(u.drops().values())
                u.close()
                assert v.wait_stopped(10)
                u = dv.VirtioUserPort(v.path, queue_size=1024)
                assert v.wait_running(10)
                g = pmd.add_generator(u, 0, stream)
            elif op == "move_rxq":
                to = pmd if rx_pmd is other else other
                rx_pmd.move_rxq(v, 0, to)
                rx_pmd = to
            elif op == "pmd_restart":
                pmd.stop()
                pmd.start()
            elif op == "rate":
                g.set_rate(pps=rng.choice([200_000, 500_000, 1_000_000]))
            elif op == "burst":
                pmd.burst_size = rng.choice([8, 16, 32, 64])
            else:
                extra = dv.VhostUserPort(os.path.join(sockdir, "extra.sock"))
                other.add_rxq(extra, 0)
                other.remove(extra)
                extra.close()
            # traffic flows again after every operation (a dead port would only count drops)
            flowing_again(v, f"after {op} (operation {sum(ops.values())})")
            time.sleep(rng.uniform(0.01, 0.2))
        # Back to one thread generating and receiving: the drops must stop (while the
        # receiver sat on pmd2, two pollers shared a CPU and the ring overflowed: counted)
        if rx_pmd is not pmd:
            rx_pmd.move_rxq(v, 0, pmd)
            rx_pmd = pmd
        w = steady_window(lambda: g.built, lambda: v.stats()["rx_packets"],
                          lambda: sum(u.drops().values()))
        assert w["built"] > 0 and w["dropped"] <= w["built"] // 100, w
        pmd.remove_generator(g)
        built += g.built
        got = settle(v)
        reasons = u.drops()
        drops = reconnect_drops + sum(reasons.values())
        assert built > 0 and built == got + drops, (built, got, drops)
        assert reasons["tx_not_ready"] == 0 and reasons["tx_nombuf"] == 0, reasons
        assert v.mempool.in_use == pool_base
        print(f"soak {seconds:g} s: {built:,} packets, {drops:,} counted drops, operations {ops}")
    finally:
        pmd.close()
        rx_pmd.remove(v)
        other.remove(v)
        u.close()
        v.close()
