"""Dataset readers for calibration and evaluation: COCO json, YOLO txt labels, image folders.

:func:`open_dataset` recognises the layout of a path:

- ``DIR/annotations.json`` + ``DIR/images/`` (+ optional ``DIR/masks/<stem>.png``): edgecv's
  COCO layout, as written by :mod:`edgecv.data.synthetic`.
- ``DIR/annotations/instances_<split>.json`` + ``DIR/<split>/`` or ``DIR/images/``: standard COCO.
- ``some.json``: a COCO file; images are looked up next to it and in sibling ``images/`` folders.
- ``DIR/images/`` + ``DIR/labels/`` (or their ``val/``/``train/`` split subfolders), or a YOLO
  ``data.yaml``: YOLO txt labels (``class cx cy w h`` normalised to 0-1, one object a line).
- anything else holding images (a folder, a glob, one file): an unlabelled image folder.

Boxes are xyxy float32 pixels, class ids are 0-based indices into ``Dataset.names``
(COCO categories sorted by id). Semantic masks are uint8 PNGs: 0 = background,
k = the k-th category.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecv.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
KINDS = ("coco", "yolo", "images")
_SPLITS = ("val", "valid", "validation", "test", "train")  # preferred order when no split is given
_NAMES_FILES = ("data.yaml", "dataset.yaml", "classes.txt", "names.txt")
_LAYOUTS = (
    "expected one of: DIR/annotations.json + DIR/images/ (edgecv COCO), DIR/annotations/instances_*.json "
    "(COCO), DIR/images/ + DIR/labels/ (YOLO), a COCO .json, a YOLO data.yaml, or a folder of images"
)


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.float32)


class Sample:
    """One image and its labels.

    Attributes:
        image_id: COCO ``images[].id``; the position in the sorted file list for YOLO and image folders.
        path: the image file.
        class_ids: (N,) int32, 0-based index into ``Dataset.names``.
        iscrowd: (N,) bool, COCO crowd regions (the mAP ignores them, like COCOeval); False for YOLO.
        semantic_mask_path: the class-map PNG, or None.

    ``width``/``height`` come from the annotation file when it gives them; otherwise they
    are read from the image on first use (and :meth:`load_image` records them). YOLO boxes
    are stored normalised and scaled to pixels when :attr:`boxes` is first read.
    """

    __slots__ = ("image_id", "path", "class_ids", "iscrowd", "semantic_mask_path", "_size", "_boxes", "_normalized")

    def __init__(
        self,
        image_id: int,
        path: Path,
        *,
        width: int | None = None,
        height: int | None = None,
        boxes: np.ndarray | None = None,
        class_ids: np.ndarray | None = None,
        iscrowd: np.ndarray | None = None,
        semantic_mask_path: Path | None = None,
        normalized: bool = False,
    ) -> None:
        self.image_id = int(image_id)
        self.path = Path(path)
        self._boxes = _empty_boxes() if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        self.class_ids = np.zeros(0, np.int32) if class_ids is None else np.asarray(class_ids, np.int32).reshape(-1)
        self.iscrowd = np.zeros(len(self.class_ids), bool) if iscrowd is None else np.asarray(iscrowd, bool).reshape(-1)
        if not len(self._boxes) == len(self.class_ids) == len(self.iscrowd):
            raise ValueError(
                f"{self.path}: {len(self._boxes)} boxes, {len(self.class_ids)} class ids, {len(self.iscrowd)} iscrowd"
            )
        self.semantic_mask_path = semantic_mask_path
        self._size = (int(width), int(height)) if width and height else None
        self._normalized = normalized

    def __repr__(self) -> str:
        size = f"{self._size[0]}x{self._size[1]}" if self._size else "size unread"
        return f"Sample(image_id={self.image_id}, path={str(self.path)!r}, {size}, {len(self.class_ids)} objects)"

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels (reads the image if the annotations did not give it)."""
        if self._size is None:
            self.load_image()
        assert self._size is not None
        return self._size

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float32 xyxy in pixels."""
        if self._normalized:
            w, h = self.size
            self._boxes = (self._boxes * np.array([w, h, w, h], np.float32)).astype(np.float32)
            self._normalized = False
        return self._boxes

    def load_image(self) -> np.ndarray:
        """Decode the image.

        Returns:
            (H, W, 3) uint8 BGR.

        Raises:
            DatasetError: the file is missing or not a readable image.
        """
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            why = "does not exist" if not self.path.exists() else "is not a readable image"
            raise DatasetError(
                f"image {self.path} {why}",
                hint=f"check the file; supported formats: {', '.join(sorted(IMAGE_SUFFIXES))}",
            )
        size = (int(image.shape[1]), int(image.shape[0]))
        if self._size is None:
            self._size = size
        elif self._size != size:
            log.warning(
                "%s is %dx%d but its annotations say %dx%d; its boxes may not fit the image",
                self.path,
                size[0],
                size[1],
                self._size[0],
                self._size[1],
            )
            self._size = size
        return image

    def load_semantic_mask(self) -> np.ndarray | None:
        """Read the semantic mask, if the sample has one.

        Returns:
            (H, W) int32 class map (0 = background, k = k-th category), or None.
        """
        if self.semantic_mask_path is None:
            return None
        mask = cv2.imread(str(self.semantic_mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise DatasetError(f"cannot read mask {self.semantic_mask_path}", hint="masks must be single-channel PNGs")
        if mask.ndim == 3:
            if not all(np.array_equal(mask[..., 0], mask[..., c]) for c in range(1, mask.shape[2])):
                raise DatasetError(
                    f"mask {self.semantic_mask_path} is a colour image",
                    hint="save masks as single-channel uint8 PNGs of class indices (not a colour palette)",
                )
            mask = mask[..., 0]
        return mask.astype(np.int32)


@dataclass
class Dataset:
    """Images with (optionally) labels.

    Attributes:
        kind: "coco", "yolo" or "images".
        root: the dataset folder (or the annotation file's folder).
        names: class names, index -> name.
        samples: the images, in a stable order (COCO file order; sorted paths otherwise).
        category_ids: index -> original category id (COCO ids; YOLO/images: the index itself).
        has_names: False when the names were invented (``class0`` ...) for lack of a names file.
    """

    kind: str
    root: Path
    names: tuple[str, ...]
    samples: list[Sample]
    category_ids: tuple[int, ...] = ()
    has_names: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.category_ids:
            self.category_ids = tuple(range(len(self.names)))

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def has_masks(self) -> bool:
        """True when every sample has a semantic mask."""
        return bool(self.samples) and all(s.semantic_mask_path is not None for s in self.samples)

    def describe(self) -> str:
        """One line: kind, root, images, classes, objects, masks."""
        objects = sum(len(s) for s in self.samples)
        masks = ", semantic masks" if self.has_masks else ""
        return (
            f"{self.kind} dataset {self.root}: {len(self)} images, {self.num_classes} classes, {objects} objects{masks}"
        )


# --------------------------------------------------------------------------- images


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def list_images(path: str | Path) -> list[Path]:
    """Image files of a folder (not recursive), a glob (``**`` recurses) or a single file, sorted.

    Extensions (any case): jpg jpeg png bmp webp tif tiff. A glob matching nothing or a
    folder without images gives an empty list.

    Raises:
        DatasetError: ``path`` is neither an existing file/folder nor a glob.
    """
    text = str(path)
    p = Path(path)
    if p.is_dir():
        files = list(p.iterdir())
    elif p.is_file():
        files = [p]
    elif _is_glob(text):
        files = [Path(f) for f in glob.glob(text, recursive=True)]
    else:
        raise DatasetError(f"{p} does not exist", hint="pass an image folder, an image file or a glob like 'dir/*.jpg'")
    return sorted(f for f in files if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def _image_folder(path: str | Path) -> Dataset:
    files = list_images(path)
    if not files:
        raise DatasetError(f"no images found at {path}", hint=_LAYOUTS)
    root = Path(path) if Path(path).is_dir() else files[0].parent
    # DIR/images/ + DIR/masks/<stem>.png: semantic masks without box labels (e.g. binary text / person masks)
    masks = root.parent / "masks" if root.name == "images" else None
    if masks is not None and masks.is_dir():
        samples = [Sample(i, f, semantic_mask_path=m if (m := masks / f"{f.stem}.png").is_file() else None) for i, f in enumerate(files)]
        return Dataset("images", root.parent, (), samples, has_names=False)
    return Dataset("images", root, (), [Sample(i, f) for i, f in enumerate(files)], has_names=False)


# --------------------------------------------------------------------------- COCO


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint="re-export the annotations; the file may be truncated",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _image_roots(json_path: Path, images_dir: Path | None) -> list[Path]:
    """Folders where a COCO file's ``file_name`` entries may live, most likely first."""
    here = json_path.parent
    roots = [images_dir] if images_dir else []
    roots += [here / "images", here]
    split = re.sub(r"^(instances|image_info)_", "", json_path.stem)
    if here.name == "annotations":
        roots += [here.parent / split, here.parent / "images" / split, here.parent / "images", here.parent]
    roots += [here.parent / "images", here / split]
    return [r for r in dict.fromkeys(roots) if r is not None]


def read_coco(json_path: Path, *, images_dir: Path | None = None, masks_dir: Path | None = None) -> Dataset:
    """Read a COCO detection json.

    Args:
        json_path: the annotations file.
        images_dir: where ``file_name`` is relative to; found automatically when None.
        masks_dir: folder of ``<image stem>.png`` semantic masks; ``masks/`` next to the json when None.
    """
    json_path = Path(json_path)
    data = _load_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(
            f"{json_path} is not a COCO annotation file: no 'images' list",
            hint="COCO json needs images[{id, file_name, width, height}], annotations[...] and categories[{id, name}]",
        )
    try:
        cats = sorted(data.get("categories") or [], key=lambda c: int(c["id"]))
        category_ids = tuple(int(c["id"]) for c in cats)
        names = tuple(str(c.get("name", c["id"])) for c in cats)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{json_path}: malformed 'categories' ({exc!r})", hint="each category needs an integer 'id' and a 'name'"
        ) from exc
    index_of = {cid: i for i, cid in enumerate(category_ids)}
    if len(index_of) != len(category_ids):
        raise DatasetError(f"{json_path}: duplicate category ids in {list(category_ids)}")
    if not data["images"]:
        raise DatasetError(f"{json_path} lists no images")

    objects: dict[int, list[tuple[list[float], int, bool]]] = {}
    for n, ann in enumerate(data.get("annotations") or []):
        where = f"{json_path}: annotations[{n}] (id {ann.get('id', '?') if isinstance(ann, dict) else '?'})"
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            cat = int(ann["category_id"])
            objects.setdefault(int(ann["image_id"]), []).append(
                ([x, y, x + w, y + h], cat, bool(ann.get("iscrowd", 0)))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{where} is malformed ({exc!r})", hint="annotations need image_id, category_id and bbox [x, y, w, h]"
            ) from exc
        if cat not in index_of:
            raise DatasetError(f"{where} has category_id {cat}, which is not in categories {list(category_ids)}")

    try:
        entries = [(int(im["id"]), str(im["file_name"]), im.get("width"), im.get("height")) for im in data["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{json_path}: malformed 'images' entry ({exc!r})", hint="images need 'id' and 'file_name'"
        ) from exc
    unknown = set(objects) - {e[0] for e in entries}
    if unknown:
        raise DatasetError(f"{json_path}: annotations refer to image ids not in 'images': {sorted(unknown)[:5]}")

    roots = _image_roots(json_path, images_dir)
    first = entries[0][1]
    root = next((r for r in roots if (r / first).is_file()), None)
    if root is None:
        raise DatasetError(
            f"cannot find the images of {json_path}: {first!r} is not in " + ", ".join(str(r) for r in roots),
            hint=f"put the images in {json_path.parent / 'images'}/ (file_name is relative to it)",
        )
    missing = [f for _, f, _, _ in entries if not (root / f).is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(entries)} images listed in {json_path} are missing from {root} (first: {missing[0]!r})",
            hint="copy the missing images or remove them from the json",
        )
    in_annotations = json_path.parent.name == "annotations"
    dataset_root = json_path.parent.parent if in_annotations else json_path.parent
    if masks_dir is None:
        masks_dir = next((m for m in (json_path.parent / "masks", dataset_root / "masks") if m.is_dir()), None)

    samples = []
    for image_id, file_name, width, height in entries:
        objs = objects.get(image_id, [])
        mask = masks_dir / (Path(file_name).stem + ".png") if masks_dir else None
        samples.append(
            Sample(
                image_id,
                root / file_name,
                width=width,
                height=height,
                boxes=np.array([o[0] for o in objs], np.float32).reshape(-1, 4),
                class_ids=np.array([index_of[o[1]] for o in objs], np.int32),
                iscrowd=np.array([o[2] for o in objs], bool),
                semantic_mask_path=mask if mask is not None and mask.is_file() else None,
            )
        )
    log.debug("read %s: %d images, %d categories, images in %s", json_path, len(samples), len(names), root)
    return Dataset("coco", dataset_root, names, samples, category_ids)


# --------------------------------------------------------------------------- YOLO


def _load_yaml(path: Path) -> dict[str, Any]:
    """A dataset YAML file, read by PyYAML (a dependency: the same result on every install)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a YAML mapping", hint="expected keys such as 'names:' and 'val:'")
    return data


def _names_from(value: Any, source: Path) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    if isinstance(value, dict):
        try:
            mapping = {int(k): str(v) for k, v in value.items()}
        except ValueError as exc:
            raise DatasetError(f"{source}: 'names' keys must be class indices 0, 1, ...") from exc
        if sorted(mapping) != list(range(len(mapping))):
            raise DatasetError(
                f"{source}: 'names' indices must be 0..{len(mapping) - 1} without gaps, got {sorted(mapping)}"
            )
        return tuple(mapping[i] for i in range(len(mapping)))
    raise DatasetError(
        f"{source}: cannot read class names from {value!r}",
        hint="write 'names: [a, b]', a block list, or a mapping '0: a' per line",
    )


def _find_names(dirs: list[Path]) -> tuple[str, ...] | None:
    for d in dict.fromkeys(dirs):
        for name in _NAMES_FILES:
            f = d / name
            if not f.is_file():
                continue
            if f.suffix == ".yaml":
                data = _load_yaml(f)
                if "names" in data:
                    return _names_from(data["names"], f)
            else:
                return tuple(line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
    return None


def _read_labels(path: Path, num_names: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One YOLO label file -> ((N, 4) float32 normalised xyxy clipped to [0, 1], (N,) int32 classes)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read label file {path}: {exc}") from exc
    boxes, classes = [], []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise DatasetError(
                f"{where}: not a list of numbers: {line!r}", hint="each line is 'class cx cy w h'"
            ) from None
        n = len(values)
        if n == 5:
            cx, cy, w, h = values[1:]
            if w < 0 or h < 0:
                raise DatasetError(f"{where}: negative width/height in {line!r}")
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        elif n >= 7 and n % 2 == 1:  # YOLO-seg polygon: class x1 y1 x2 y2 ...
            xs, ys = values[1::2], values[2::2]
            box = [min(xs), min(ys), max(xs), max(ys)]
        else:
            raise DatasetError(
                f"{where}: expected 5 values 'class cx cy w h' (or a 'class x1 y1 x2 y2 ...' polygon), got {n}: {line!r}",
                hint="fix or delete the line",
            )
        cls = values[0]
        if not cls.is_integer() or cls < 0 or (num_names is not None and cls >= num_names):
            limit = f" (the names file lists {num_names} classes)" if num_names is not None else ""
            raise DatasetError(f"{where}: class {values[0]:g} is not a valid class index{limit}: {line!r}")
        coords = np.array(values[1:])
        if not np.isfinite(coords).all() or coords.min() < -0.01 or coords.max() > 1.01:
            raise DatasetError(
                f"{where}: coordinates must be normalised to 0-1, got {line!r}",
                hint="YOLO labels divide x and w by the image width and y and h by the height",
            )
        boxes.append(box)
        classes.append(int(cls))
    out = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0.0, 1.0)
    return out, np.array(classes, np.int32)


def read_yolo(
    images_dir: Path, labels_dir: Path, *, names: tuple[str, ...] | None = None, root: Path | None = None
) -> Dataset:
    """Read YOLO txt labels: ``labels_dir/<image stem>.txt`` for each image of ``images_dir``.

    Args:
        images_dir: folder of images.
        labels_dir: folder of label files; an image without one has no objects.
        names: class names; otherwise read from data.yaml / dataset.yaml / classes.txt / names.txt in
            ``root`` or above ``images_dir``, else ``class0`` ... up to the largest class id.
        root: the dataset folder (default: the parent of ``images_dir``).
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    root = Path(root) if root else images_dir.parent
    files = list_images(images_dir)
    if not files:
        raise DatasetError(
            f"no images in {images_dir}", hint="YOLO datasets keep images in DIR/images/ and labels in DIR/labels/"
        )
    if names is None:
        names = _find_names([root, images_dir.parent, images_dir.parent.parent, labels_dir.parent])
    has_names = names is not None
    samples, unlabelled, top = [], 0, -1
    for i, f in enumerate(files):
        label_file = labels_dir / (f.stem + ".txt")
        if not label_file.is_file():
            unlabelled += 1
            samples.append(Sample(i, f))
            continue
        boxes, classes = _read_labels(label_file, len(names) if names is not None else None)
        top = max(top, int(classes.max(initial=-1)))
        samples.append(Sample(i, f, boxes=boxes, class_ids=classes, normalized=True))
    if unlabelled == len(files):
        log.warning("none of the %d images in %s has a label file in %s", len(files), images_dir, labels_dir)
    elif unlabelled:
        log.info("%d of %d images have no label file (no objects)", unlabelled, len(files))
    if names is None:
        names = tuple(f"class{i}" for i in range(top + 1))
        log.info(
            "no names file (%s) found for %s; using %s", "/".join(_NAMES_FILES), root, ", ".join(names[:4]) or "none"
        )
    return Dataset("yolo", root, tuple(names), samples, has_names=has_names)


def _labels_for(images_dir: Path) -> Path | None:
    """Ultralytics' rule: the labels folder is the images path with its last 'images' part replaced."""
    parts = list(images_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            labels = Path(*parts[:i], "labels", *parts[i + 1 :])
            return labels if labels.is_dir() else None
    return None


def _pick_split(images_dir: Path, split: str | None) -> str | None:
    if list_images(images_dir):
        return None
    subdirs = sorted(d.name for d in images_dir.iterdir() if d.is_dir())
    if split is not None:
        if split not in subdirs:
            raise DatasetError(f"no split {split!r} in {images_dir}", hint=f"available: {', '.join(subdirs) or 'none'}")
        return split
    chosen = next((s for s in _SPLITS if s in subdirs), subdirs[0] if len(subdirs) == 1 else None)
    if chosen is None:
        raise DatasetError(
            f"no images in {images_dir} and no split subfolder to choose", hint=f"split folders found: {subdirs}"
        )
    log.info("using split %r of %s", chosen, images_dir.parent)
    return chosen


def _read_yolo_yaml(path: Path, split: str | None) -> Dataset:
    data = _load_yaml(path)
    split = split or next((s for s in _SPLITS if data.get(s)), None)
    entry = data.get(split) if split else None
    if isinstance(entry, list) and entry:
        entry = entry[0]
    if not isinstance(entry, str):
        raise DatasetError(f"{path} has no image folder for split {split!r}", hint="add e.g. 'val: images/val'")
    base = Path(str(data.get("path") or "."))
    root = base if base.is_absolute() else (path.parent / base)
    if not root.is_dir() and base.is_dir():
        root = base
    images_dir = root / entry
    if not images_dir.is_dir():
        raise DatasetError(f"{path}: image folder {images_dir} for split {split!r} does not exist")
    labels_dir = _labels_for(images_dir)
    if labels_dir is None:
        raise DatasetError(
            f"no labels folder for {images_dir}",
            hint="YOLO labels live in the same path with 'images' replaced by 'labels'",
        )
    names = _names_from(data["names"], path) if "names" in data else None
    return read_yolo(images_dir, labels_dir, names=names, root=root)


# --------------------------------------------------------------------------- autodetect


def _coco_in(folder: Path, split: str | None) -> Path | None:
    if (folder / "annotations.json").is_file():
        return folder / "annotations.json"
    candidates = sorted((folder / "annotations").glob("instances_*.json"))
    if not candidates:
        return None
    if split is not None:
        named = [c for c in candidates if c.stem == f"instances_{split}"] or [c for c in candidates if split in c.stem]
        if not named:
            raise DatasetError(
                f"no annotations for split {split!r} in {folder / 'annotations'}",
                hint=f"found {[c.name for c in candidates]}",
            )
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    val = [c for c in candidates if "val" in c.stem]
    if len(val) == 1:
        log.info("using %s", val[0].name)
        return val[0]
    raise DatasetError(
        f"several annotation files in {folder / 'annotations'}: {[c.name for c in candidates]}",
        hint="pass split= or the .json path",
    )


def open_dataset(path: str | Path, *, split: str | None = None) -> Dataset:
    """Open a dataset, recognising its layout (see the module docstring).

    Args:
        path: a dataset folder, a COCO .json, a YOLO data.yaml, an image file or a glob.
        split: for layouts with splits (``instances_val.json``, ``images/val/``), which one;
            "val" (or the only one) when None.

    Raises:
        DatasetError: the path is missing, holds no images, or its annotations are malformed.
    """
    text = str(path)
    p = Path(path)
    if not p.exists():
        if _is_glob(text):
            return _image_folder(text)
        raise DatasetError(f"dataset path {p} does not exist", hint=_LAYOUTS)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".json":
            return read_coco(p)
        if suffix in (".yaml", ".yml"):
            return _read_yolo_yaml(p, split)
        if suffix in IMAGE_SUFFIXES:
            return _image_folder(p)
        raise DatasetError(f"cannot open {p} as a dataset (unknown file type {suffix!r})", hint=_LAYOUTS)

    coco = _coco_in(p, split)
    if coco is not None:
        return read_coco(coco)
    images = p / "images"
    if images.is_dir() and (p / "labels").is_dir():
        chosen = _pick_split(images, split)
        images_dir = images / chosen if chosen else images
        labels_dir = p / "labels" / chosen if chosen else p / "labels"
        if not labels_dir.is_dir():
            raise DatasetError(f"{images_dir} has no matching labels folder {labels_dir}")
        return read_yolo(images_dir, labels_dir, root=p)
    labels = _labels_for(p)
    if labels is not None:  # p is DIR/images or DIR/images/<split>
        chosen = _pick_split(p, split)
        images_dir, labels_dir = (p / chosen, labels / chosen) if chosen else (p, labels)
        root = p.parent.parent if p.parent.name == "images" else p.parent
        return read_yolo(images_dir, labels_dir, root=root)
    for yaml_name in ("data.yaml", "dataset.yaml"):  # a YOLO yaml pointing at image folders elsewhere
        if (p / yaml_name).is_file() and any(_load_yaml(p / yaml_name).get(s) for s in (split, *_SPLITS) if s):
            return _read_yolo_yaml(p / yaml_name, split)
    if list_images(p):
        return _image_folder(p)
    if images.is_dir():
        if list_images(images):
            log.info("%s has images/ but no annotations.json or labels/: opened as an unlabelled image folder", p)
            return _image_folder(images)
        raise DatasetError(f"no images in {images}", hint=_LAYOUTS)
    raise DatasetError(f"no images or annotations found in {p}", hint=_LAYOUTS)
