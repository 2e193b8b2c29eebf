"""The FAISS vector store (``store``) and its on-disk form with a manifest (``persist``)."""
