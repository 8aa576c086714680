"""Socket path checks happen before DPDK sees a path, each with a message saying what to do."""
import os
import socket
import stat

import pytest

from dpdkvirtio import sockets
from dpdkvirtio.errors import SocketPathError


def test_ok_path(tmp_path):
    d = "/tmp"
    assert sockets.check_server_path(os.path.join(d, "dv-ok.sock")) == "/tmp/dv-ok.sock"


def test_too_long():
    p = "/tmp/" + "x" * 103 + ".sock"
    with pytest.raises(SocketPathError, match="107-byte limit"):
        sockets.check_server_path(p)
    with pytest.raises(SocketPathError, match="shorter directory"):
        sockets.check_client_path(p)


def test_exactly_107_bytes_is_accepted(tmp_path):
    p = "/tmp/" + "y" * (107 - 5)
    assert len(p) == 107
    assert sockets.check_server_path(p) == p


def test_missing_directory():
    with pytest.raises(SocketPathError, match="does not exist.*Create it"):
        sockets.check_server_path("/tmp/no-such-dir-dv/x.sock")


def test_parent_not_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SocketPathError, match="not a directory"):
        sockets.check_server_path(str(f / "x.sock"))


def test_regular_file_in_the_way(tmp_path):
    f = tmp_path / "x.sock"
    f.write_text("x")
    with pytest.raises(SocketPathError, match="is a file, not a socket"):
        sockets.check_server_path(str(f))
    assert f.exists()              # never removed
    with pytest.raises(SocketPathError, match="not a socket"):
        sockets.check_client_path(str(f))


def test_directory_in_the_way(tmp_path):
    with pytest.raises(SocketPathError, match="directory, not a socket"):
        sockets.check_server_path(str(tmp_path))


def test_stale_socket_is_removed(tmp_path):
    p = str(tmp_path / "s.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
    s.close()                      # file stays, nobody listens
    assert stat.S_ISSOCK(os.lstat(p).st_mode)
    assert sockets.check_server_path(p) == p
    assert not os.path.exists(p)


def test_stale_socket_kept_when_asked(tmp_path):
    p = str(tmp_path / "s.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
    s.close()
    with pytest.raises(SocketPathError, match="stale"):
        sockets.check_server_path(p, remove_stale=False)


def test_live_socket_is_refused(tmp_path):
    p = str(tmp_path / "s.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
    s.listen(1)
    try:
        with pytest.raises(SocketPathError, match="in use"):
            sockets.check_server_path(p)
        assert os.path.exists(p)
    finally:
        s.close()


def test_symlink_is_refused(tmp_path):
    target = tmp_path / "target.sock"
    link = tmp_path / "link.sock"
    link.symlink_to(target)
    with pytest.raises(SocketPathError, match="symbolic link"):
        sockets.check_server_path(str(link))


def test_comma_is_refused():
    with pytest.raises(SocketPathError, match="','"):
        sockets.check_client_path("/tmp/a,b.sock")


def test_client_path_may_not_exist_yet():
    assert sockets.check_client_path("/tmp/dv-later.sock") == "/tmp/dv-later.sock"


def test_socket_dir_rules(tmp_path):
    d = tmp_path / "socks"
    d.mkdir(mode=0o750)
    assert sockets.check_socket_dir(str(d)) == str(d)
    os.chmod(d, 0o777)
    with pytest.raises(SocketPathError, match="world-writable"):
        sockets.check_socket_dir(str(d))
    os.chmod(d, 0o1777)            # sticky, like /tmp
    assert sockets.check_socket_dir(str(d))
    with pytest.raises(SocketPathError, match="world-writable"):
        sockets.check_socket_dir(str(d), allow_world_writable_sticky=False)
    with pytest.raises(SocketPathError, match="does not exist"):
        sockets.check_socket_dir(str(tmp_path / "nope"))
