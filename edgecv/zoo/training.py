"""Training the shipped models on synthetic shapes: data pool, losses, loop.

Used by ``scripts/train_shapes_det.py`` / ``scripts/train_shapes_seg.py`` and, later,
by fine-tuning after pruning. The detector loss is the YOLOv8 recipe without DFL:
a task-aligned assigner (top-k anchors inside each box by ``score * IoU^6``),
IoU-aware BCE class targets and a GIoU + L1 box loss.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecv._optional import require
from edgecv.data.synthetic import CLASSES, make_scene
from edgecv.vision.letterbox import letterbox

log = logging.getLogger(__name__)


@dataclass
class ScenePool:
    """Pre-rendered, letterboxed training scenes (rendering is slower than a training step on 2 cores).

    images: (N, S, S, 3) uint8 RGB; boxes[i]: (G, 4) float32 xyxy in letterboxed pixels;
    classes[i]: (G,) int64; semantic: (N, S, S) uint8 (0 = background, k = class k-1).
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    semantic: np.ndarray

    @classmethod
    def generate(cls, count: int, size: int, seed: int, progress: Callable[[int, int], None] | None = None) -> ScenePool:
        rng = np.random.default_rng(seed)
        images = np.zeros((count, size, size, 3), np.uint8)
        semantic = np.zeros((count, size, size), np.uint8)
        boxes, classes = [], []
        for i in range(count):
            # vary the source size and aspect so the model sees letterbox padding and scale changes
            scale = rng.uniform(1.0, 1.6)
            aspect = rng.choice([0.75, 1.0, 1.0, 4 / 3])
            h = int(size * scale / math.sqrt(aspect))
            w = int(size * scale * math.sqrt(aspect))
            image, instances, sem = make_scene(rng, h, w)
            boxed, t = letterbox(image, (size, size))
            sem_boxed = _letterbox_labels(sem, t)  # nearest-neighbour: labels must not blend
            images[i] = boxed[..., ::-1]
            semantic[i] = sem_boxed
            b = np.array([inst.box for inst in instances], np.float32).reshape(-1, 4)
            boxes.append(t.boxes_to_dst(b) if len(b) else b)
            classes.append(np.array([inst.class_id for inst in instances], np.int64))
            if progress:
                progress(i + 1, count)
        return cls(images, boxes, classes, semantic)


def _letterbox_labels(labels: np.ndarray, t) -> np.ndarray:  # type: ignore[no-untyped-def]
    import cv2

    y0, y1, x0, x1 = t.content_window()
    out = np.zeros(t.dst_size, np.uint8)
    out[y0:y1, x0:x1] = cv2.resize(labels, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return out


def _batch(pool: ScenePool, idx: np.ndarray, flip: np.ndarray, torch):  # type: ignore[no-untyped-def]
    images = pool.images[idx].copy()
    sem = pool.semantic[idx].copy()
    size = images.shape[2]
    boxes, classes = [], []
    for j, (i, f) in enumerate(zip(idx, flip)):
        b = pool.boxes[i].copy()
        if f:
            images[j] = images[j, :, ::-1]
            sem[j] = sem[j, :, ::-1]
            b[:, [0, 2]] = size - b[:, [2, 0]]
        boxes.append(b)
        classes.append(pool.classes[i])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    g = max(1, max(len(b) for b in boxes))
    gt_boxes = torch.zeros(len(idx), g, 4)
    gt_cls = torch.zeros(len(idx), g, dtype=torch.long)
    gt_valid = torch.zeros(len(idx), g, dtype=torch.bool)
    for j, (b, c) in enumerate(zip(boxes, classes)):
        gt_boxes[j, : len(b)] = torch.from_numpy(b)
        gt_cls[j, : len(c)] = torch.from_numpy(c)
        gt_valid[j, : len(b)] = True
    return x, gt_boxes, gt_cls, gt_valid, torch.from_numpy(sem).long()


def box_iou_pairwise(a, b, giou: bool = False):  # type: ignore[no-untyped-def]
    """IoU (or GIoU) of boxes broadcast against each other; xyxy, last dim 4."""
    lt = a[..., :2].maximum(b[..., :2])
    rb = a[..., 2:].minimum(b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    if not giou:
        return iou
    hull = (a[..., 2:].maximum(b[..., 2:]) - a[..., :2].minimum(b[..., :2])).clamp(min=0).prod(-1) + 1e-7
    return iou - (hull - union) / hull


def detection_loss(model, x, gt_boxes, gt_cls, gt_valid, topk: int = 10, raw=None):  # type: ignore[no-untyped-def]
    """YOLOv8-style loss (task-aligned assignment, IoU-aware BCE, GIoU + L1). Returns (total, parts dict).

    ``raw``: ``model.forward_raw(x)`` when the caller already has it (distillation reuses it).
    """
    torch = require("torch")
    F = torch.nn.functional
    dists, logits, anchors, strides = raw if raw is not None else model.forward_raw(x)
    pred_boxes = torch.cat([anchors - dists[..., :2], anchors + dists[..., 2:]], -1)  # (B, A, 4)
    B, A, C = logits.shape
    with torch.no_grad():
        scores = logits.sigmoid()
        ax, ay = anchors[:, 0], anchors[:, 1]
        inside = (
            (ax > gt_boxes[..., 0:1]) & (ax < gt_boxes[..., 2:3]) & (ay > gt_boxes[..., 1:2]) & (ay < gt_boxes[..., 3:4])
        ) & gt_valid[..., None]  # (B, G, A)
        iou = box_iou_pairwise(gt_boxes[:, :, None], pred_boxes[:, None]).clamp(min=0)  # (B, G, A)
        cls_scores = scores.transpose(1, 2).gather(1, gt_cls[..., None].expand(-1, -1, A))  # (B, G, A)
        align = cls_scores * iou.pow(6) * inside
        top = align.topk(min(topk, A), dim=-1).indices
        pos = torch.zeros_like(align, dtype=torch.bool).scatter_(-1, top, True) & inside
        multi = pos.sum(1, keepdim=True) > 1  # anchors claimed by several boxes keep the best-IoU box
        best = F.one_hot(iou.argmax(1), pos.shape[1]).transpose(1, 2).bool()
        pos = torch.where(multi, best & inside, pos)
        fg = pos.any(1)  # (B, A)
        gt_idx = pos.float().argmax(1)  # (B, A)
        t_boxes = gt_boxes.gather(1, gt_idx[..., None].expand(-1, -1, 4))
        t_cls = gt_cls.gather(1, gt_idx)
        align = align * pos
        norm = (align * (iou * pos).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + 1e-9)).amax(1)
        t_scores = F.one_hot(t_cls, C).float() * (norm * fg)[..., None]
    total_score = t_scores.sum().clamp(min=1)
    loss_cls = F.binary_cross_entropy_with_logits(logits, t_scores, reduction="sum") / total_score
    if fg.any():
        weight = t_scores.sum(-1)[fg]
        giou = box_iou_pairwise(pred_boxes[fg], t_boxes[fg], giou=True)
        loss_box = ((1 - giou) * weight).sum() / total_score
        s = strides.expand(B, -1, -1)[fg]
        a = anchors.expand(B, -1, -1)[fg]
        t_dist = torch.cat([a - t_boxes[fg][:, :2], t_boxes[fg][:, 2:] - a], -1)
        loss_l1 = ((dists[fg] - t_dist).abs().div(s).sum(-1) * weight).sum() / total_score
    else:
        loss_box = loss_l1 = logits.sum() * 0
    total = loss_cls + 5.0 * loss_box + 0.5 * loss_l1
    return total, {"cls": loss_cls.item(), "box": loss_box.item(), "l1": loss_l1.item()}


def distillation_loss(student_out, teacher_out, task: str):  # type: ignore[no-untyped-def]
    """Match a (pruned) student to its teacher's outputs on the same batch.

    Detection (``forward_raw`` outputs): BCE of the student's class logits against the
    teacher's probabilities, plus the L1 of the box distances in stride units, both
    weighted per anchor by the teacher's best class score (objects, not background,
    drive it). Segmentation: KL divergence of the per-pixel class distributions.
    """
    torch = require("torch")
    F = torch.nn.functional
    if task == "detect":
        s_dist, s_logits, _, strides = student_out
        t_dist, t_logits = teacher_out[0].detach(), teacher_out[1].detach()
        t_prob = t_logits.sigmoid()
        weight = t_prob.amax(-1)  # (B, A)
        norm = weight.sum().clamp(min=1)
        cls = (F.binary_cross_entropy_with_logits(s_logits, t_prob, reduction="none").mean(-1) * weight).sum() / norm
        box = (((s_dist - t_dist).abs() / strides).sum(-1) * weight).sum() / norm
        return cls + box
    t = teacher_out.detach()
    return F.kl_div(F.log_softmax(student_out, 1), F.log_softmax(t, 1), log_target=True, reduction="batchmean") / t[0, 0].numel()


def segmentation_loss(logits, target):  # type: ignore[no-untyped-def]
    """Cross-entropy + soft Dice (Dice helps the small shapes against the large background)."""
    torch = require("torch")
    F = torch.nn.functional
    ce = F.cross_entropy(logits, target)
    probs = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = 1 - ((2 * inter + 1) / (denom + 1)).mean()
    return ce + dice, {"ce": ce.item(), "dice": dice.item()}


@dataclass
class TrainConfig:
    task: str  # "detect" | "segment"
    iterations: int = 1200
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup: int = 100
    pool: int = 4000
    size: int = 256
    seed: int = 0
    threads: int = 2
    width: float = 1.0
    max_minutes: float = 20.0
    init_from: str | None = None  # edgecv checkpoint whose matching weights (same name and shape) start the model


def init_weights(model, checkpoint: str) -> int:  # type: ignore[no-untyped-def]
    """Copy every tensor of ``checkpoint`` whose name and shape match into ``model``; returns how many."""
    torch = require("torch")
    source = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    log.info("initialised %d of %d tensors from %s", len(matched), len(own), checkpoint)
    return len(matched)


def train(  # type: ignore[no-untyped-def]
    cfg: TrainConfig, model=None, pool: ScenePool | None = None, log_every: int = 50, after_step=None, progress=None, teacher=None, distill: float = 1.0
):
    """Train (or fine-tune) a shapes model; returns the model in eval mode.

    ``after_step()`` runs after every optimizer step (e.g. re-applying 2:4 masks);
    ``progress(done, total)`` after every step; ``teacher``: a model whose outputs the
    student also learns (``distill`` x :func:`distillation_loss`), e.g. the unpruned model.
    """
    torch = require("torch")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if model is None:
        from edgecv.zoo.registry import get_architecture

        arch = get_architecture("shapes-det" if cfg.task == "detect" else "shapes-seg")
        model = arch.build(len(CLASSES) if cfg.task == "detect" else len(CLASSES) + 1, width=cfg.width)
    if cfg.init_from:
        init_weights(model, cfg.init_from)
    if pool is None:
        start = time.time()
        pool = ScenePool.generate(cfg.pool, cfg.size, cfg.seed)
        log.info("rendered %d training scenes in %.1f s", cfg.pool, time.time() - start)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.iterations - cfg.warmup)
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    rng = np.random.default_rng(cfg.seed + 1)
    model.train()
    start = time.time()
    for step in range(cfg.iterations):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = rng.integers(0, len(pool.images), cfg.batch)
        flip = rng.random(cfg.batch) < 0.5
        x, gt_boxes, gt_cls, gt_valid, sem = _batch(pool, idx, flip, torch)
        out = model.forward_raw(x) if cfg.task == "detect" else model(x)
        if cfg.task == "detect":
            loss, parts = detection_loss(model, x, gt_boxes, gt_cls, gt_valid, raw=out)
        else:
            loss, parts = segmentation_loss(out, sem)
        if teacher is not None:
            with torch.no_grad():
                teacher_out = teacher.forward_raw(x) if cfg.task == "detect" else teacher(x)
            kd = distillation_loss(out, teacher_out, cfg.task)
            loss = loss + distill * kd
            parts = {**parts, "kd": kd.item()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if after_step is not None:
            after_step()
        if progress is not None:
            progress(step + 1, cfg.iterations)
        elapsed = time.time() - start
        if step % log_every == 0 or step == cfg.iterations - 1:
            detail = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
            log.info("step %d/%d loss %.3f (%s) lr %.2e %.0f s", step, cfg.iterations, loss.item(), detail, lr_at(step), elapsed)
        if elapsed > cfg.max_minutes * 60:
            log.warning("stopping at step %d: time budget of %.0f min reached", step, cfg.max_minutes)
            break
    return model.eval()


def loss_on(model, task: str, pool: ScenePool, *, batches: int = 2, batch: int = 8, seed: int = 0):  # type: ignore[no-untyped-def]
    """The training loss of ``model`` on a few batches of ``pool`` (for gradient-based pruning criteria)."""
    torch = require("torch")
    rng = np.random.default_rng(seed)
    total = None
    model.train()
    for _ in range(batches):
        idx = rng.integers(0, len(pool.images), batch)
        x, gt_boxes, gt_cls, gt_valid, sem = _batch(pool, idx, np.zeros(batch, bool), torch)
        loss = detection_loss(model, x, gt_boxes, gt_cls, gt_valid)[0] if task == "detect" else segmentation_loss(model(x), sem)[0]
        total = loss if total is None else total + loss
    model.eval()
    return total / batches
