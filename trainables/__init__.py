"""Methods and the building blocks they share; see :mod:`trainables.registry`.

Importing this package does no work: no torch, no data, no registration side effects beyond
the method modules' own decorators when :func:`registered_methods` discovers them.
"""

from trainables.registry import get_method, register_method, registered_methods

__all__ = ["get_method", "register_method", "registered_methods"]
