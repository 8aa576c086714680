"""The guest harness uses a kernel already in its cache without asking apt-cache."""
import pytest

from tests.guest import guestlib


def test_cached_kernel_needs_no_apt_cache(tmp_path, monkeypatch):
    (tmp_path / "linux-image-6.1.0-99-cloud-amd64_6.1.999-1_amd64.deb").write_bytes(b"")
    monkeypatch.setattr(guestlib, "CACHE", tmp_path)

    def no_apt(cmd, **kw):
        raise AssertionError(f"asked {cmd[0]} although the cache has a kernel")
    monkeypatch.setattr(guestlib, "_run", no_apt)
    assert guestlib._kernel_package() == "linux-image-6.1.0-99-cloud-amd64"


def test_empty_cache_asks_apt_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(guestlib, "CACHE", tmp_path)
    calls = []

    class Answer:
        stdout, stderr = "  Depends: linux-image-6.1.0-7-cloud-amd64\n", ""
    monkeypatch.setattr(guestlib, "_run", lambda cmd, **kw: calls.append(cmd) or Answer())
    assert guestlib._kernel_package() == "linux-image-6.1.0-7-cloud-amd64"
    assert calls and calls[0][0] == "apt-cache"
    with pytest.raises(guestlib.GuestUnavailable):
        Answer.stdout = ""
        guestlib._kernel_package()
