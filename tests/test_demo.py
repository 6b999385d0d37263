"""The bundled demo: it runs, and its model matches sleap-nn at its native size.

The demo model sets no max_height/max_width, so unlike the shared models its
network really runs at each frame's own (padded) size.
"""

from __future__ import annotations

import numpy as np
import pytest
import sleap_io as sio

from sleap_export.core.comparison import compare_poses
from sleap_export.demo import CLIP, LEGEND, MODEL_DIR, TRUTH, _overlay, run_demo
from parity import our_poses


def test_demo_runs(tmp_path, capsys):
    results = run_demo(tmp_path)
    assert (tmp_path / "demo.slp").exists() and (tmp_path / "demo_overlay.png").exists()
    for result in results.values():
        assert result["instances"] == result["frames"] == 120
        assert result["mean_error_px"] < 3.0
    # The table and the picture say what they show.
    printed = " ".join(capsys.readouterr().out.split())
    assert "mean error vs truth" in printed and "its true position (the clip is synthetic" in printed
    figure = _overlay(sio.load_slp(str(tmp_path / "demo.slp")), np.load(TRUTH), tmp_path / "again.png")
    assert [text.get_text() for legend in figure.legends for text in legend.get_texts()] == list(LEGEND)
    assert "against its true positions" in figure._suptitle.get_text()


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
@pytest.mark.parametrize("crop", [(144, 176), (131, 150)])
def test_demo_model_parity_at_native_sizes(kind, crop, tmp_path, frame_sequence_from):
    from sleap_nn.inference.run import predict

    from sleap_export.core.comparison import poses_by_frame
    from sleap_export import export
    from sleap_export.runtime import load

    paths = frame_sequence_from(CLIP, range(0, 24), *crop)
    expected = poses_by_frame(predict(sio.load_video(paths), model_paths=[str(MODEL_DIR)], device="cpu"))
    artifact = export([MODEL_DIR], tmp_path / ("demo.onnx" if kind == "onnx" else "demo.pt"))
    comparison = compare_poses(our_poses(load(artifact), sio.load_video(paths)), expected)
    assert comparison.count_agreement == 1.0 and comparison, comparison.summary()
