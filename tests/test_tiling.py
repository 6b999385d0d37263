"""Tiled inference in the graph (`exporting.graph.tiling`), held to sleap-nn's own tiled layers.

Tile origins against ``generate_tile_grid``, windows against
``build_importance_window``, and merged head maps against the maps sleap-nn's
``TiledLayer`` / ``TiledSegmentationLayer`` / ``TiledSemanticSegmentationLayer``
hand their decoding (captured at ``postprocess``, or ``return_confmaps``): bit for
bit on a network whose tile maps are exact, and on real and random-weight
networks in eager torch and exported to ONNX, at frame sizes from 60 to 700 px.
"""

from __future__ import annotations

import io
import random
import warnings

import numpy as np
import pytest
import torch
import yaml

from sleap_export.core.errors import InputError
from sleap_export.core.tiling_spec import TilingSpec
from sleap_export.exporting.graph.tiling import TiledHeads, importance_window, tile_origins, tile_step

TILED_RUN = "new_semantic_segmentation_tiled"
FOREGROUND = "SegmentationHead"
# Network maps differ from sleap-nn's by float32 rounding only: its tiles run in batches of 8, ours in one, and
# ONNX Runtime's convolutions round differently from torch's; the blend itself adds in sleap-nn's order.
MAP_TOLERANCE = 1e-5
# Pixels whose foreground probability lies within that rounding of the 0.5 threshold may flip.
MAX_FLIPPED_FRACTION = 1e-4


def test_tiling_spec_reads_the_training_config(assets):
    import cattrs

    config = yaml.safe_load((assets / "models" / TILED_RUN / "training_config.yaml").read_text())
    tiling = TilingSpec.from_training_config(config)
    assert tiling == TilingSpec(192, 48, 0.25, "gaussian", 0.125)
    # As the artifact spec stores it (cattrs).
    converter = cattrs.Converter()
    assert converter.structure(converter.unstructure(tiling), TilingSpec) == tiling
    untiled = yaml.safe_load((assets / "models" / "new_semantic_segmentation" / "training_config.yaml").read_text())
    assert TilingSpec.from_training_config(untiled) is None
    knobs = config["data_config"]["preprocessing"]["tiling"]
    with pytest.raises(InputError, match="without tile_size"):
        TilingSpec.from_training_config({"data_config": {"preprocessing": {"tiling": {**knobs, "tile_size": None}}}})
    with pytest.raises(InputError, match="blend must be one of"):
        TilingSpec.from_training_config({"data_config": {"preprocessing": {"tiling": {**knobs, "blend": "cosine"}}}})


@pytest.mark.parametrize("blend", ["gaussian", "pyramid", "constant"])
def test_importance_window_is_sleap_nns(blend):
    from sleap_nn.inference.tile_merger import build_importance_window

    for size in (1, 2, 7, 24, 25, 48, 96):
        for sigma_scale in (0.01, 0.125, 0.3, 1.0):
            expected = build_importance_window((size, size), mode=blend, sigma_scale=sigma_scale)
            assert torch.equal(importance_window(size, blend, sigma_scale), expected), (size, sigma_scale)


def our_grid(height: int, width: int, tiling: TilingSpec, output_stride: int, max_stride: int) -> list:
    step = tile_step(tiling, output_stride, max_stride)
    rows, columns = (tile_origins(torch.tensor(n), tiling.tile_size, step, output_stride).tolist() for n in (height, width))
    return [(y, x) for y in rows for x in columns]


def test_tile_origins_are_generate_tile_grids():
    """Hundreds of geometries, frame sides from 1 px (smaller than any tile) to 900, any strides."""
    from sleap_nn.data.tiling import generate_tile_grid

    rng = random.Random(0)
    geometries = []
    for _ in range(600):
        tile_size = rng.choice([8, 16, 32, 48, 64, 96, 100, 128, 192, 256])
        geometries.append((
            rng.randint(1, 900), rng.randint(1, 900), tile_size, rng.randint(0, tile_size + 8),
            rng.choice([1, 2, 4, 8]), rng.choice([1, 2, 4, 8, 12, 16, 32]), rng.choice([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]),
        ))
    # Around the tile size, where the grid goes from one tile to several.
    geometries += [(side, side + 1, 64, 16, 4, 16, 0.25) for side in range(56, 140)]
    for height, width, tile_size, overlap, stride, max_stride, fraction in geometries:
        tiling = TilingSpec(tile_size, overlap, fraction)
        expected = generate_tile_grid((height, width), tile_size, overlap, stride, max_stride, fraction)
        assert our_grid(height, width, tiling, stride, max_stride) == expected, (height, width, tiling, stride, max_stride)


def test_tile_origins_of_the_tiled_run(assets):
    """Its geometry (tile 192, overlap 48, output stride 2, max stride 16) at every side from 1 to 800 px."""
    from sleap_nn.data.tiling import generate_tile_grid

    config = yaml.safe_load((assets / "models" / TILED_RUN / "training_config.yaml").read_text())
    tiling = TilingSpec.from_training_config(config)
    for side in range(1, 801):
        expected = generate_tile_grid((side, 7), 192, 48, 2, 16, 0.25)
        assert our_grid(side, 7, tiling, 2, 16) == expected, side


class ExactHeads(torch.nn.Module):
    """A network whose tile maps are exact whatever the batch (strided sampling, + and *), with the heads of
    a model type's tiled layer. sleap-nn's backends pass tiles as ``(n, 1, C, h, w)``."""

    def __init__(self, stride: int, kind: str):
        super().__init__()
        self.stride = stride
        self.kind = kind

    def forward(self, tiles):
        tiles = tiles.flatten(0, 1) if tiles.ndim == 5 else tiles
        sampled = tiles[:, :1, :: self.stride, :: self.stride]
        if self.kind == "single_instance":
            return {"SingleInstanceConfmapsHead": torch.cat([sampled, sampled * sampled, 1 - sampled], dim=1)}
        heads = {"SegmentationHead": sampled * 3 - 1}
        if self.kind == "bottomup_segmentation":
            heads.update(InstanceCenterHead=sampled * sampled, CenterOffsetHead=torch.cat([sampled * 5, 1 - sampled], dim=1))
        return heads


class CapturedMaps:
    """Stands in for an inner layer's ``postprocess``: keeps the maps the tiled layer hands it."""

    pred_masks: list = []

    def __init__(self):
        self.maps = []

    def __call__(self, raw_out, info):
        self.maps.append(raw_out)
        return self


def sleap_nn_tiled_maps(kind: str, network, tiling: TilingSpec, stride: int, max_stride: int, frames) -> dict:
    """sleap-nn's merged maps for ``(B, C, H, W)`` frames: ``{head: (B, channels, h, w)}``."""
    from sleap_nn.inference.layers.backends.torch_backend import TorchBackend
    from sleap_nn.inference.layers.configs import PostprocessConfig
    from sleap_nn.inference.layers.segmentation import SegmentationLayer, SemanticSegmentationLayer
    from sleap_nn.inference.layers.single_instance import SingleInstanceLayer
    from sleap_nn.inference.layers.tiled import TiledLayer, TiledSegmentationLayer, TiledSemanticSegmentationLayer

    backend = TorchBackend(model=network)
    geometry = dict(blend=tiling.blend, sigma_scale=tiling.sigma_scale, min_overlap_fraction=tiling.min_overlap_fraction)
    if kind == "single_instance":
        inner = SingleInstanceLayer(backend, stride, max_stride, postprocess_config=PostprocessConfig(return_confmaps=True))
        outputs = TiledLayer(inner, tiling.tile_size, tiling.overlap, **geometry).predict(frames)
        return {"SingleInstanceConfmapsHead": outputs.pred_confmaps, "keypoints": outputs.pred_keypoints[:, 0]}
    inner_type, tiled_type = {
        "bottomup_segmentation": (SegmentationLayer, TiledSegmentationLayer),
        "semantic_segmentation": (SemanticSegmentationLayer, TiledSemanticSegmentationLayer),
    }[kind]
    inner = inner_type(backend, stride, max_stride)
    inner.postprocess = captured = CapturedMaps()
    tiled_type(inner, tiling.tile_size, tiling.overlap, **geometry).predict(frames)
    return {name: torch.cat([maps[name] for maps in captured.maps]) for name in captured.maps[0]}


def exact_geometries(count: int):
    """Random tilings with overlaps up to half a tile, frames from 5 px to 300, batches of 1-3."""
    rng = random.Random(1)
    kinds = ["single_instance", "bottomup_segmentation", "semantic_segmentation"]
    for case in range(count):
        stride = rng.choice([1, 2, 4])
        max_stride = stride * rng.choice([1, 2, 4, 8])
        tile_size = max_stride * rng.randint(max(1, 24 // max_stride), max(1, 128 // max_stride))
        tiling = TilingSpec(
            tile_size, rng.randint(0, tile_size // 2), rng.choice([0.0, 0.1, 0.25, 0.5]),
            rng.choice(["gaussian", "pyramid", "constant"]), rng.choice([0.125, 0.3]),
        )
        yield kinds[case % 3], tiling, stride, max_stride, (rng.randint(1, 3), rng.randint(5, 300), rng.randint(5, 300))


def test_merged_maps_are_sleap_nns_bit_for_bit():
    """Equal tile maps blend to equal merged maps, for all three tiled layers; single-instance peaks
    decoded on our merged confidence maps land where sleap-nn's tiled layer puts them."""
    from sleap_export.exporting.graph.peaks import global_peaks, integral_offsets

    torch.manual_seed(0)
    for kind, tiling, stride, max_stride, shape in exact_geometries(30):
        network = ExactHeads(stride, kind)
        frames = torch.rand(shape[0], 1, *shape[1:])
        expected = sleap_nn_tiled_maps(kind, network, tiling, stride, max_stride, frames)
        merged = TiledHeads(network, tiling, stride, max_stride)(frames)
        assert merged.keys() == expected.keys() - {"keypoints"}
        for name, maps in merged.items():
            assert torch.equal(maps, expected[name]), (kind, name, tiling, stride, max_stride, shape)
        if kind == "single_instance":
            confmaps = merged["SingleInstanceConfmapsHead"]
            points, _ = global_peaks(confmaps, 0.2)
            points = points + integral_offsets(confmaps, points.unsqueeze(2), 5).squeeze(2)
            torch.testing.assert_close(points * stride, expected["keypoints"], equal_nan=True, rtol=0, atol=1e-4)


def frames_at_size(video_frames: np.ndarray, height: int, width: int, rng: np.random.Generator) -> torch.Tensor:
    """uint8 ``(B, 1, height, width)``: each 384 x 384 frame cropped or zero-padded to the size at a random
    offset, so the flies sit anywhere on the tile grid (or partly outside the frame)."""
    batch, side = len(video_frames), video_frames.shape[1]
    canvas = np.zeros((batch, 1, height, width), np.uint8)
    source_y, source_x = rng.integers(0, max(1, side - height + 1)), rng.integers(0, max(1, side - width + 1))
    target_y, target_x = rng.integers(0, max(1, height - side + 1)), rng.integers(0, max(1, width - side + 1))
    piece = video_frames[:, source_y:source_y + height, source_x:source_x + width, 0]
    canvas[:, 0, target_y:target_y + piece.shape[1], target_x:target_x + piece.shape[2]] = piece
    return torch.from_numpy(canvas)


class MapsAsTuple(torch.nn.Module):
    """The module's maps as a tuple, in the order of its heads: ONNX export takes no dict outputs."""

    def __init__(self, tiled: TiledHeads):
        super().__init__()
        self.tiled = tiled

    def forward(self, images):
        return tuple(self.tiled(images).values())


def onnx_session(tiled: TiledHeads, example: torch.Tensor):
    """Exported as our writers export (TorchScript tracer, opset 17, onnxslim), dynamic batch, height, width."""
    import onnx
    import onnxruntime
    import onnxslim

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MapsAsTuple(tiled), (example,), buffer, dynamo=False, opset_version=17, input_names=["images"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}},
        )
    model = onnxslim.slim(onnx.load_from_string(buffer.getvalue()), no_shape_infer=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def semantic_module(config, network):
    """sleap-nn's ``SemanticSegmentationLightningModule`` for a training config, with ``network`` as its model:
    its forward (tiles normalized, foreground as probabilities) is what sleap-nn's tiled layer runs on tiles."""
    from sleap_nn.training.lightning_modules import SemanticSegmentationLightningModule

    module = SemanticSegmentationLightningModule(
        model_type="semantic_segmentation",
        backbone_type="unet",
        backbone_config=config.model_config.backbone_config,
        head_configs=config.model_config.head_configs,
    )
    module.model = network
    return module.eval()


def compare_foreground(module, tiling, stride, max_stride, sizes, video_frames, rng) -> None:
    """sleap-nn's merged foreground probabilities against ours (on its module's network), eager and in ONNX
    Runtime, at each ``(batch, height, width)``; prints the largest difference and the largest fraction of
    pixels on the other side of 0.5, per runtime."""
    tiled = TiledHeads(module.model, tiling, stride, max_stride, sigmoid_heads=[FOREGROUND])
    session = onnx_session(tiled, torch.rand(2, 1, 150, 230))
    worst = {"eager": [0.0, 0.0], "onnx": [0.0, 0.0]}
    for batch, height, width in sizes:
        frames = frames_at_size(video_frames[rng.integers(0, len(video_frames), batch)], height, width, rng)
        expected = sleap_nn_tiled_maps("semantic_segmentation", module, tiling, stride, max_stride, frames)[FOREGROUND]
        images = frames.to(torch.float32) / 255.0
        found = {
            "eager": tiled(images)[FOREGROUND],
            "onnx": torch.from_numpy(session.run(None, {"images": images.numpy()})[0]),
        }
        for name, maps in found.items():
            assert maps.shape == expected.shape, (name, batch, height, width)
            difference = (maps - expected).abs().max().item()
            flipped = ((maps > 0.5) != (expected > 0.5)).to(torch.float64).mean().item()
            assert difference <= MAP_TOLERANCE and flipped <= MAX_FLIPPED_FRACTION, (
                name, batch, height, width, difference, flipped,
            )
            worst[name] = [max(worst[name][0], difference), max(worst[name][1], flipped)]
    print(f"\n{len(sizes)} sizes, max abs difference and flipped fraction vs sleap-nn: {worst}")


@pytest.fixture(scope="module")
def video_frames(assets) -> np.ndarray:
    """Ten frames of the shared clip, ``(10, 384, 384, 1)`` uint8."""
    import sleap_io as sio

    video = sio.load_video(str(assets / "data" / "centered_pair_small.mp4"))
    return np.stack([video[i] for i in range(0, 100, 10)])


@pytest.fixture(scope="module")
def tiled_run(assets):
    """The tiled run's network (read as our exporter reads it), training config and tiling."""
    from omegaconf import OmegaConf

    from sleap_export.exporting.checkpoints import load_run

    run = load_run(assets / "models" / TILED_RUN)
    config = OmegaConf.create(yaml.safe_load(run.stage.training_config))
    return run, config, TilingSpec.from_training_config(config)


def test_real_network_merges_as_sleap_nn(tiled_run, video_frames):
    """The tiled run's own network and geometry (tile 192): one tile (frames smaller than it) to 5 x 5."""
    run, config, tiling = tiled_run
    sizes = [
        (1, 101, 143), (2, 163, 389), (1, 217, 250), (1, 333, 197), (1, 384, 384),
        (1, 455, 121), (1, 521, 277), (1, 611, 163), (1, 699, 301), (1, 131, 701),
    ]
    compare_foreground(
        semantic_module(config, run.network), tiling, run.stage.output_stride, run.stage.max_stride,
        sizes, video_frames, np.random.default_rng(0),
    )


class SmallNetwork(torch.nn.Module):
    """A cheap random-weight network at output stride 4: foreground logits."""

    def __init__(self):
        super().__init__()
        self.entry = torch.nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.head = torch.nn.Conv2d(4, 1, 3, stride=2, padding=1)
        # Random weights put zero-padded areas on one logit near 0: a plateau at probability 0.5, where rounding
        # flips whole areas across the threshold. Offset, the maps cross 0.5 only on slopes, as a trained network's.
        self.head.bias.data += 1.0

    def forward(self, images):
        return {FOREGROUND: self.head(torch.relu(self.entry(images)))}


class ProbabilityForward(torch.nn.Module):
    """sleap-nn's semantic segmentation forward around a network (its Lightning module's): tiles
    ``(n, 1, C, h, w)`` in [0, 255], normalized; the foreground as probabilities."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tiles):
        from sleap_nn.data.normalization import normalize_on_gpu

        return {FOREGROUND: torch.sigmoid(self.model(normalize_on_gpu(tiles.squeeze(1)))[FOREGROUND])}


def test_random_network_merges_as_sleap_nn_at_many_sizes(video_frames):
    """A small random-weight network on another geometry (tile 96 at output stride 4, max stride 16, pyramid
    window) at 110 frame sizes from 60 to 700 px, odd ones included."""
    torch.manual_seed(0)
    tiling = TilingSpec(96, 20, 0.25, "pyramid", 0.125)
    rng = np.random.default_rng(1)
    sizes = [(1, 60, 75), (1, 96, 96), (2, 97, 95), (1, 160, 161)]
    sizes += [(int(rng.integers(1, 3)), *map(int, rng.integers(100, 701, 2))) for _ in range(106)]
    compare_foreground(ProbabilityForward(SmallNetwork()), tiling, 4, 16, sizes, video_frames, rng)
