"""The exception hierarchy and the errno mapping."""
import errno
import pickle

import pytest

from dpdkvirtio import errors


def test_dpdk_error_is_oserror_with_function_and_hint():
    e = errors.PortError(errno.EINVAL, "Invalid argument", "rte_eth_dev_start", "Check it")
    assert isinstance(e, OSError) and isinstance(e, errors.DpdkError)
    assert e.errno == errno.EINVAL and e.function == "rte_eth_dev_start"
    assert str(e) == "rte_eth_dev_start() failed: Invalid argument [EINVAL]. Check it"


def test_error_without_errno():
    e = errors.VhostError(None, "failed without an error code", "rte_vhost_driver_start")
    assert e.errno is None
    assert "rte_vhost_driver_start() failed" in str(e)


@pytest.mark.parametrize("err, builtin", [(errno.ENOMEM, MemoryError), (errno.EEXIST, FileExistsError),
                                          (errno.ENOENT, FileNotFoundError),
                                          (errno.EACCES, PermissionError)])
def test_errno_specific_classes(err, builtin):
    cls = errors.error_class(errors.MempoolError, err)
    assert issubclass(cls, errors.MempoolError) and issubclass(cls, builtin)
    assert cls.__name__ == f"MempoolError[{errno.errorcode[err]}]"      # not the base's name
    assert errors.error_class(errors.MempoolError, err) is cls          # cached


def test_plain_class_for_other_errnos():
    assert errors.error_class(errors.PortError, errno.EINVAL) is errors.PortError


def test_specialised_errors():
    assert isinstance(errors.PeerTimeoutError("x"), TimeoutError)
    assert errors.MempoolBusyError("busy").errno == errno.EBUSY
    assert isinstance(errors.SocketPathError("x"), ValueError)
    assert "spawn" in str(errors.ForkedProcessError())


def test_wrong_state_errors_share_one_base_and_keep_their_subsystem():
    for e, subsystem in ((errors.PortStateError("closed", "open it"), errors.PortError),
                         (errors.PmdStateError("running", "stop it"), errors.PmdError)):
        assert isinstance(e, errors.StateError) and isinstance(e, subsystem)
        assert e.errno is None and str(e) == f"{e.message}. {e.hint}"
    assert not isinstance(errors.PmdError(None, "x"), errors.StateError)


def _every_error():
    """One instance of every exception class of the hierarchy (and errno classes)."""
    out = [errors.DpdkError(errno.EIO, "io", "rte_x", "hint"),
           errors.EalError(errno.EALREADY, "already", "rte_eal_init", "start a new process"),
           errors.MempoolError(None, "no pool", "rte_pktmbuf_pool_create"),
           errors.MempoolBusyError("busy", "free bursts"),
           errors.PortError(errno.EINVAL, "bad", "rte_eth_dev_start"),
           errors.PortStateError("closed", "Create a new port"),
           errors.VhostError(errno.EEXIST, "exists", "rte_vhost_driver_register"),
           errors.PmdError(None, "lcore busy"),
           errors.PmdStateError("closed", "make a new Pmd"),
           errors.StateError("switch closed", "make a new Switch"),
           errors.PeerTimeoutError("no peer within 1 s", "start the peer"),
           errors.ForkedProcessError(),
           errors.ConfigError("bad value"),
           errors.SocketPathError("too long")]
    for base in (errors.MempoolError, errors.PortError, errors.VhostError):
        for err in (errno.ENOMEM, errno.EEXIST, errno.ENOENT, errno.EACCES):
            out.append(errors.error_class(base, err)(err, "mixed", "rte_y", None))
    return out


def _same(a, b):
    assert type(a) is type(b) and str(a) == str(b) and a.args == b.args
    if isinstance(a, errors.DpdkError):
        assert (a.errno, a.function, a.hint, a.message) == (b.errno, b.function, b.hint, b.message)


@pytest.mark.parametrize("e", _every_error(), ids=lambda e: type(e).__name__)
def test_every_error_pickles(e):
    _same(e, pickle.loads(pickle.dumps(e)))


def _raise_all(conn):
    for e in _every_error():
        conn.send((e, str(e)))
    conn.close()


def test_errors_cross_a_multiprocessing_pipe():
    import multiprocessing
    ctx = multiprocessing.get_context("fork")       # (spawn leaves a resource tracker behind)
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_raise_all, args=(child,))
    p.start()
    child.close()
    got = []
    try:
        while True:
            got.append(parent.recv())
    except EOFError:
        pass
    p.join(30)
    assert p.exitcode == 0
    expected = _every_error()
    assert len(got) == len(expected)
    for a, (b, text) in zip(expected, got):
        assert type(b) is type(a) and str(b) == text
        if not isinstance(a, errors.ForkedProcessError):      # (its message names the pid)
            _same(a, b)


def test_an_error_another_process_reported_is_its_class_here_too():
    """errors.remote_error: the client's class and the named dpdkvirtio.errors class at
    once, with the remote text; an unknown name gives the client's class alone."""
    from dpdkvirtio import errors
    from dpdkvirtio.control import ControlError
    from dpdkvirtio.peers.agent import AgentError
    e = errors.remote_error(ControlError, "ConfigError", "flow statistics are off")
    assert isinstance(e, ControlError) and isinstance(e, errors.ConfigError)
    assert str(e) == "flow statistics are off"
    e = errors.remote_error(ControlError, "PortError[EEXIST]", "port x exists")
    assert isinstance(e, errors.PortError) and isinstance(e, errors.DpdkError)
    assert str(e) == "port x exists" and e.errno is None
    e = errors.remote_error(ControlError, "KeyError", "'x'")
    assert type(e) is ControlError and str(e) == "'x'"
    e = errors.remote_error(AgentError, "PmdError", "PmdError: closed", kind="PmdError")
    assert isinstance(e, AgentError) and isinstance(e, errors.PmdError) and e.kind == "PmdError"
    e = errors.remote_error(ControlError, "PmdStateError", "the PMD is closed")
    assert isinstance(e, errors.StateError) and isinstance(e, errors.PmdError)
    assert errors.remote_error(ControlError, "ConfigError", "a").__class__ is \
        errors.remote_error(ControlError, "ConfigError", "b").__class__
