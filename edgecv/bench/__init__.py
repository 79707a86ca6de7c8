"""Stage 6: accuracy (COCO mAP, mIoU) and, later, latency benchmarks and reports."""
