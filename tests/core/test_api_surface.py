"""The public names: everything in __all__ exists, one name per limit."""
import pytest

import dpdkvirtio as dv
from dpdkvirtio.errors import ConfigError


def test_every_public_name_resolves():
    missing = [n for n in dv.__all__ if not hasattr(dv, n)]
    assert not missing
    for name in ("Switch", "SwitchConfig", "Assignment", "GeneratorHandle", "PMD_MAX_BURST"):
        assert name in dv.__all__                        # returned or documented: exported


def test_two_burst_limits_have_two_names(eal):
    assert (dv.MAX_BURST, dv.PMD_MAX_BURST) == (512, 64)
    dv.Burst(dv.MAX_BURST).free()
    with pytest.raises(ConfigError, match=f"1..{dv.MAX_BURST}"):
        dv.Burst(dv.MAX_BURST + 1)
    p = dv.Pmd()
    try:
        p.burst_size = dv.PMD_MAX_BURST
        with pytest.raises(ConfigError, match=f"1..{dv.PMD_MAX_BURST}"):
            p.burst_size = dv.PMD_MAX_BURST + 1
    finally:
        p.close()


def test_a_closed_switch_and_a_closed_pmd_raise_the_one_wrong_state_error(eal):
    """dv.StateError is the base of every wrong-state error: a closed Switch raises it,
    a closed Pmd a PmdStateError (a PmdError too), each with a hint."""
    sw = dv.Switch("brstate")
    sw.close()
    with pytest.raises(dv.StateError, match="closed. make a new Switch"):
        sw.add_port("a", "dpdkvhostuser")
    p = dv.Pmd()
    p.close()
    with pytest.raises(dv.PmdStateError, match="closed") as info:
        p.start()
    assert isinstance(info.value, dv.StateError) and isinstance(info.value, dv.PmdError)
