"""What the box pair's own graph work costs (issue 51): the in-graph NMS of the SSD + box-crop pair works
on its ~1000 candidate slots one survivor at a time, not on a (slots x slots) IoU matrix, which took a
quarter of the graph's time and 16-32 MB per batch of 4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA

SSD_PAIR = ["new_bbox_ssd", "new_centered_instance_bbox"]
# Bytes a node of the pair's own top-level work may write per frame and slot: a few boxes' worth.
BYTES_PER_SLOT = 64


def test_box_pair_nms_writes_no_iou_matrix(artifact, tmp_path):
    """ONNX Runtime's profile of 4 real frames: outside the detector and crop stages (the NMS and the
    output selection) no node writes more than 64 bytes per slot."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = onnxruntime.InferenceSession(str(artifact(SSD_PAIR, ".onnx")), options, providers=["CPUExecutionProvider"])
    video = sio.load_video(str(DATA / "centered_pair_small.mp4"))
    frames = np.stack([video[i] for i in range(4)])
    slots = session.run(["pred_bbox_scores"], {"frames": frames})[0].shape[1]
    events = json.loads(Path(session.end_profiling()).read_text())
    written = {
        event["name"].removesuffix("_kernel_time"): int(event["args"]["output_size"])
        for event in events
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
    }
    # The pair's own nodes: top-level scope, or the scripted NMS loop's body (no scope); not a stage's,
    # nor a layout reorder ONNX Runtime inserts ("Reorder...", "..._token_N").
    own = {
        name: size for name, size in written.items()
        if not name.startswith(("/detector/", "/instance/", "Reorder")) and "_token_" not in name
    }
    assert any(name.startswith("/") for name in own) and any(not name.startswith("/") for name in own), sorted(own)
    largest = max(own, key=own.get)
    assert own[largest] <= BYTES_PER_SLOT * len(frames) * slots, (largest, own[largest])


@pytest.mark.parametrize("limit", [1, 3, 1000])
def test_in_graph_nms_keeps_the_hosts_first_survivors(limit):
    """Crowded boxes of two classes in 1000 slots: the graph's NMS keeps the first ``limit`` of the boxes
    the host's greedy NMS keeps, on each frame (one frame with no candidates)."""
    import torch

    from sleap_export.exporting.graph.box_decoding import class_wise_nms
    from sleap_export.runtime.decoding import box_nms

    rng = np.random.default_rng(5)
    batch, slots = 3, 1000
    corners = rng.uniform(0, 60, (batch, slots, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(2, 30, (batch, slots, 2)).astype(np.float32)], axis=-1)
    classes = rng.integers(0, 2, (batch, slots))
    candidates = rng.uniform(size=(batch, slots)) < 0.8
    candidates[2] = False
    kept = class_wise_nms(torch.from_numpy(boxes), torch.from_numpy(classes), torch.from_numpy(candidates), 0.3, limit)
    for frame in range(batch):
        slot = np.flatnonzero(candidates[frame])
        # Slots are in descending score already: equal scores keep that order in the host's stable sort.
        host = slot[box_nms.class_wise_nms(boxes[frame, slot], np.zeros(len(slot)), classes[frame, slot], 0.3)]
        assert np.flatnonzero(kept[frame].numpy()).tolist() == host[:limit].tolist()
        assert frame == 2 or len(host) > 3, "the small limits must cut the survivors short"
