"""Make ``docs/images/overlay.png``, the README's still of ``predict --overlay``.

A real run on the shared assets (``../shared/assets``; needs the ``export`` extra):
the multi-class bottom-up model exported to ONNX, predicted on the first frames of
``centered_pair_small.mp4`` with ``overlay=``, and one frame of the overlay video
it wrote saved as it is (H.264 and all), so the still shows what users get.

    .venv/bin/python scripts/overlay_still.py [--frame 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import imageio.v3 as iio
import sleap_io as sio

PROJECT = Path(__file__).resolve().parents[1]
ASSETS = PROJECT.parent / "shared" / "assets"
MODEL = ASSETS / "models" / "minimal_instance_multiclass_bottomup"
VIDEO = ASSETS / "data" / "centered_pair_small.mp4"
STILL = PROJECT / "docs" / "images" / "overlay.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", type=int, default=5, help="The frame of the overlay to keep.")
    frame = parser.parse_args().frame

    from sleap_export import Predictor, export

    if not (MODEL.is_dir() and VIDEO.is_file()):
        raise SystemExit(f"The shared assets are missing at {ASSETS}; they hold the model and video this still is made from.")
    with tempfile.TemporaryDirectory() as folder:
        artifact, overlay = Path(folder) / "model.onnx", Path(folder) / "overlay.mp4"
        export([MODEL], artifact, overwrite=True)
        labels = Predictor.from_model_paths(artifact).predict(str(VIDEO), frames=f"0-{frame}", overlay=overlay, progress=None)
        tracks = sorted({i.track.name for i in labels.labeled_frames[frame].instances if i.track is not None})
        STILL.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(STILL, sio.load_video(str(overlay))[frame])
    print(f"wrote {STILL}: frame {frame} of the overlay, tracks {', '.join(tracks) or 'none'}")


if __name__ == "__main__":
    main()
