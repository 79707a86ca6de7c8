"""Pure numpy/OpenCV image ops: letterbox, decode, NMS, segmentation post-processing, drawing."""
