"""The runtime runs ONNX artifacts without torch or sleap-nn, and validates its input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sleap_export.core.errors import InputError
from sleap_export.runtime.sources.frame_arrays import as_batch, match_channels
from sleap_export.runtime import load
from conftest import DATA

BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "sleap_nn", "torchvision", "lightning"):
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
    """
)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_onnx_runtime_needs_neither_torch_nor_sleap_nn(artifact, tmp_path):
    model = artifact(["minimal_instance_centroid"], ".onnx")
    output = tmp_path / "out.slp"
    result = run_python(
        f"""
        from sleap_export import load, Predictor
        runner = load({str(model)!r})
        import numpy as np
        outputs = runner.predict(np.zeros((384, 384, 1), np.uint8))
        labels = Predictor.from_artifact({str(model)!r}).predict({str(DATA / "centered_pair_small.mp4")!r}, frames=range(8), output={str(output)!r})
        assert len(labels.labeled_frames) == 8, labels
        from sleap_export.cli import main
        sys.argv = ["sleap-export", "inspect", {str(model)!r}]
        main()
        """
    )
    assert result.returncode == 0, result.stderr
    assert output.exists()


def test_predict_help_does_not_import_torch():
    result = run_python(
        """
        from sleap_export.cli import main
        sys.argv = ["sleap-export", "predict", "--help"]
        try:
            main()
        except SystemExit as exit:
            assert not exit.code, exit.code
        """
    )
    assert result.returncode == 0, result.stderr
    assert "predict" in result.stdout.lower()


def test_frame_validation():
    assert as_batch(np.zeros((5, 6), np.uint8)).shape == (1, 5, 6, 1)
    assert as_batch(np.zeros((5, 6, 3), np.uint8)).shape == (1, 5, 6, 3)
    with pytest.raises(InputError, match="uint8"):
        as_batch(np.zeros((5, 6, 3), np.float32))
    with pytest.raises(InputError, match="NaN"):
        as_batch(np.full((5, 6, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="channels"):
        match_channels(np.zeros((1, 5, 6, 4), np.uint8), 1)
    with pytest.raises(InputError, match="empty"):
        as_batch(np.zeros((0, 5, 6, 1), np.uint8))


def test_rgb_frames_are_converted_like_torchvision():
    import torch
    import torchvision.transforms.v2.functional as tvf

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    expected = tvf.rgb_to_grayscale(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(match_channels(rgb, 1), expected)
    assert match_channels(rgb[..., :1], 3).shape == (2, 7, 9, 3)


def test_outputs_api(artifact, tmp_path):
    runner = load(artifact(["minimal_instance_centroid"], ".onnx"))
    import sleap_io as sio

    frame = sio.load_video(str(DATA / "centered_pair_small.mp4"))[0]
    (outputs,) = runner.predict(frame)
    assert outputs.instance_valid.sum() == 2
    assert set(outputs.as_dict()) >= {"pred_centroids", "pred_keypoints", "instance_scores"}
    assert outputs.to("cpu").numpy().pred_centroids.shape == outputs.pred_centroids.shape
    import matplotlib

    matplotlib.use("Agg")
    ax = outputs.plot(ground_truth=outputs.pred_keypoints[outputs.instance_valid])
    ax.figure.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
    labels = {text.get_text() for text in ax.texts}
    assert {"instance 0", "instance 1"} <= labels and set(outputs.node_names) & labels


def test_in_order_keeps_order_bounds_work_and_raises():
    import threading
    import time

    from sleap_export.runtime.drivers.batch_pipeline import in_order

    running, most = [0], [0]
    lock = threading.Lock()

    def slow_square(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.002 * (x % 3))  # later items often finish first
        with lock:
            running[0] -= 1
        return x * x

    assert list(in_order(slow_square, range(20), 3)) == [(x, x * x) for x in range(20)]
    assert most[0] == 3
    assert list(in_order(slow_square, range(5), 1)) == [(x, x * x) for x in range(5)]

    started = []

    def fail_on_four(x):
        started.append(x)
        if x == 4:
            raise InputError("bad frame 4")
        return x

    with pytest.raises(InputError, match="bad frame 4"):
        list(in_order(fail_on_four, range(100), 2))
    assert max(started) < 10  # items are taken only a few ahead of the consumer


def test_parallel_batches_give_the_same_labels(artifact):
    """Two (three) batches at once through one ONNX session: the same poses, in frame order."""
    from sleap_export.runtime.drivers.predictor import Predictor

    model = artifact(["minimal_instance_bottomup"], ".onnx")
    video, frames = str(DATA / "centered_pair_small.mp4"), list(range(0, 46, 2))
    one = Predictor.from_artifact(model, batch_size=2, parallel_batches=1).predict(video, frames=frames)
    three = Predictor.from_artifact(model, batch_size=2, parallel_batches=3).predict(video, frames=frames)
    assert [lf.frame_idx for lf in three.labeled_frames] == frames
    for a, b in zip(one.labeled_frames, three.labeled_frames):
        assert len(a.instances) == len(b.instances)
        for x, y in zip(a.instances, b.instances):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_predictor_runs_two_batches_at_once_on_a_multicore_cpu(artifact, monkeypatch):
    from sleap_export.runtime.drivers.predictor import Predictor

    model = artifact(["minimal_instance_centroid"], ".onnx")
    assert load(model).parallel_batches == 1  # direct use: one batch on every core (latency)
    monkeypatch.setattr("sleap_export.runtime.backends.onnx_runner.usable_cores", lambda: 4)
    assert Predictor.from_artifact(model).runner.parallel_batches == 2
    assert Predictor.from_artifact(model, parallel_batches=1).runner.parallel_batches == 1
    monkeypatch.setattr("sleap_export.runtime.backends.onnx_runner.usable_cores", lambda: 1)
    assert Predictor.from_artifact(model).runner.parallel_batches == 1


def test_rgb_views_from_opencv_are_stacked_exactly():
    """sleap-io hands out RGB as reversed views of OpenCV's BGR buffers; the fast stack copies them exactly."""
    import cv2  # noqa: F401  (loaded, as whenever sleap-io reads with OpenCV)

    from sleap_export.runtime.sources.frame_arrays import stack_frames

    bgr = np.random.default_rng(0).integers(0, 256, (3, 7, 9, 3), dtype=np.uint8)
    views = [frame[..., ::-1] for frame in bgr]
    np.testing.assert_array_equal(stack_frames(views), np.stack(views))
    assert stack_frames(views).flags.c_contiguous
    gray = [frame[..., :1] for frame in bgr]
    np.testing.assert_array_equal(stack_frames(gray), np.stack(gray))


def test_the_design_python_api(artifact):
    """`Predictor.from_model_paths` picks the model type's predictor; a typed one refuses others."""
    import sleap_io as sio

    from sleap_export import CentroidPredictor, Predictor, SingleInstancePredictor, TopDownPredictor
    from sleap_export.core.errors import InputError
    from sleap_export.runtime.decoding.outputs import Outputs
    from conftest import MODELS

    onnx_path = artifact(["minimal_instance_centroid"], ".onnx")
    predictor = Predictor.from_model_paths([onnx_path])
    assert type(predictor) is CentroidPredictor
    video = sio.load_video(str(DATA / "centered_pair_small.mp4"))
    frames = np.stack([video[i] for i in range(3)])
    outputs = predictor.predict(frames, as_labels=False)
    assert len(outputs) == 3 and all(isinstance(o, Outputs) for o in outputs)
    labels = predictor.predict(frames)
    assert isinstance(labels, sio.Labels) and len(labels.labeled_frames) == 3
    with pytest.raises(InputError, match="SingleInstancePredictor runs single_instance models and .* is centroid; use CentroidPredictor"):
        SingleInstancePredictor.from_model_paths([onnx_path])
    # Training runs (a best.ckpt, a top-down pair) run eagerly.
    from_checkpoint = Predictor.from_model_paths([MODELS / "minimal_instance_centroid" / "best.ckpt"])
    assert type(from_checkpoint) is CentroidPredictor
    pair = TopDownPredictor.from_model_paths([MODELS / "minimal_instance_centroid", MODELS / "minimal_instance_centered_instance"])
    (first,) = pair.predict(frames[:1], as_labels=False)
    assert first.pred_keypoints.shape[-2:] == (2, 2)
