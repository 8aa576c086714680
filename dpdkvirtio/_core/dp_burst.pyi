# (no Python API: C functions for the other L1 modules)
