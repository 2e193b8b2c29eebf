"""Errors of the evaluation that are the caller's to fix (``rag eval`` exits 2 on them)."""

from __future__ import annotations


class HttpEvalError(RuntimeError):
    """The service cannot be evaluated: unreachable, not ready, or an answer that is neither
    a result nor a request to wait (the message says which)."""
