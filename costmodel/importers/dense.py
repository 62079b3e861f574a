"""The countable parts of torchvision's detectors, as modules ``costmodel import`` traces (issue #22 item 5).

A detector's forward is not one traceable graph: its transform resizes each image (to ``min_size``) and pads
the batch, anchors are generated, boxes decoded, NMS run (``torch.nonzero``, which has no meta kernel) and,
in Faster R-CNN, the number of RoIs reaching the box head depends on the data. Those steps are named here, not
counted; what has weights and MACs is traced exactly:

- ``ssdlite320_mobilenet_v3_large``: ``model.backbone`` (MobileNetV3 + extra blocks) then ``model.head``
  (classification and regression heads over the six feature maps), on the 3×320×320 image the transform
  produces (``size=(320, 320)``). Not counted: the transform's resize and normalisation, the anchors
  (DefaultBoxGenerator), box decoding and NMS in ``postprocess_detections``.
- ``fasterrcnn_mobilenet_v3_large_fpn`` / ``_320_fpn``: ``model.backbone`` (MobileNetV3 body + FPN) then
  ``model.rpn.head`` (3×3 conv + objectness and box-delta 1×1 convs per level), on the square image resized
  to ``min_size`` (800, resp. 320: a multiple of 32, so the batch is not padded). Not counted: the transform,
  the anchors, the RPN's box decoding, top-k and NMS, and ``MultiScaleRoIAlign`` (0 MACs: FlopCounterMode
  counts no op of it; no parameters).
- the RoI head of both: ``box_head`` (TwoMLPHead: flatten, 256·7·7 → 1024 → 1024, ReLU) then
  ``box_predictor`` (1024 → 91 class scores, 1024 → 364 box deltas) on the pooled 256×7×7 features of each
  RoI. The number of RoIs R is the batch: every figure but params is R times one RoI's
  (MACs per RoI = 12544·1024 + 1024·1024 + 1024·91 + 1024·364 = 14,359,552). torchvision's test-time R is at
  most ``rpn_post_nms_top_n_test`` (1000 for ``_fpn``, 150 for ``_320_fpn``), fewer when NMS keeps fewer.

Each callable builds the model with ``weights=None, weights_backbone=None`` (nothing is downloaded) and sets
``pretrained_cfg['input_size']``, the size ``costmodel import`` traces at by default.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "fasterrcnn_mobilenet_v3_large_320_fpn_trunk",
    "fasterrcnn_mobilenet_v3_large_fpn_trunk",
    "fasterrcnn_roi_head",
    "ssdlite320_mobilenet_v3_large_trunk",
]


def _detector(name: str) -> Any:
    import torch
    import torchvision

    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, weights_backbone=None).eval()


def _wrap(parts: dict[str, Any], forward: Any, size: tuple[int, int, int]) -> Any:
    import torch

    class Part(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for key, value in parts.items():
                self.add_module(key, value)
            self.pretrained_cfg = {"input_size": size}

        def forward(self, x: torch.Tensor) -> Any:
            return forward(self, x)

    return Part()


def ssdlite320_mobilenet_v3_large_trunk() -> Any:
    """SSDLite320-MobileNetV3-Large's backbone and head at 3×320×320; returns (box regression [N, 3234, 4],
    class logits [N, 3234, 91]) — the head's two outputs before anchors, decoding and NMS."""
    model = _detector("ssdlite320_mobilenet_v3_large")

    def forward(self: Any, x: Any) -> Any:
        out = self.head(list(self.backbone(x).values()))
        return out["bbox_regression"], out["cls_logits"]

    return _wrap({"backbone": model.backbone, "head": model.head}, forward, (3, 320, 320))


def _rpn_trunk(name: str, side: int) -> Any:
    model = _detector(name)

    def forward(self: Any, x: Any) -> Any:
        objectness, deltas = self.head(list(self.backbone(x).values()))
        return (*objectness, *deltas)

    return _wrap({"backbone": model.backbone, "head": model.rpn.head}, forward, (3, side, side))


def fasterrcnn_mobilenet_v3_large_fpn_trunk() -> Any:
    """Faster R-CNN MobileNetV3-Large FPN's backbone (body + FPN) and RPN head at 3×800×800 (min_size 800);
    returns the per-level objectness maps then the per-level box deltas (the first is the spec's output)."""
    return _rpn_trunk("fasterrcnn_mobilenet_v3_large_fpn", 800)


def fasterrcnn_mobilenet_v3_large_320_fpn_trunk() -> Any:
    """As :func:`fasterrcnn_mobilenet_v3_large_fpn_trunk` for the 320 model (min_size 320) at 3×320×320."""
    return _rpn_trunk("fasterrcnn_mobilenet_v3_large_320_fpn", 320)


def fasterrcnn_roi_head(name: str = "fasterrcnn_mobilenet_v3_large_fpn") -> Any:
    """The RoI head (box_head + box_predictor) of torchvision's Faster R-CNN ``name`` on one RoI's pooled
    256×7×7 features: traced at batch 1, the batch is the number of RoIs R; returns (class scores [R, 91],
    box deltas [R, 364])."""
    model = _detector(name)

    def forward(self: Any, x: Any) -> Any:
        return self.box_predictor(self.box_head(x))

    heads = model.roi_heads
    return _wrap({"box_head": heads.box_head, "box_predictor": heads.box_predictor}, forward, (256, 7, 7))
