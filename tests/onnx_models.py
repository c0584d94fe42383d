"""Tiny ONNX models built on the spot with the ``onnx`` package (no downloads), for the ONNX detector tests.

- ``constant_model``: the first output is a fixed tensor (any shape: yolov8 ``[1, 4+C, N]``, yolov5
  ``[1, N, 5+C]``, e2e ``[1, N, 6]``), so the expected boxes are known. The input is still consumed
  (``output + 0 × sum(input)``), so onnxruntime checks the shape it is fed.
- ``brightness_model``: e2e with one fixed box whose score is the mean of the input tensor (or one input pixel),
  so what the detector feeds the model (letterbox, padding, RGB, 0–1 scale) decides what is found.

``input_size=None`` makes the spatial input dimensions dynamic; ``names`` is written as model metadata the way
Ultralytics does (a Python dict literal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _input(input_size: int | tuple[int, int] | None):
    if input_size is None:
        dims = [1, 3, "height", "width"]
    elif isinstance(input_size, int):
        dims = [1, 3, input_size, input_size]
    else:
        dims = [1, 3, input_size[0], input_size[1]]
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)


def _save(graph, path: Path, names: str | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hsi-tests")
    model.ir_version = IR_VERSION
    if names is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "names", names
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def constant_model(
    path: Path, output: np.ndarray, *, input_size: int | tuple[int, int] | None = 640, names: str | None = None
) -> Path:
    """A model whose first output is ``output`` (float32) whatever the image."""
    output = np.asarray(output, dtype=np.float32)
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["fixed", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [_input(input_size)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[
            numpy_helper.from_array(output, "fixed"),
            numpy_helper.from_array(np.array(0, dtype=np.float32), "zero"),
        ],
    )
    return _save(graph, path, names)


def brightness_model(
    path: Path,
    box: tuple[float, float, float, float],
    *,
    pixel: tuple[int, int] | None = None,
    class_id: int = 0,
    input_size: int | None = 640,
) -> Path:
    """e2e ``[1, 1, 6]``: ``box`` (x1, y1, x2, y2 in input pixels); the score is the mean of the input tensor, or
    with ``pixel=(row, column)`` the red channel of the input at that pixel."""
    if pixel is None:
        reduce = [helper.make_node("ReduceMean", ["images"], ["value"], keepdims=0)]
        extra = []
    else:
        row, column = pixel
        reduce = [helper.make_node("Slice", ["images", "starts", "ends"], ["value"])]
        extra = [
            numpy_helper.from_array(np.array([0, 0, row, column], dtype=np.int64), "starts"),
            numpy_helper.from_array(np.array([1, 1, row + 1, column + 1], dtype=np.int64), "ends"),
        ]
    nodes = [
        *reduce,
        helper.make_node("Reshape", ["value", "score_shape"], ["score"]),
        helper.make_node("Concat", ["box", "score", "class_id"], ["output0"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_detector",
        [_input(input_size)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 1, 6])],
        initializer=[
            numpy_helper.from_array(np.array(box, dtype=np.float32).reshape(1, 1, 4), "box"),
            numpy_helper.from_array(np.array([1, 1, 1], dtype=np.int64), "score_shape"),
            numpy_helper.from_array(np.array([[[class_id]]], dtype=np.float32), "class_id"),
            *extra,
        ],
    )
    return _save(graph, path, None)


def yolov8_output(rows: list[tuple[float, float, float, float, list[float]]], classes: int) -> np.ndarray:
    """``[1, 4+C, N]`` from (cx, cy, w, h, class scores) rows."""
    data = np.zeros((1, 4 + classes, len(rows)), dtype=np.float32)
    for index, (cx, cy, w, h, scores) in enumerate(rows):
        data[0, :4, index] = (cx, cy, w, h)
        data[0, 4 : 4 + len(scores), index] = scores
    return data


def yolov5_output(rows: list[tuple[float, float, float, float, float, list[float]]], classes: int) -> np.ndarray:
    """``[1, N, 5+C]`` from (cx, cy, w, h, objectness, class scores) rows."""
    data = np.zeros((1, len(rows), 5 + classes), dtype=np.float32)
    for index, (cx, cy, w, h, objectness, scores) in enumerate(rows):
        data[0, index, :5] = (cx, cy, w, h, objectness)
        data[0, index, 5 : 5 + len(scores)] = scores
    return data


def e2e_output(rows: list[tuple[float, float, float, float, float, int]]) -> np.ndarray:
    """``[1, N, 6]`` from (x1, y1, x2, y2, score, class id) rows."""
    return np.array([list(row) for row in rows], dtype=np.float32).reshape(1, len(rows), 6)
