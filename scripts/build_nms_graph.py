"""Print the ONNX graph edgecv's NMS runs on ONNX Runtime (``edgecv/vision/nms_kernel.py``), base64-encoded.

    .venv/bin/python scripts/build_nms_graph.py

One ``NonMaxSuppression`` node (opset 11, IR 7: every onnxruntime edgecv supports loads it):
boxes (1, N, 4), scores (1, C, N), max_output_boxes_per_class (1,), iou_threshold (1,),
score_threshold (1,) -> selected_indices (K, 3). ``onnx`` builds it here (an export extra);
the runtime only needs onnxruntime, so the bytes are embedded and
``tests/vision/test_nms_kernel.py`` checks they are exactly what this script builds.
"""

from __future__ import annotations

import base64


def build() -> bytes:
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, "n", 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "c", "n"]),
        helper.make_tensor_value_info("max_output", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("iou_threshold", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("score_threshold", TensorProto.FLOAT, [1]),
    ]
    node = helper.make_node("NonMaxSuppression", [i.name for i in inputs], ["selected"], center_point_box=0)
    graph = helper.make_graph([node], "edgecv_nms", inputs, [helper.make_tensor_value_info("selected", TensorProto.INT64, ["k", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="edgecv", ir_version=7)
    return model.SerializeToString()


if __name__ == "__main__":
    print(base64.b64encode(build()).decode())
