"""TritonEngine's pure parts: URLs, model names, options that do not apply (no server needed)."""

from __future__ import annotations

import pytest

from edgecv.engine.triton import parse_url, server_model_name
from edgecv.errors import ConfigError


def test_urls() -> None:
    assert parse_url("http://127.0.0.1:8000") == ("http", "127.0.0.1:8000", False)
    assert parse_url("localhost") == ("http", "localhost:8000", False)
    assert parse_url("grpc://10.0.0.2") == ("grpc", "10.0.0.2:8001", False)
    assert parse_url("https://triton.example:443/") == ("http", "triton.example:443", True)
    for bad in ("ftp://h:1", "http://h:8000/v2/models/det", "http://:8000", "http://h:port"):
        with pytest.raises(ConfigError):
            parse_url(bad)


def test_model_names() -> None:
    assert server_model_name("models/shapes-det.onnx") == "shapes-det"
    assert server_model_name("det.int8.engine") == "det.int8"
    assert server_model_name("detector") == "detector"
    with pytest.raises(ConfigError):
        server_model_name("a b")


def test_threads_do_not_apply() -> None:
    pytest.importorskip("tritonclient")
    from edgecv.engine.triton import TritonEngine

    with pytest.raises(ConfigError, match="threads"):
        TritonEngine("det", url="http://127.0.0.1:1", threads=2)


def test_missing_tritonclient_is_one_line_naming_the_extra() -> None:
    import subprocess
    import sys

    code = "import sys; sys.modules['tritonclient'] = None; sys.argv = ['edgecv', 'run', 'det', '--triton', 'http://127.0.0.1:1']\nfrom edgecv.cli import main\nmain()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "pip install 'edgecv[triton]'" in result.stderr and "Traceback" not in result.stderr
