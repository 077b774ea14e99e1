"""Channel kinds: one module per kind, built from config through the plain mapping in ``registry``.

Adding a kind:

1. one module here with a :class:`~broadcaster.channels.base.Channel` subclass: its
   typed :class:`~broadcaster.config.KindOptions` and ``parse_options``, ``render``
   and ``measure_piece``, ``payload`` if it sends a body, ``send`` (and ``reconcile``
   if the provider can be asked), its ``classify_*`` error map, and the recording
   answer a dry-run gives in the provider's wire format; SDK imports inside methods;
2. one line in ``registry.KINDS`` (templates may then target it: the catalogue is given the registry's kinds);
3. a fake provider in ``tests/fakes/`` and a ``KindCase`` in ``tests/channels/kinds.py``: the conformance
   suite then runs it.
"""
