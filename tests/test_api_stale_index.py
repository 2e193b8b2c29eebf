"""An index built by another attribution version (an older release of this code), served by
the real `rag serve`: refused with the rebuild hint by default, rebuilt from the data folder
when RAG_REBUILD_STALE_INDEX is set, as `make run` sets it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from test_api_support import REPO_DATA, LiveServer, prepare_dirs

from rag.engine import Engine
from rag.settings import Settings

pytestmark = pytest.mark.slow


def stale_index(root: Path) -> tuple[Path, Path]:
    """The seed article and an index of it built under attribution version "0-test"."""
    data, index = prepare_dirs(root, REPO_DATA, None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("rag.attribution.ATTRIBUTION_VERSION", "0-test")
        engine = Engine(Settings(data_dir=data, index_dir=index), use_reranker="off")
        engine.load_models()
        engine.build_index()
    return data, index


def readyz_error(server: LiveServer, timeout: float = 120.0) -> str:
    """The message /readyz gives once loading has failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.base_url}/readyz", timeout=5.0).json()
        message = body.get("error", {}).get("message", "")
        if "does not match" in message:
            return str(message)
        time.sleep(0.2)
    raise TimeoutError(server.log_tail())


def test_a_stale_index_is_refused_by_default_and_rebuilt_when_asked(tmp_path: Path) -> None:
    data, index = stale_index(tmp_path)
    server = LiveServer(tmp_path, data, index)
    try:
        server.start(wait_ready=False)
        message = readyz_error(server)
        assert "attribution 0-test" in message and "rag index --rebuild" in message
        server.stop()

        server.settings = {"RAG_REBUILD_STALE_INDEX": "true"}
        server.start()
        with server.client() as client:
            answer = client.post(
                "/ask", json={"question": "what did Merz say about German troops?"}
            ).json()["answer"]
        assert "Friedrich Merz" in answer["text"]
        assert "rebuilding" in server.logs()
    finally:
        server.stop()
    live = index / (index / "CURRENT").read_text().strip()
    manifest = json.loads((live / "manifest.json").read_text("utf-8"))
    assert "0-test" not in manifest["chunker_version"]
