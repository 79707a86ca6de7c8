"""Train a shipped model on synthetic shapes and save it as an edgecv checkpoint.

    python scripts/train_shapes.py detect  --out models/shapes-det.pt
    python scripts/train_shapes.py segment --out models/shapes-seg.pt --init-from models/shapes-det.pt

Seeded; fits in ~20 minutes on 2 CPU cores. Export and evaluate afterwards:

    edgecv export models/shapes-det.pt -o models/shapes-det.onnx
    edgecv eval models/shapes-det.onnx --data data/shapes-val
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from edgecv.data.synthetic import CLASSES
from edgecv.zoo.checkpoint import save_checkpoint
from edgecv.zoo.training import TrainConfig, train

DEFAULTS = {
    "detect": dict(arch="shapes-det", iterations=1500, batch=16, lr=2e-3, width=0.75),
    "segment": dict(arch="shapes-seg", iterations=600, batch=12, lr=2e-3, width=0.75),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=sorted(DEFAULTS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--pool", type=int, default=4000, help="pre-rendered training scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--init-from", type=Path, help="start from the matching weights of this checkpoint (shapes-seg: the trained shapes-det)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    d = DEFAULTS[args.task]
    cfg = TrainConfig(
        task=args.task,
        iterations=args.iterations or d["iterations"],
        batch=args.batch or d["batch"],
        lr=d["lr"],
        width=d["width"],
        pool=args.pool,
        seed=args.seed,
        max_minutes=args.max_minutes,
        init_from=str(args.init_from) if args.init_from else None,
    )
    start = time.time()
    model = train(cfg)
    names = CLASSES if args.task == "detect" else ("background", *CLASSES)
    save_checkpoint(  # float16 storage keeps the shipped files small; exported from these same weights
        model, args.out, arch=d["arch"], names=names, width=cfg.width, half=True,
        train_command=f"python scripts/train_shapes.py {args.task} --out {args.out} --seed {args.seed}"
        + (f" --init-from {args.init_from}" if args.init_from else ""),
        iterations=cfg.iterations, seed=cfg.seed, train_seconds=round(time.time() - start, 1),
    )
    logging.info("saved %s (%.1f min)", args.out, (time.time() - start) / 60)


if __name__ == "__main__":
    main()
