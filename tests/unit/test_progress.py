"""Progress of long work: plain lines where output is not a terminal (CI logs), a tqdm
bar with elapsed/ETA on a terminal (a real pty here)."""
import fcntl
import io
import os
import re
import struct
import termios

from dpdkvirtio import hugepages
from dpdkvirtio.progress import Progress


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress(3, "sweep", stream=out) as p:
        p.step("first")
        p.log("a note")
        p.step()
        p.step("last")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert re.fullmatch(r"sweep: 1/3 \[0:00:00 elapsed, ETA 0:00:00\] first", lines[0]), lines
    assert lines[1] == "a note"
    assert re.fullmatch(r"sweep: 2/3 \[0:00:00 elapsed, ETA 0:00:00\]", lines[2]), lines
    assert re.fullmatch(r"sweep: 3/3 \[0:00:00 elapsed\] last", lines[3]), lines


def test_eta_is_the_mean_pace_times_the_steps_left():
    p = Progress(10, "x", stream=io.StringIO())
    assert p.eta_s() is None
    p.started -= 20.0                       # 20 s for the first 4 steps
    p.done = 4
    assert abs(p.eta_s() - 30.0) < 0.1
    assert "[0:00:20 elapsed, ETA 0:00:30]" in p.line()


def test_a_bar_on_a_terminal():
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # 100 columns
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert tty.isatty()
            with Progress(4, "perf run", stream=tty) as p:
                p.step("trial 1: 3.0 Mpps")
                p.step()
            tty.flush()
        os.set_blocking(master, False)
        chunks = []
        while True:                          # everything the pty holds
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        text = b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        os.close(slave)
    assert "\r" in text and "perf run: 2/4" in text, text     # redrawn in place
    assert "trial 1: 3.0 Mpps" in text                          # details above the bar


def test_reserve_steps():
    assert hugepages.reserve_steps(0, 1024, 512) == [512, 1024]
    assert hugepages.reserve_steps(100, 1300, 512) == [612, 1124, 1300]
    assert hugepages.reserve_steps(1024, 1024, 512) == [1024]
    assert hugepages.reserve_steps(2048, 1024, 512) == [1024]       # shrinking: one write
    assert hugepages.reserve_steps(0, 100) == [100]
