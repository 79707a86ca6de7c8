"""Datasets: the synthetic shapes generator and readers for COCO, YOLO-txt and image folders."""
