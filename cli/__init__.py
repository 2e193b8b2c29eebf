"""Layer 5: the ``rag`` command, the only place that knows every other layer."""
