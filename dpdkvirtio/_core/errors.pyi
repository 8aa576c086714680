# The one choke point that turns DPDK's error conventions into Python exceptions (cdef
# functions only; the exception classes are in dpdkvirtio.errors).
