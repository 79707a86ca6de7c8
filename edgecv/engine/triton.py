"""Triton Inference Server as a backend: the network runs on a server, everything else stays local.

``TritonEngine`` sends the preprocessed batch to a model on a Triton server (HTTP/REST or gRPC,
through ``tritonclient``) and returns its outputs, behind the same :class:`BaseEngine` protocol as
ONNX Runtime and TensorRT; so ``edgecv.load(..., triton=URL)``, ``run``, ``bench``, ``eval`` and
the streaming API work unchanged against a server. The model's contract comes from the server:
a model written by ``edgecv deploy triton`` carries edgecv's metadata in its config's parameters
(``edgecv.meta``); any other model is recognised from its I/O shapes like a foreign ONNX file.

URLs: ``http://host:8000`` (or ``host:8000``) for HTTP, ``grpc://host:8001`` for gRPC,
``https://`` for HTTP over TLS. Every call has a timeout: a dead server is an error, never a hang.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edgecv._optional import require
from edgecv.artifact import ModelMeta, infer_meta
from edgecv.engine.base import BaseEngine, TensorSpec, override_meta
from edgecv.errors import ArtifactError, ConfigError, EngineError

log = logging.getLogger(__name__)

# KServe v2 / Triton datatypes
DTYPES = {
    "FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "UINT8": np.uint8, "INT8": np.int8,
    "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_,
}  # fmt: skip
TO_TRITON = {np.dtype(v).name: k for k, v in DTYPES.items()}
META_KEY = "edgecv.meta"
MODEL_SUFFIXES = (".onnx", ".engine", ".plan")


def parse_url(url: str) -> tuple[str, str, bool]:
    """``(protocol, host:port, ssl)`` from ``http://h:p``, ``https://h:p``, ``grpc://h:p`` or ``h:p`` (HTTP)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "grpc", "grpcs") or not parts.hostname:
        raise ConfigError(f"not a Triton URL: {url!r}", hint="use http://HOST:8000 (HTTP) or grpc://HOST:8001 (gRPC)")
    if parts.path not in ("", "/"):
        raise ConfigError(f"{url!r}: the model goes in the model argument, not the URL", hint="e.g. edgecv run shapes-det --triton http://HOST:8000")
    default = 8001 if scheme.startswith("grpc") else 8000
    try:
        port = parts.port or default
    except ValueError:
        raise ConfigError(f"bad port in Triton URL {url!r}") from None
    return ("grpc" if scheme.startswith("grpc") else "http"), f"{parts.hostname}:{port}", scheme in ("https", "grpcs")


def server_model_name(model: str | Path) -> str:
    """The Triton model name for ``model``: a deployed file's stem (``models/det.onnx`` -> ``det``) or the name itself."""
    path = Path(model)
    name = path.stem if path.suffix.lower() in MODEL_SUFFIXES else path.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"{str(model)!r} is not a Triton model name", hint="pass the name the model has in the server's repository")
    return name


class TritonEngine(BaseEngine):
    """A model on a Triton server.

    Args:
        model: the model's name in the server's repository (or the deployed file: its stem is the name).
        url: the server, ``http://host:8000`` or ``grpc://host:8001``.
        version: the model version ("" = the server's policy, normally the latest).
        timeout_s: per-request timeout (connecting gives up after at most 10 s).
        task, names: for a model without edgecv metadata (as for a foreign ONNX file).
        threads: not applicable (a server's threads are set on the server); must be None.

    Outputs are fresh arrays per call. A request that fails raises :class:`EngineError`.
    Threads: tritonclient's gRPC client is thread-safe; its HTTP client is not, so each thread
    that calls ``infer`` over HTTP gets its own connection (all closed by ``close``).
    """

    backend = "triton"

    def __init__(
        self,
        model: str | Path,
        *,
        url: str,
        version: str = "",
        timeout_s: float = 60.0,
        task: str | None = None,
        names: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        if threads is not None:
            raise ConfigError("--threads sets local ONNX Runtime threads; it does not apply to a Triton model", hint="set instance counts on the server (edgecv deploy triton --instances N)")
        if timeout_s <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout_s}")
        self.protocol, self.address, ssl = parse_url(url)
        self.url, self.model_name, self.version, self.timeout_s = url, server_model_name(model), str(version or ""), timeout_s
        self._ssl = ssl
        self.module = require(f"tritonclient.{self.protocol}", extra="triton")
        self.client = self._new_client()
        self._local = threading.local()
        self._local.client = self.client
        self._clients = [self.client]
        self._lock = threading.Lock()
        try:
            metadata, config = self._describe()
        except BaseException:
            self._close()
            raise
        self.max_batch = int(config.get("max_batch_size", 0) or 0)
        inputs = [self._spec(t) for t in metadata.get("inputs", [])]
        outputs = [self._spec(t) for t in metadata.get("outputs", [])]
        if not inputs or not outputs:
            raise ArtifactError(f"Triton model {self.model_name} has no inputs or outputs in its metadata")
        meta = self._meta(config, inputs, outputs, task, names)
        super().__init__(Path(self.model_name), meta, inputs, outputs)
        self.meta_source = "edgecv metadata (server config)" if _edgecv_param(config) else "recognised from the output layout (no edgecv metadata)"

    # ------------------------------------------------------------ setup
    def _new_client(self) -> Any:
        if self.protocol == "grpc":
            return self.module.InferenceServerClient(self.address, ssl=self._ssl)
        return self.module.InferenceServerClient(
            self.address, ssl=self._ssl, connection_timeout=min(self.timeout_s, 10.0), network_timeout=self.timeout_s
        )

    def _thread_client(self) -> Any:
        """gRPC: the one client (thread-safe); HTTP: this thread's own (tritonclient.http is single-threaded)."""
        if self.protocol == "grpc":
            return self.client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        if self.protocol == "grpc":
            kwargs.setdefault("client_timeout", self.timeout_s)
        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            raise self._server_error(what, exc) from exc
        except (OSError, TimeoutError) as exc:
            raise EngineError(
                f"cannot reach Triton at {self.url} ({what}): {exc}",
                hint="check the URL and that tritonserver runs (HTTP port 8000, gRPC 8001 by default)",
            ) from exc
        except Exception as exc:  # geventhttpclient / grpc raise their own connection errors
            if type(exc).__module__.split(".")[0] in ("gevent", "geventhttpclient", "grpc", "socket", "ssl"):
                raise EngineError(f"cannot reach Triton at {self.url} ({what}): {exc}", hint="check the URL and that tritonserver runs") from exc
            raise

    def _server_error(self, what: str, exc: Any) -> EngineError:
        text = str(exc.message() if callable(getattr(exc, "message", None)) else exc).strip()
        status = str(exc.status() if callable(getattr(exc, "status", None)) else "")
        if "unavailable" in text.lower() or "connect" in text.lower() or "StatusCode.UNAVAILABLE" in status:
            return EngineError(f"cannot reach Triton at {self.url} ({what}): {text}", hint="check the URL and that tritonserver runs")
        if "unknown model" in text.lower() or "not found" in text.lower() or "not ready" in text.lower():
            return EngineError(
                f"Triton at {self.url} has no ready model {self.model_name!r}: {text}",
                hint="deploy it (edgecv deploy triton MODEL -o REPO) and check the server's model list (GET /v2/repository/index)",
            )
        return EngineError(f"Triton {what} failed for {self.model_name}: {text}")

    def _describe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.protocol == "grpc":
            metadata = self._call("model metadata", self.client.get_model_metadata, self.model_name, self.version, as_json=True)
            config = self._call("model config", self.client.get_model_config, self.model_name, self.version, as_json=True)
            config = config.get("config", config)
        else:
            metadata = self._call("model metadata", self.client.get_model_metadata, self.model_name, self.version)
            config = self._call("model config", self.client.get_model_config, self.model_name, self.version)
        return metadata, config

    def _spec(self, tensor: dict[str, Any]) -> TensorSpec:
        dtype = DTYPES.get(str(tensor.get("datatype")))
        if dtype is None:
            raise ArtifactError(f"Triton model {self.model_name}: tensor {tensor.get('name')} has type {tensor.get('datatype')}, which edgecv cannot feed or read")
        return TensorSpec(str(tensor["name"]), tuple(int(d) for d in tensor.get("shape", [])), np.dtype(dtype))

    def _meta(self, config: dict[str, Any], inputs: list[TensorSpec], outputs: list[TensorSpec], task: str | None, names: Sequence[str] | None) -> ModelMeta:
        text = _edgecv_param(config)
        if text:
            try:
                meta = ModelMeta.from_dict(json.loads(text))
            except json.JSONDecodeError as exc:
                raise ArtifactError(f"Triton model {self.model_name}: corrupt edgecv.meta parameter: {exc}", hint="redeploy it with `edgecv deploy triton`") from exc
            return override_meta(meta, task, names, f"the server's config of {self.model_name}")
        meta = infer_meta(
            [d if d >= 0 else None for d in inputs[0].shape],
            [[d if d >= 0 else None for d in o.shape] for o in outputs],
            task=task,
            names=names,
        )
        log.info("Triton model %s has no edgecv metadata; recognised a %s model (%s)", self.model_name, meta.task, meta.output_format)
        return meta

    # ------------------------------------------------------------ inference
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.max_batch > 0:
            batch = next(iter(feeds.values())).shape[0]
            if batch > self.max_batch:
                raise EngineError(
                    f"batch {batch} is above Triton model {self.model_name}'s max_batch_size {self.max_batch}",
                    hint="send smaller batches, or redeploy with a larger batch range",
                )
        inputs = []
        for spec in self.inputs:
            array = np.ascontiguousarray(feeds[spec.name])
            item = self.module.InferInput(spec.name, list(array.shape), TO_TRITON[np.dtype(array.dtype).name])
            if self.protocol == "http":
                item.set_data_from_numpy(array, binary_data=True)
            else:
                item.set_data_from_numpy(array)
            inputs.append(item)
        if self.protocol == "http":
            wanted = [self.module.InferRequestedOutput(s.name, binary_data=True) for s in self.outputs]
        else:
            wanted = [self.module.InferRequestedOutput(s.name) for s in self.outputs]
        result = self._call("inference", self._thread_client().infer, self.model_name, inputs, model_version=self.version, outputs=wanted)
        out = {}
        for spec in self.outputs:
            array = result.as_numpy(spec.name)
            if array is None:
                raise EngineError(f"Triton model {self.model_name} returned no output {spec.name}")
            out[spec.name] = array
        return out

    def _close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            close = getattr(client, "close", None)
            if close is not None:
                close()


def _edgecv_param(config: dict[str, Any]) -> str:
    params = config.get("parameters") or {}
    entry = params.get(META_KEY) or {}
    return str(entry.get("string_value") or entry.get("stringValue") or "")
