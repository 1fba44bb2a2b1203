"""Methods and the building blocks they share; see :mod:`trainables.registry`.

Method modules mark details their paper does not settle: ``[CHOICE]`` where neither the
paper nor any public code says (we decided, and every choice is a config key), ``[CONFLICT]``
where the paper contradicts itself or its official code (both readings are config values).
docs/methods.md gives each method's readings in full.

Importing this package does no work: no torch, no data, no registration side effects beyond
the method modules' own decorators when :func:`registered_methods` discovers them.
"""

from trainables.registry import get_method, register_method, registered_methods

__all__ = ["get_method", "register_method", "registered_methods"]
