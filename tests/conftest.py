"""Shared fixtures: the real sleap-nn assets, sleap-nn reference predictions and
exported artifacts, each computed once per test session (shared by xdist workers).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import attrs
import numpy as np
import pytest
from filelock import FileLock

if TYPE_CHECKING:
    import sleap_io as sio

PROJECT = Path(__file__).resolve().parents[1]
ASSETS = PROJECT.parent / "shared" / "assets"
MODELS = ASSETS / "models"
LEGACY_MODELS = ASSETS / "legacy_models"
DATA = ASSETS / "data"


def model_dir(name: str) -> Path:
    """A shared model folder by name: sleap-nn runs, or SLEAP 1.x folders (their names differ)."""
    legacy = LEGACY_MODELS / name
    return legacy if legacy.is_dir() else MODELS / name


@functools.lru_cache(maxsize=1)
def gpu_problem() -> str | None:
    """Why GPU tests cannot run here (no TensorRT, no GPU), or None where they can."""
    from sleap_export.core.errors import SleapExportError
    from sleap_export.runtime.backends.tensorrt_runner import local_target

    try:
        local_target()
    except SleapExportError as err:
        return f"needs an NVIDIA GPU with TensorRT ({err})"
    return None


def pytest_configure(config):
    # The reference path and our torch runners both allocate large tensors.
    from sleap_export.runtime.backends.malloc import keep_large_buffers_mapped

    keep_large_buffers_mapped()
    _share_cores_between_workers()


def _share_cores_between_workers() -> None:
    """Give each xdist worker its own cores. Left alone, every worker's torch and
    ONNX Runtime start a thread per core, and the spinning threads of one worker
    take the cores the other needs (measured on 2 cores with another busy process:
    sleap-nn's top-down on 100 frames took 57 s with 2 threads, 34 s with 1).
    Both libraries, and our runners' default thread count, follow the affinity."""
    import os
    import sys

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0))
    if workers < 2 or len(cores) < workers or "PYTEST_XDIST_WORKER" not in os.environ:
        return
    index = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    own = cores[index::workers]
    os.sched_setaffinity(0, own)
    if "torch" in sys.modules:  # sized its thread pool when imported
        sys.modules["torch"].set_num_threads(len(own))


def pytest_collection_modifyitems(config, items):
    """Start every xdist worker on its share of the longest tests. Work stealing
    hands each worker a contiguous run of the collection and steals from the end
    of the longest queue, so long tests at the end of one run would finish last.
    A test module's ``schedule_group(item)`` names such tests as (group, cost):
    tests of one group share an expensive fixture and stay on one worker."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    groups: dict[str, list] = {}
    costs: dict[str, float] = {}
    rest = []
    for item in items:
        grouping = getattr(item.module, "schedule_group", None)
        named = grouping(item) if grouping else None
        if named is None:
            rest.append(item)
        else:
            groups.setdefault(named[0], []).append(item)
            costs[named[0]] = named[1]
    runs: list[list] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for name in sorted(groups, key=lambda name: -costs[name]):
        lightest = loads.index(min(loads))
        runs[lightest] += groups[name]
        loads[lightest] += costs[name]
    # Worker i is sent the i-th equal slice of the collection: pad each run to it.
    size = len(items) // workers
    for run in runs[:-1]:
        while len(run) < size and rest:
            run.append(rest.pop(0))
    runs[-1] += rest
    items[:] = [item for run in runs for item in run]


@pytest.fixture(scope="session")
def assets() -> Path:
    """The shared assets; their absence fails (never skips) the tests that need them."""
    if not (MODELS.is_dir() and LEGACY_MODELS.is_dir() and DATA.is_dir()):
        pytest.fail(f"Test assets are missing at {ASSETS}; CI provides ../shared/assets.")
    return ASSETS


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory, worker_id) -> Path:
    """A folder shared by all workers of this session (not across sessions)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "shared-cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached(cache: Path, name: str, produce: Callable[[Path], None]) -> Path:
    """Produce ``cache/name`` once per session, whichever worker gets there first."""
    path = cache / name
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            partial = path.with_name(path.name + ".partial" + path.suffix)
            produce(partial)
            partial.rename(path)
    return path


def save_poses(poses: dict, path: Path) -> None:
    arrays = {f"{v}:{f}": p for (v, f), p in poses.items()}
    np.savez(path, **arrays) if arrays else np.savez(path, empty=np.zeros(0))


def load_poses(path: Path) -> dict:
    with np.load(path) as data:
        return {tuple(int(x) for x in k.split(":")): data[k] for k in data.files if k != "empty"}


@attrs.frozen
class Predictions:
    """Poses and track names per ``(video, frame)``."""

    poses: dict
    tracks: dict

    @classmethod
    def of(cls, labels) -> "Predictions":
        from sleap_export.core.comparison import poses_by_frame, tracks_by_frame

        return cls(poses_by_frame(labels), tracks_by_frame(labels))

    def only(self, frames) -> "Predictions":
        keep = set(frames)
        return Predictions(
            {k: v for k, v in self.poses.items() if k[1] in keep},
            {k: v for k, v in self.tracks.items() if k[1] in keep},
        )


def sleap_nn_predict(source, model_names, keras_geometry: bool = True, **settings):
    """sleap-nn's own checkpoint inference on shared models (SLEAP 1.x: see sleap_export.evaluation.sleap_nn_reference)."""
    from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict as predict

    return predict(source, [model_dir(m) for m in model_names], keras_geometry=keras_geometry, **settings)


@pytest.fixture(scope="session")
def reference(assets, session_cache):
    """``reference(name, model_names, source) -> Predictions`` by sleap-nn's checkpoint path."""

    def compute(name: str, model_names: list[str], source: Callable[[], object], **settings) -> Predictions:
        def produce(path: Path) -> None:
            labels = sleap_nn_predict(source(), model_names, **settings)
            found = Predictions.of(labels)
            path.mkdir()
            save_poses(found.poses, path / "poses.npz")
            tracks = [[v, f, names] for (v, f), names in found.tracks.items()]
            (path / "tracks.json").write_text(json.dumps(tracks))

        folder = cached(session_cache, f"reference-{name}", produce)
        tracks = {(v, f): names for v, f, names in json.loads((folder / "tracks.json").read_text())}
        return Predictions(load_poses(folder / "poses.npz"), tracks)

    return compute


@pytest.fixture(scope="session")
def artifact(assets, session_cache):
    """``artifact(model_names, suffix, **options) -> Path``, exported once per session."""

    def make(model_names: list[str], suffix: str, **options) -> Path:
        from sleap_export import export

        key = "+".join(model_names) + "".join(f"-{k}={v}" for k, v in sorted(options.items()))
        return cached(
            session_cache,
            f"{key}{suffix}",
            lambda path: export([model_dir(m) for m in model_names], path, overwrite=True, **options),
        )

    return make


@pytest.fixture(scope="session")
def frame_sequence(assets, frame_sequence_from):
    """``frame_sequence(video name, frames, height, width)`` for the shared videos."""
    return lambda video, *args: frame_sequence_from(DATA / video, *args)


@pytest.fixture(scope="session")
def frame_sequence_from(session_cache):
    """``frame_sequence_from(video path, frames, height, width) -> [png paths]``:
    frames padded (zeros bottom/right) or cropped to another size, stored
    losslessly so sleap-nn and our runners read identical pixels."""

    def make(video: Path, frames: range, height: int, width: int) -> list[str]:
        folder_name = f"{Path(video).stem}-{frames.start}-{frames.stop}-{frames.step}-{height}x{width}"

        def produce(folder: Path) -> None:
            import imageio.v3 as iio
            import sleap_io as sio

            folder.mkdir()
            source = sio.load_video(str(video))
            for i in frames:
                frame = source[i][:height, :width]
                canvas = np.zeros((height, width, frame.shape[-1]), np.uint8)
                canvas[: frame.shape[0], : frame.shape[1]] = frame
                iio.imwrite(folder / f"{i:06d}.png", canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
            (folder / "frames.json").write_text(json.dumps(list(frames)))

        folder = cached(session_cache, folder_name, produce)
        return sorted(str(p) for p in folder.glob("*.png"))

    return make


def pytest_terminal_summary(terminalreporter):
    """Print the parity figures the tests recorded (see test_parity.record)."""
    import os

    path = os.environ.get("SLEAP_EXPORT_PARITY_REPORT")
    if path and Path(path).exists():
        terminalreporter.write_sep("-", "parity against sleap-nn")
        for line in sorted(Path(path).read_text().splitlines()):
            terminalreporter.write_line(line)


@attrs.frozen
class Setting:
    """One setting of sleap-nn's knobs: the export's (baked into the graph) and predict's (`MaskOptions`)."""

    name: str
    export: dict = attrs.field(factory=dict)
    masks: dict = attrs.field(factory=dict)

    @property
    def sleap_nn(self) -> dict:
        return {**self.export, **self.masks}


@pytest.fixture(scope="session")
def mask_reference(assets, session_cache):
    """``mask_reference(runs, setting, clip name, source, frames) -> sio.Labels`` by sleap-nn, once per session
    (the segmentation tests' references, and the masks the lone embedding run embeds)."""

    def compute(runs, setting: Setting, clip: str, source, frames) -> sio.Labels:
        import sleap_io as sio
        from parity import REFERENCE_BATCH_SIZE

        from sleap_export.evaluation.parity_check import sleap_nn_mask_ties
        from sleap_export.evaluation.sleap_nn_reference import sleap_nn_predict

        name = f"masks-{'+'.join(runs)}-{setting.name}-{clip}.slp"

        def produce(path: Path) -> None:
            with sleap_nn_mask_ties() as ties:
                labels = sleap_nn_predict(
                    source, [model_dir(r) for r in runs], frames=frames, batch_size=REFERENCE_BATCH_SIZE, **setting.sleap_nn
                )
            sio.save_slp(labels, str(path))
            np.savez(session_cache / f"{name}.ties.npz", **{
                f"{i}:{part}": value
                for i, tie in enumerate(ties)
                for part, value in (("pixels", tie.pixels), ("scale", tie.scale), ("offset", tie.offset))
            })

        return sio.load_slp(str(cached(session_cache, name, produce)))

    return compute


@pytest.fixture(scope="session")
def mask_reference_ties(mask_reference, session_cache):
    """``mask_reference_ties(runs, setting, clip name, source, frames) -> {(0, frame): TiePixels}``: the pixels
    sleap-nn's maps put on a tie (`sleap_nn_mask_ties`) for the frames of that reference, in the order it
    decoded them; empty when it noted none or not one per frame (then every pixel is judged)."""

    def compute(runs, setting: Setting, clip: str, source, frames) -> dict:
        from sleap_export.core.mask_comparison import TiePixels

        mask_reference(runs, setting, clip, source, frames)
        with np.load(session_cache / f"masks-{'+'.join(runs)}-{setting.name}-{clip}.slp.ties.npz") as saved:
            count = len({key.split(":")[0] for key in saved.files})
            noted = [
                TiePixels(saved[f"{i}:pixels"], tuple(saved[f"{i}:scale"]), tuple(saved[f"{i}:offset"])) for i in range(count)
            ]
        indices = list(frames) if frames is not None else list(range(len(noted)))
        return dict(zip([(0, int(i)) for i in indices], noted)) if len(noted) == len(indices) else {}

    return compute
