"""Regenerate the shipped demo video and its per-frame ground truth (seeded, deterministic).

    python scripts/make_demo_video.py            # -> models/demo.mp4 + models/demo.mp4.gt.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgecv.data.synthetic import write_demo_video

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "models" / "demo.mp4"
    write_demo_video(out, num_frames=300, fps=30.0, size=(480, 640), seed=7)
    print(f"wrote {out}")
