"""Layer 1: the domain types, the errors and the text utilities every other layer uses.

Nothing here imports another package of this project (docs/architecture.md).
"""
