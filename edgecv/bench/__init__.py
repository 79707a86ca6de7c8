"""Stage 6: latency benchmarks (``edgecv bench``), accuracy (COCO mAP, mIoU), environment, reports."""
