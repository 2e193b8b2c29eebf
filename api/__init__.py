"""The HTTP service: FastAPI app factory in ``api.app``; run it with ``rag serve``."""
