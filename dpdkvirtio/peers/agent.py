"""A second dpdkvirtio process (``python -m dpdkvirtio.peers.agent_main``) driven with JSON-RPC
requests (dpdkvirtio.rpc): the peer "of our own" in tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import sys

from .. import rpc
from .._process import Child
from ..errors import remote_error
from .process import cpus

# Run first by an agent of another build: meson-python's editable finder sits on
# sys.meta_path ahead of sys.path and would hand out this checkout's package instead.
_FROM_PACKAGE_DIR = (
    "import os, runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]\n"
    "sys.path.insert(0, os.environ['DV_PACKAGE_DIR'])\n"
    "import dpdkvirtio\n"
    "if not dpdkvirtio.__file__.startswith(os.environ['DV_PACKAGE_DIR']):\n"
    "    sys.exit(f'agent: imported {dpdkvirtio.__file__}, not the build asked for')\n"
    "import importlib.util\n"
    "main = 'dpdkvirtio.peers.agent_main'\n"
    "if importlib.util.find_spec(main) is None:\n"
    "    main = 'dpdkvirtio._agent'              # a build from before the move\n"
    "runpy.run_module(main, run_name='__main__', alter_sys=True)\n"
)


class Agent:
    """A second process of our own (peers.agent_main) driven with JSON commands.
    ``package_dir``: a directory holding another build's ``dpdkvirtio`` package, which the
    agent imports instead of the running one (perf ab). ``started=False``: the process is
    made but not initialised; call ``start()`` (from any thread: several agents can
    initialise at once, while the thread that made them outlives them, as the parent-death
    signal is tied to it). ``spare_cpus``: more worker lcores, one per CPU, for PMDs
    besides the agent's own (``pmd_drain`` in interrupt mode)."""

    def __init__(self, memory_mode: str = "auto", cpu: int | None = None, timeout: float = 60.0,
                 env=None, control_cpus=None, package_dir: str | None = None,
                 started: bool = True, spare_cpus=None):
        c = cpus()
        self.cpu = c[0] if cpu is None else cpu
        argv = [sys.executable, "-m", "dpdkvirtio.peers.agent_main"]
        if package_dir is not None:
            argv = [sys.executable, "-c", _FROM_PACKAGE_DIR]
            env = dict(os.environ if env is None else env, DV_PACKAGE_DIR=str(package_dir))
        # stderr drained all along: DPDK logs a line per malformed message, and an agent
        # whose stderr pipe filled up once hung in its log thread (and on 'exit')
        self.child = Child(argv, stdin=True, stdout="rpc", env=env, err_tail_chars=1 << 16)
        self.proc = self.child.proc
        self.timeout = timeout
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert self.child.err is not None
        self._err = self.child.err
        self._conn = rpc.Connection(self.proc.stdout.fileno(), self.proc.stdin.fileno(),
                                    name="the agent")
        self._init = {"memory_mode": memory_mode, "cpu": self.cpu, "control_cpus": control_cpus}
        if spare_cpus:
            self._init["spare_cpus"] = list(spare_cpus)
        if started:
            self.start()

    def start(self) -> Agent:
        """Initialise the agent (EAL and all). Raises what ``call`` raises; an agent that did
        not come up is stopped here (nobody else would end it)."""
        try:
            self.call("init", **self._init)
        except BaseException as e:
            # an agent that did not come up is never handed out, so nobody else would end it
            self.child.stop()
            why = self.stderr().strip()
            if isinstance(e, TimeoutError):
                raise TimeoutError(f"agent did not start within {self.timeout:g} s (stopped it)"
                                   + (f"; its stderr:\n{why}" if why else "")) from None
            raise
        return self

    def call(self, op: str, timeout: float | None = None, **kw):
        """Run ``op_<op>`` in the agent; its result (a dict). Raises AgentError (what the
        agent raised, by class name), TimeoutError, RuntimeError (the agent died)."""
        try:
            return self._conn.call(op, timeout_s=timeout or self.timeout, **kw)
        except rpc.RpcTimeout:
            raise TimeoutError(f"agent did not answer {op!r} in time") from None
        except rpc.RpcClosed:
            self.child.wait(5)
            raise RuntimeError(f"agent exited ({self.proc.returncode}): {self.stderr()}") from None
        except rpc.RpcError as e:
            raise remote_error(AgentError, e.kind, f"{e.kind}: {e.message}", kind=e.kind) from None

    def stderr(self) -> str:
        """The last 3000 characters of the agent's stderr (drained on a thread all along)."""
        return self._err.text(3000, wait_eof_s=2.0 if self.proc.poll() is not None else 0.0)

    def close(self):
        """Ask the agent to close what it made and exit; stop it if it does not. Raises
        TimeoutError (it did not answer 'exit': hung) or AgentError (its clean-up failed)
        after it was stopped: a clean exit is part of what a test checks."""
        failure: BaseException | None = None
        if self.proc.poll() is None:
            try:
                self.call("exit", timeout=30)
            except (TimeoutError, AgentError) as e:
                failure = e
            except RuntimeError:
                pass                                  # it had died: nothing left to stop
            self.child.wait(15)
        self.child.stop()
        if isinstance(failure, TimeoutError):
            raise TimeoutError(f"{failure} (stopped it); its stderr:\n{self.stderr()}")
        if failure is not None:
            raise failure

    def kill(self):
        """Kill -9 (a crash); remove the runtime directory it could not."""
        self.child.kill()
        shutil.rmtree(f"/var/run/dpdk/dv{self.proc.pid}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AgentError(Exception):
    """The agent's op raised: ``kind`` is its class name; an AgentError for a
    dpdkvirtio.errors class is that class too (errors.remote_error)."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
