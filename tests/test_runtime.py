"""The runtime runs ONNX artifacts without torch or sleap-nn, and validates its input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sleap_export.errors import InputError
from sleap_export.runtime.frames import as_batch, match_channels
from sleap_export.runtime.runners import load
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
