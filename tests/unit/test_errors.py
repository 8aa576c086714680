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
    assert cls.__name__ == "MempoolError"
    assert errors.error_class(errors.MempoolError, err) is cls          # cached


def test_plain_class_for_other_errnos():
    assert errors.error_class(errors.PortError, errno.EINVAL) is errors.PortError


def test_specialised_errors():
    assert isinstance(errors.PeerTimeoutError("x"), TimeoutError)
    assert errors.MempoolBusyError("busy").errno == errno.EBUSY
    assert isinstance(errors.SocketPathError("x"), ValueError)
    assert "spawn" in str(errors.ForkedProcessError())


def test_pickle_roundtrip():
    e = errors.EalError(errno.EALREADY, "already", "rte_eal_init", "start a new process")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is errors.EalError and str(e2) == str(e)
