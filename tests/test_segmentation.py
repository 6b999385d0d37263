"""Segmentation (issue 35): the same masks as sleap-nn's checkpoint inference.

Each shared segmentation run (semantic, bottom-up, top-down behind the shared
centroid run, tiled semantic) is exported and predicts frames 0-49 of the shared
clip at its training size and 20 frames padded to another size, at sleap-nn's
default knobs and at two or more other settings each. Tolerances (issue 35):
equal mask counts on every frame and identical pixels (and placement) on
>= 99.9% of masks, the rest reported with their IoU; scores within 1e-5;
polygons (``mask_output`` polygon/both) equal to 1e-6 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from conftest import DATA, Setting, cached, model_dir
from parity import REFERENCE_BATCH_SIZE

SEMANTIC = ["new_semantic_segmentation"]
BOTTOM_UP = ["new_bottomup_segmentation"]
TOP_DOWN = ["minimal_instance_centroid", "new_centered_instance_segmentation"]
TILED = ["new_semantic_segmentation_tiled"]
VIDEO = DATA / "centered_pair_small.mp4"
TRAINING_SIZE_FRAMES = range(50)
# Another size: 20 frames padded bottom-right to 300 x 452 (size matching rescales them; tiling re-grids them).
OTHER_SIZE = (300, 452)
OTHER_SIZE_FRAMES = range(0, 100, 5)
# The other settings run on the first 20 frames of the training-size clip (CI time); the defaults on all 50.
SETTING_FRAMES = 20
SCORE_TOLERANCE = 1e-5
POLYGON_TOLERANCE_PX = 1e-6


SETTINGS = {
    "semantic": (SEMANTIC, [
        Setting("default"),
        Setting("fg0.3-area2000", {"fg_threshold": 0.3}, {"min_mask_area": 2000}),
        Setting("full-res-both", masks={"full_res_masks": True, "mask_output": "both"}),
    ]),
    "bottomup": (BOTTOM_UP, [
        Setting("default"),
        Setting("cleanup-gate-max3", masks={
            "mask_cleanup": True, "mask_cleanup_radius": 2, "distance_gate_alpha": 1.5, "max_instances": 3,
        }),
        Setting("kernel5-merge-area", {"center_nms_kernel": 5, "peak_threshold": 0.3}, {
            "merge_fragments": True, "min_mask_area": 30, "full_res_masks": True,
        }),
        Setting("multicut-polygon", masks={"merge_fragments": True, "merge_method": "multicut", "mask_output": "polygon"}),
    ]),
    "topdown": (TOP_DOWN, [
        Setting("default"),
        Setting("fg0.7-centroids0.4", {"fg_threshold": 0.7, "peak_threshold": 0.4}),
        Setting("polygon", masks={"mask_output": "polygon"}),
    ]),
    "tiled": (TILED, [
        Setting("default"),
        Setting("fg0.3-full-res", {"fg_threshold": 0.3}, {"full_res_masks": True}),
    ]),
}
CASES = [(kind, setting) for kind, (_, settings) in SETTINGS.items() for setting in settings]


@pytest.fixture(scope="session")
def clip_sources(frame_sequence):
    """``(name, source, frames, frame size)`` of the two clips: the video at its training size, padded PNGs."""
    other = frame_sequence(VIDEO.name, OTHER_SIZE_FRAMES, *OTHER_SIZE)
    return [
        ("training-size", str(VIDEO), list(TRAINING_SIZE_FRAMES), (384, 384)),
        ("other-size", other, None, OTHER_SIZE),
    ]


def predicted_masks(model: Path, setting: Setting, source, frames, output: Path) -> sio.Labels:
    """Our masks as the .slp ``output`` holds them (sleap-io stores mask placement in float32, as the reference's)."""
    from sleap_export import Predictor
    from sleap_export.core.mask_options import MaskOptions

    predictor = Predictor.from_model_paths(model, masks=MaskOptions(**setting.masks), batch_size=REFERENCE_BATCH_SIZE)
    predictor.predict(source, frames=frames, progress=None, output=output)
    return sio.load_slp(str(output))


def rois_by_frame(labels: sio.Labels) -> dict[int, list]:
    return {lf.frame_idx: list(lf.rois) for lf in labels.labeled_frames if lf.rois}


def assert_same_rois(ours: sio.Labels, theirs: sio.Labels) -> int:
    """Equal polygons frame by frame (in order); returns how many were compared."""
    a, b = rois_by_frame(ours), rois_by_frame(theirs)
    assert sorted(a) == sorted(b)
    compared = 0
    for frame in b:
        assert len(a[frame]) == len(b[frame]), f"frame {frame}: {len(a[frame])} polygons, sleap-nn {len(b[frame])}"
        for x, y in zip(a[frame], b[frame]):
            assert x.geometry.equals_exact(y.geometry, POLYGON_TOLERANCE_PX), f"frame {frame}: polygons differ"
            assert abs(x.score - y.score) <= SCORE_TOLERANCE
            compared += 1
    return compared


@pytest.mark.parametrize("kind,setting", CASES, ids=[f"{k}-{s.name}" for k, s in CASES])
def test_masks_match_sleap_nn(
    kind, setting, artifact, mask_reference, mask_reference_ties, clip_sources, record_property, tmp_path
):
    """Identical masks but for ties: a pixel that sleap-nn's own maps put within rounding of a decision
    (`MASK_TIE_MARGINS`) may land on either side on another CPU's kernels, so it is counted apart."""
    from sleap_export.core.mask_comparison import compare_masks, masks_by_frame

    runs, _ = SETTINGS[kind]
    model = artifact(runs, ".onnx", **setting.export)
    for clip, source, frames, frame_size in clip_sources:
        if frames is not None and setting.name != "default":
            frames = frames[:SETTING_FRAMES]
        theirs = mask_reference(runs, setting, clip, source, frames)
        ours = predicted_masks(model, setting, source, frames, tmp_path / f"{clip}.slp")
        ties = mask_reference_ties(runs, setting, clip, source, frames)
        comparison = compare_masks(masks_by_frame(ours), masks_by_frame(theirs), frame_size, ties=ties)
        record_property(f"{clip}", comparison.summary())
        assert comparison.matched > 0 or setting.masks.get("mask_output") == "polygon", "nothing to compare"
        assert comparison, f"{kind} {setting.name} {clip}: {comparison.summary()}"
        assert comparison.max_score_difference <= SCORE_TOLERANCE, comparison.summary()
        if setting.masks.get("mask_output") in ("polygon", "both"):
            assert assert_same_rois(ours, theirs) > 0
        else:
            assert not rois_by_frame(ours)


@pytest.mark.parametrize("kind", ["semantic", "bottomup", "topdown"])
def test_torchscript_masks_equal_onnx_masks(kind, artifact, clip_sources, tmp_path):
    """The TorchScript artifact gives the ONNX artifact's masks (default knobs, training size)."""
    from sleap_export.core.mask_comparison import compare_masks, masks_by_frame

    runs, settings = SETTINGS[kind]
    _, source, frames, frame_size = clip_sources[0]
    onnx = predicted_masks(artifact(runs, ".onnx"), settings[0], source, frames[:12], tmp_path / "onnx.slp")
    torchscript = predicted_masks(artifact(runs, ".pt"), settings[0], source, frames[:12], tmp_path / "pt.slp")
    comparison = compare_masks(masks_by_frame(torchscript), masks_by_frame(onnx), frame_size, min_identical_share=1.0)
    assert comparison and comparison.matched > 0, comparison.summary()


SWEEP_CASES = 80


def sleap_nn_layer_masks(layer, frame: np.ndarray) -> list:
    """sleap-nn's layer on one frame, its masks as sleap-nn writes them."""
    import torch
    from sleap_nn.inference.segmentation_convert import build_predicted_segmentation_mask

    with torch.no_grad():
        found = layer.predict(torch.from_numpy(frame)[None]).pred_masks[0]
    return [
        build_predicted_segmentation_mask(m["mask"], m["score"], m["scale"], m["offset"])
        for m in found
        if np.asarray(m["mask"]).any()
    ]


@pytest.mark.parametrize("kind", ["semantic", "bottomup", "topdown"])
def test_masks_equal_sleap_nns_over_a_sweep_of_frame_sizes(kind, artifact):
    """80 frame sizes per type (real frames stretched by nearest-neighbour sampling, 48-1500 px a side,
    most resized by the runs' 384 x 384 size matching): the ONNX artifact's masks equal sleap-nn's layer's
    on the same frame: counts on every frame, pixels, scale and offset."""
    from loguru import logger
    from sleap_nn.inference.predictor import Predictor

    import sleap_export
    from sleap_export.core.mask_comparison import compare_masks

    runs, _ = SETTINGS[kind]
    logger.disable("sleap_nn")
    layer = Predictor.from_model_paths([str(model_dir(r)) for r in runs], device="cpu").layer
    runner = sleap_export.load(artifact(runs, ".onnx"))
    video = sio.load_video(str(VIDEO))
    rng = np.random.default_rng(35)
    ours, theirs, sizes = {}, {}, {}
    for case in range(SWEEP_CASES):
        height, width = (int(round(np.exp(rng.uniform(np.log(48), np.log(1500))))) for _ in range(2))
        source = video[(case * 89) % len(video)]
        frame = np.ascontiguousarray(
            source[np.arange(height) * source.shape[0] // height][:, np.arange(width) * source.shape[1] // width]
        )
        ours[(0, case)] = list(runner.predict(frame[None])[0].masks)
        theirs[(0, case)] = sleap_nn_layer_masks(layer, frame)
        sizes[case] = (height, width)
    per_case = [
        compare_masks({k: ours[k]}, {k: theirs[k]}, sizes[k[1]], min_identical_share=0.999) for k in sorted(theirs)
    ]
    matched = sum(c.matched for c in per_case)
    identical = sum(c.identical for c in per_case)
    # Stretched frames can hold no foreground (measured: semantic 91 masks over 120 frames at seed 35).
    assert matched >= SWEEP_CASES // 2, f"the sweep must compare masks, not empty frames ({matched})"
    mismatched = [sizes[k[1]] for k, c in zip(sorted(theirs), per_case) if c.count_mismatches]
    assert not mismatched, f"mask counts differ at frame sizes {mismatched[:10]}"
    assert identical >= 0.999 * matched, f"{identical} of {matched} masks identical"


@pytest.fixture(scope="session")
def tiled_bottom_up_run(assets, session_cache) -> Path:
    """The shared bottom-up segmentation run with tiling enabled in its config (160 px tiles, 48 px
    overlap): sleap-nn tiles it with `TiledSegmentationLayer` (4 blended maps); no other change."""

    def produce(folder: Path) -> None:
        import shutil

        import yaml

        shutil.copytree(model_dir(BOTTOM_UP[0]), folder)
        config = yaml.safe_load((folder / "training_config.yaml").read_text())
        config["data_config"]["preprocessing"]["tiling"].update(enabled=True, tile_size=160, overlap=48)
        (folder / "training_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    return cached(session_cache, "tiled-bottomup-segmentation", produce)


@pytest.mark.parametrize(
    "setting", [Setting("default"), Setting("cleanup-merge", masks={"mask_cleanup": True, "merge_fragments": True})],
    ids=lambda s: s.name,
)
def test_tiled_bottom_up_masks_match_sleap_nn(setting, tiled_bottom_up_run, clip_sources, session_cache, tmp_path):
    """Bottom-up segmentation in tiles: foreground, centers and offsets blended as sleap-nn blends them."""
    from sleap_export import export
    from sleap_export.core.mask_comparison import compare_masks, masks_by_frame
    from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict

    model = cached(session_cache, "tiled-bottomup-segmentation.onnx", lambda path: export([tiled_bottom_up_run], path))
    for clip, source, frames, frame_size in clip_sources:
        frames = None if frames is None else frames[:20]
        theirs = sleap_nn_predict(source, [tiled_bottom_up_run], frames=frames, batch_size=REFERENCE_BATCH_SIZE, **setting.sleap_nn)
        sio.save_slp(theirs, str(tmp_path / f"theirs-{clip}.slp"))
        theirs = sio.load_slp(str(tmp_path / f"theirs-{clip}.slp"))
        ours = predicted_masks(model, setting, source, frames, tmp_path / f"{clip}.slp")
        comparison = compare_masks(masks_by_frame(ours), masks_by_frame(theirs), frame_size)
        assert comparison and comparison.matched > 0, f"{setting.name} {clip}: {comparison.summary()}"
        assert comparison.max_score_difference <= SCORE_TOLERANCE, comparison.summary()


REFUSALS = {
    # id: (command after `sleap-export`, a phrase of its one-line error); docs/bad-inputs.md lists each.
    "mask-format": (["predict", "{semantic}", "{video}", "-o", "{out}/masks.csv"], "keep none; write masks.slp instead"),
    "mask-precision": (
        ["onnx", "{run}", "-o", "{out}/m.onnx", "--precision", "fp16", "--calibration", "{video}"], "exports in fp32 only",
    ),
    "mask-option-unread": (
        ["predict", "{semantic}", "{video}", "-o", "{out}/m.slp", "--merge-fragments"], "does not apply to semantic_segmentation",
    ),
    "mask-option-pose": (["predict", "{pose}", "{video}", "-o", "{out}/m.slp", "--min-mask-area", "5"], "applies to segmentation models"),
    "mask-layout": (["onnx", "{run}", "-o", "{out}/folder", "--layout", "sleap-nn"], "no place for masks"),
    "mask-tracking": (["predict", "{semantic}", "{video}", "-o", "{out}/m.slp", "--tracking"], "drop --tracking"),
    "mask-export-max-instances": (["onnx", "{run}", "-o", "{out}/m.onnx", "--max-instances", "3"], "predict --max-instances N"),
    "fg-threshold-pose": (["onnx", "{pose_run}", "-o", "{out}/m.onnx", "--fg-threshold", "0.3"], "segmentation models only"),
    "center-kernel-even": (["onnx", "{bottom_up_run}", "-o", "{out}/m.onnx", "--center-nms-kernel", "4"], "must be odd"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_segmentation_input_is_one_line_exit_2_and_no_file(case, artifact, tmp_path):
    """Through the installed command: one line naming the problem and a fix, exit 2, nothing written."""
    import subprocess
    import sys

    args, phrase = REFUSALS[case]
    values = {
        "semantic": artifact(SEMANTIC, ".onnx"), "pose": artifact(["minimal_instance_centroid"], ".onnx"),
        "run": model_dir(SEMANTIC[0]), "pose_run": model_dir("minimal_instance_centroid"),
        "bottom_up_run": model_dir(BOTTOM_UP[0]), "video": VIDEO, "out": tmp_path,
    }
    command = [str(Path(sys.executable).parent / "sleap-export"), *(a.format(**values) for a in args)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], done.stderr
    assert not list(tmp_path.iterdir())
