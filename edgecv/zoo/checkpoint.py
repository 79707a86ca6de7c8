"""Checkpoints of built-in architectures: architecture name + config + state dict.

Saved with plain containers and tensors only, so they load with
``torch.load(..., weights_only=True)`` (no pickled classes, nothing executed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv._optional import require
from edgecv.artifact import atomic_output
from edgecv.errors import ArtifactError, ExportError
from edgecv.zoo.registry import get_architecture


def save_checkpoint(
    model: Any,
    path: Path,
    *,
    arch: str,
    names: tuple[str, ...],
    width: float = 1.0,
    half: bool = False,
    structure: dict[str, Any] | None = None,
    **info: Any,
) -> Path:
    """Save ``model``'s weights; ``half`` stores float tensors as float16 (half the size; loaded back as float32).

    ``structure``: a pruned model's layer sizes (:func:`edgecv.optimize.structure.structure_of`),
    applied to the freshly built architecture before its weights are loaded.
    """
    torch = require("torch")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": "edgecv-checkpoint-v1",
        "arch": arch,
        "names": list(names),
        "width": width,
        "info": info,
        "state_dict": state,
    }
    if structure is not None:
        payload["structure"] = structure
    with atomic_output(Path(path)) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of an edgecv checkpoint. Returns (nn.Module in eval mode, payload without weights)."""
    torch = require("torch")
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"checkpoint not found: {path}", hint="check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or unsafe file
        from edgecv.export.ultralytics import is_ultralytics_checkpoint

        if is_ultralytics_checkpoint(path):
            raise ArtifactError(
                f"{path} is an Ultralytics checkpoint (pickled ultralytics classes), not an edgecv one",
                hint=f"`edgecv export {path}` exports it with the ultralytics package (pip install ultralytics), "
                "or export it yourself with `yolo export model=... format=onnx` and pass the .onnx",
            ) from exc
        raise ArtifactError(
            f"cannot load {path} as a weights-only PyTorch checkpoint: {str(exc).splitlines()[0]}",
            hint="pass an edgecv checkpoint (state dict + architecture); pickled modules are not loaded for safety",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != "edgecv-checkpoint-v1":
        raise ArtifactError(
            f"{path} is not an edgecv checkpoint",
            hint="pass --arch NAME with a plain state dict, or a checkpoint written by edgecv's training scripts",
        )
    arch = get_architecture(payload["arch"])
    model = arch.build(len(payload["names"]), width=float(payload.get("width", 1.0)))
    if payload.get("structure"):
        from edgecv.optimize.structure import apply_structure

        apply_structure(model, payload["structure"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    load_state_dict_strict(model, state, path)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta


def load_state_dict_strict(model: Any, state_dict: dict[str, Any], source: Path) -> None:
    """Load weights, turning torch's long mismatch report into a short, actionable error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        raise ExportError(
            f"weights in {source} do not fit the architecture ({'; '.join(parts)})",
            hint="check --arch, --num-classes and --width match the checkpoint",
        )
    model.load_state_dict(state_dict)
