"""Where an ONNX artifact's time goes: ONNX Runtime's profiler over real frames, summed by graph part.

    .venv/bin/python scripts/profile_graph.py ARTIFACT.onnx VIDEO [--frames 52] [--batch 4] [--depth 2] [--ops 6]

Runs the artifact on the first ``--frames`` frames in batches of ``--batch`` (one thread, so that node times
add up to the work done), skips the first batch (warm-up), and prints the kernel time of every node summed
by its scope prefix (the exporter names nodes by module scope: ``/detector/network/...``; ``--depth``
path components) with the largest op types of each group. A ``Loop``'s time is its body's nodes, counted
in the Loop's group; the layout reorders ONNX Runtime inserts around its blocked convolutions get a row of
their own. Compare shares within one profile: on a shared machine absolute times move from run to run.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import sleap_io


def frames_of(video_path: str, count: int, channels: int) -> np.ndarray:
    video = sleap_io.load_video(video_path)
    frames = np.stack([video[i] for i in range(min(count, len(video)))])
    if frames.shape[-1] != channels:
        frames = np.repeat(frames[..., :1], channels, axis=-1) if channels == 3 else frames[..., :1]
    return frames


def profile_events(artifact: str, frames: np.ndarray, batch: int, threads: int) -> list[dict]:
    """The profiler's node events of every run after the first."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = onnxruntime.InferenceSession(artifact, sess_options=options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for start in range(0, len(frames), batch):
            session.run(None, {name: frames[start:start + batch]})
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    warm_from = runs[0]["ts"] + runs[0]["dur"]
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= warm_from]


def subgraph_owners(artifact: str) -> dict[str, str]:
    """Each node inside a subgraph (a Loop's body, an If's branches) -> the top-level node that holds it."""
    owners = {}

    def walk(graph, owner):
        for node in graph.node:
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.g.node else list(attribute.graphs):
                    for inner in subgraph.node:
                        owners[inner.name] = owner or node.name
                    walk(subgraph, owner or node.name)

    walk(onnx.load(artifact, load_external_data=False).graph, None)
    return owners


def group_of(node: str, depth: int, owners: dict[str, str]) -> str:
    if node in owners:
        return group_of(owners[node], depth, {}) + f" ({owners[node]} body)"
    if not node.startswith("/"):
        return "(layout reorders)" if node.startswith("Reorder") else "/ (top level)"
    # "/detector/network/Conv" -> ["detector", "network"]; a node ONNX Runtime fused keeps its first node's
    # name with a suffix: "/detector/Gather_6/GatherSliceToSplitFusion" -> ["detector"].
    parts = [part for part in node.split("/")[1:] if not part.endswith("Fusion")][:-1]
    return "/" + "/".join(parts[:depth]) if parts else "/ (top level)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, default=52)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--depth", type=int, default=2, help="scope components a group keeps")
    parser.add_argument("--ops", type=int, default=6, help="op types listed per group")
    args = parser.parse_args()

    session = onnxruntime.InferenceSession(args.artifact, providers=["CPUExecutionProvider"])
    channels = session.get_inputs()[0].shape[-1]
    frames = frames_of(args.video, args.frames, channels if isinstance(channels, int) else 1)
    events = profile_events(args.artifact, frames, args.batch, args.threads)
    owners = subgraph_owners(args.artifact)

    by_group: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for event in events:
        node = event["name"][: -len("_kernel_time")]
        op = event.get("args", {}).get("op_name", "?")
        if op in ("Loop", "If"):
            continue  # the time of its body's nodes, counted there
        by_group[group_of(node, args.depth, owners)][op] += event["dur"]
    total = sum(sum(ops.values()) for ops in by_group.values())
    measured = len(frames) - min(args.batch, len(frames))
    print(f"{args.artifact}: {measured} frames after warm-up, batch {args.batch}, {args.threads} thread(s); "
          f"node time {total / 1e3:.0f} ms ({total / 1e3 / max(measured, 1):.1f} ms/frame)")
    print(f"{'group':40s} {'ms':>9s} {'share':>6s}  largest op types (ms)")
    for group, ops in sorted(by_group.items(), key=lambda item: -sum(item[1].values())):
        spent = sum(ops.values())
        largest = ", ".join(f"{op} {dur / 1e3:.0f}" for op, dur in ops.most_common(args.ops))
        print(f"{group:40s} {spent / 1e3:9.1f} {100 * spent / total:5.1f}%  {largest}")


if __name__ == "__main__":
    main()
