"""`dpdkvirtio ctl` and the control server agree: the client's commands and their
arguments are derived from the server's ``cmd_*`` signatures (one table), and every way
of calling a command on the command line binds to its server method."""
import inspect

import pytest

from dpdkvirtio import control
from dpdkvirtio.errors import ConfigError


def _server(cmd):
    return getattr(control.ControlServer, "cmd_" + cmd.replace("-", "_"))


def test_the_client_offers_every_server_command_but_ping():
    """(The parser's choices are CTL_COMMANDS itself: test_cli checks them, as building
    the parser loads the demo, which needs the extension.)"""
    server = {n[4:].replace("_", "-") for n in dir(control.ControlServer) if n.startswith("cmd_")}
    assert set(control.CTL_COMMANDS) == server - {"ping"}


@pytest.mark.parametrize("cmd", [c for c in control.CTL_COMMANDS if c != "capture"])
def test_every_command_line_form_binds_to_the_server_method(cmd):
    params = control.ctl_arguments(cmd)
    required = [n for n, req in params if req and n != "options"]
    optional = [n for n, req in params if not req and n != "options"]
    takes_options = any(n == "options" for n, _ in params)
    words = [f"w{k}" for k in range(len(required))]
    forms = [words, words + [f"o{k}" for k in range(len(optional))]]
    if takes_options:
        forms.append(forms[-1] + ["a=1", "b=2"])
    for form in forms:
        kwargs = control.bind_ctl_words(cmd, form)
        inspect.signature(_server(cmd)).bind(None, **kwargs)       # the server accepts it
        assert [kwargs[n] for n in required] == words
        if takes_options and form[-1] == "b=2":
            assert kwargs["options"] == ["a=1", "b=2"]
    if required:
        with pytest.raises(ConfigError, match=f"ctl {cmd} needs {required[-1].upper()}"):
            control.bind_ctl_words(cmd, words[:-1])
    if not takes_options:
        with pytest.raises(ConfigError, match="too many arguments"):
            control.bind_ctl_words(cmd, forms[-1] + ["extra"])
