ENGINES: dict[str, tuple[int, int]]
USES_RX: int
USES_TX_OUT: int
USES_TX_OWN: int
OUT_DEFAULTS_TO_IN: int
USES_GEN: int
