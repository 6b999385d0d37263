"""sleap-nn's own checkpoint inference, the reference every artifact is held to.

Used by ``sleap-export check`` and the parity tests. sleap-nn reads the
checkpoints itself here (this module passes it folders, never unpickles).
SLEAP 1.x networks get TensorFlow's transposed-convolution geometry, as our
exporter gives them: sleap-nn's own mapping is one pixel off at every
upsampling step (see `sleap_export.exporting.graph.keras_geometry`), so the reference for those
models is sleap-nn's whole pipeline on the TensorFlow-exact network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import attrs

from sleap_export.core.mask_options import MaskOptions
from sleap_export.core.model_types import MODEL_TYPES
from sleap_export.core.spec import ModelSpec


def reference_settings(spec: ModelSpec, masks: Optional[MaskOptions] = None) -> dict:
    """sleap-nn ``predict`` settings that decode as the artifact's graph does; for a segmentation
    model, also the predict-time ``masks`` settings that differ from sleap-nn's defaults."""
    if MODEL_TYPES[spec.model_type].segments:
        return _mask_settings(spec, masks)
    post = spec.postprocess
    settings = {
        "peak_threshold": post.peak_threshold,
        "integral_refinement": post.refinement or "none",
        "integral_patch_size": post.integral_patch_size,
    }
    if post.instance_peak_threshold is not None:
        settings["keypoint_threshold"] = post.instance_peak_threshold
    if MODEL_TYPES[spec.model_type].detects_boxes:
        settings.update(bbox_nms_iou=post.box_nms_iou, max_instances=post.max_instances)
    elif MODEL_TYPES[spec.model_type].runs[0] == "centroid":
        # The graph keeps the highest-scoring centroids, as sleap-nn's centroid stage does under this cap.
        settings["max_instances"] = post.max_instances
    if spec.model_type == "bottomup":
        settings.update(
            max_edge_length_ratio=post.max_edge_length_ratio,
            dist_penalty_weight=post.dist_penalty_weight,
            n_points=post.n_line_points,
            min_instance_peaks=post.min_instance_peaks,
            min_line_scores=post.min_line_scores,
        )
    return settings


def _mask_settings(spec: ModelSpec, masks: Optional[MaskOptions]) -> dict:
    """What a segmentation graph bakes in (its foreground threshold; bottom-up's center threshold and
    window; top-down's centroid decoding), by sleap-nn's ``predict`` names, and the `MaskOptions`
    set (they share sleap-nn's names)."""
    post = spec.postprocess
    settings = {"fg_threshold": post.fg_threshold}
    if spec.model_type == "bottomup_segmentation":
        settings.update(peak_threshold=post.peak_threshold, center_nms_kernel=post.center_nms_kernel)
    elif spec.model_type == "topdown_segmentation":
        settings.update(
            peak_threshold=post.peak_threshold,
            integral_refinement=post.refinement or "none",
            integral_patch_size=post.integral_patch_size,
            max_instances=post.max_instances,
        )
    if masks is not None:
        settings.update(
            {f.name: getattr(masks, f.name) for f in attrs.fields(MaskOptions) if getattr(masks, f.name) != f.default}
        )
    return settings


# sleap-nn's results depend on its batch size where its maps are nearly flat: with one
# torch thread (AMD EPYC), a shared multi-class top-down model's keypoints moved 4.94 px
# between batches of 4 and 8. Parity holds at equal batch sizes, so compare at this one.
REFERENCE_BATCH_SIZE = 4


def sleap_nn_predict(
    source,
    model_paths: Sequence[str | Path],
    frames: Optional[Sequence[int]] = None,
    keras_geometry: bool = True,
    batch_size: int = REFERENCE_BATCH_SIZE,
    advance: Optional[Callable[[int], None]] = None,
    **settings,
):
    """`sio.Labels` from sleap-nn's checkpoint path on CPU (``keras_geometry``: see the module doc);
    ``advance(frames)`` is called as each batch is done (a progress sink's)."""
    from unittest import mock

    import sleap_nn.inference.loaders as loaders
    from loguru import logger
    from sleap_nn.inference.run import predict

    from sleap_export.exporting.graph.keras_geometry import use_keras_geometry

    load_legacy_model = loaders.load_legacy_model

    def tensorflow_exact(**kwargs):
        network = load_legacy_model(**kwargs)
        use_keras_geometry(network)
        return network

    reported = 0

    def report(done: int, total: int) -> None:  # sleap-nn's callback counts frames so far
        nonlocal reported
        advance(done - reported)
        reported = done

    from sleap_export.exporting.checkpoints import model_type_of, resolve_run_dir

    # An embedding run embeds the detections of the others, as sleap-nn's fused
    # `predict -m ... -m EMBEDDING --save_embeddings slp` does.
    embedding = [p for p in model_paths if model_type_of(resolve_run_dir(p)) == "embedding"]
    detection = [p for p in model_paths if p not in embedding]
    logger.disable("sleap_nn")  # its per-run log lines would bury our report
    try:
        with mock.patch.object(loaders, "load_legacy_model", tensorflow_exact if keras_geometry else load_legacy_model):
            labels = predict(
                source,
                model_paths=[str(p) for p in detection],
                device="cpu",
                batch_size=batch_size,
                frames=None if frames is None else list(frames),
                progress_callback=None if advance is None else report,
                **settings,
            )
        if embedding:
            from sleap_nn.inference.embedding import embed_labels

            embed_labels(str(embedding[0]), labels, device="cpu", batch_size=batch_size, include_untracked=True)
        return labels
    finally:
        logger.enable("sleap_nn")


def sleap_nn_embed(labels, model_path: str | Path, batch_size: int = REFERENCE_BATCH_SIZE):
    """`sio.Labels`: the detections of ``labels`` embedded by sleap-nn's ``predict_embeddings_to_slp`` on CPU
    (every detection, tracked or not), as it runs on a .slp: the labels go through a temporary file."""
    import tempfile

    import sleap_io as sio
    from loguru import logger
    from sleap_nn.inference.embedding import predict_embeddings_to_slp

    logger.disable("sleap_nn")
    try:
        with tempfile.TemporaryDirectory() as folder:
            given, embedded = Path(folder) / "detections.slp", Path(folder) / "embedded.slp"
            sio.save_slp(labels, str(given))
            predict_embeddings_to_slp(
                str(model_path), data_path=str(given), output_path=str(embedded), device="cpu",
                batch_size=batch_size, save_embeddings="slp", include_untracked=True,
            )
            return sio.load_slp(str(embedded))
    finally:
        logger.enable("sleap_nn")
