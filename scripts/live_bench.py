"""The closed-loop figures (README "Closed loop"): live latency against the bare network.

The single-instance model (ONNX, CPU) on ``small_robot.mp4`` played as a
simulated camera (looped), in one process:

  1. the comparison, in ``--rounds`` interleaved rounds (a shared host's speed
     drifts by tens of percent over minutes; each round times all three, so
     drift weighs on them alike): bare `Runner.predict` at batch 1 on decoded
     frames, back to back; live at the video's frame rate for
     ``--round-seconds`` (capture to pose-ready); the bare calls paced at the
     video's rate (idle cores between frames slow a network down, with or
     without the live path: this row tells the two apart);
  2. live at the video's frame rate for ``--duration`` seconds without a break:
     percentiles overall and per window (flat windows: no backlog), drops;
  3. live with the inference thread sleeping between frames (``spin=False``)
     instead of polling for them, for ``--side-runs`` seconds;
     live overloaded, frames coming ``--overload`` times faster than the bare
     network can pose them: latency stays bounded, drops are counted;
     and live on frames decoded beforehand, paced at the video's rate (what a
     camera costs: a copy, where the simulated camera also decodes the mp4 on
     the capture thread, beside inference);
  4. sleap-nn one frame at a time (its realtime call, ``layer.predict``, on the
     checkpoint in PyTorch): bare, then live on the same simulated camera.

Targets: live p50 <= 1.10 x bare p50 and live p99 <= bare p99 + 1 ms (when
the model keeps up); printed for the interleaved rounds and the long run,
against both bare rows. Writes ``--json`` (default live-bench.json).

    python scripts/live_bench.py [--duration 600] [--rounds 60] [--artifact model.onnx] [--runtime openvino [--precision bf16]]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import attrs
import numpy as np

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
RUN = ASSETS / "models" / "minimal_instance_single_instance"
VIDEO = ASSETS / "data" / "small_robot.mp4"


def sleap_nn_one_frame(spec):
    """sleap-nn's checkpoint behind our `Runner` interface: one frame per `layer.predict` call."""
    from loguru import logger
    from sleap_nn.inference.predictor import Predictor

    from sleap_export.evaluation.sleap_nn_reference import reference_settings
    from sleap_export.runtime.backends.runner import Runner
    from sleap_export.runtime.decoding.outputs import Outputs
    from sleap_export.runtime.sources.frame_arrays import as_batch

    logger.disable("sleap_nn")
    settings = {k: v for k, v in reference_settings(spec).items() if k in ("peak_threshold", "integral_refinement", "integral_patch_size")}
    layer = Predictor.from_model_paths([str(RUN)], device="cpu", batch_size=1, **settings).layer

    class SleapNNRunner(Runner):
        name = "sleap-nn"

        def activate_impl(self):
            pass

        def infer_impl(self, inputs):
            raise NotImplementedError("sleap-nn runs its own pipeline; see predict")

        def predict(self, frames, frame_indices=None, video_idx=None, keep_images=True, centroids=None):
            keypoints = layer.predict(as_batch(frames)).pred_keypoints[0].numpy()
            return [Outputs(pred_keypoints=keypoints, instance_valid=np.ones(len(keypoints), bool),
                            frame_idx=None if frame_indices is None else int(frame_indices[0]))]

    return SleapNNRunner(spec)


def windows(live, count: int) -> list[dict]:
    """Capture-to-pose p50 / p99 (ms) and drops in ``count`` equal spans of the run."""
    capture, index = live.times.column("capture_ns"), live.times.column("index")
    latency = (live.times.column("pose_ready_ns") - capture) / 1e6
    edges = np.linspace(capture[0], capture[-1] + 1, count + 1)
    spans = []
    for start, stop in zip(edges[:-1], edges[1:]):
        inside = (capture >= start) & (capture < stop)
        if inside.any():
            captured = index[inside][-1] - index[inside][0] + 1
            spans.append({"start_s": float((start - capture[0]) / 1e9), "p50": float(np.percentile(latency[inside], 50)),
                          "p99": float(np.percentile(latency[inside], 99)), "posed": int(inside.sum()),
                          "dropped": int(captured - inside.sum())})
    return spans


def cpu_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks so far (Linux; on a VM, steal is time the host gave to others)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0, 0
    return sum(fields), fields[7]


def row(name: str, figures: dict, extra: str = "") -> str:
    return f"| {name} | " + " | ".join(f"{figures[k]:.2f}" for k in ("p50", "p90", "p99", "max")) + f" | {extra} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of live video at its frame rate.")
    parser.add_argument("--artifact", type=Path, help="The single-instance ONNX artifact (default: exported here).")
    parser.add_argument("--overload", type=float, default=2.0, help="Overloaded run: frame rate over the bare network's.")
    parser.add_argument("--side-runs", type=float, default=30.0, help="Seconds of the overloaded and sleap-nn live runs.")
    # Short rounds: the host's speed holds within one, so each round's ratios are paired.
    parser.add_argument("--rounds", type=int, default=60, help="Interleaved rounds of bare, live and paced timing.")
    parser.add_argument("--round-seconds", type=float, default=2.0, help="Seconds live in each round.")
    parser.add_argument("--bare-frames", type=int, default=3600, help="Calls timed bare and paced, over all rounds (sleap-nn: a tenth).")
    parser.add_argument("--windows", type=int, default=10, help="Spans the long run's latency is reported in.")
    parser.add_argument("--runtime", default=None, help="openvino: open the artifact with OpenVINO (default: ONNX Runtime).")
    parser.add_argument("--precision", default=None, help="--runtime openvino: fp32 (default) or bf16.")
    parser.add_argument("--json", type=Path, default=Path("live-bench.json"))
    args = parser.parse_args()

    from sleap_export.evaluation.latency import (
        LatencyReport,
        bare_latency_ms,
        decoded_frames,
        interleaved_latency,
        live_run,
        live_split_ms,
        percentiles_ms,
        pooled_ms,
        pooled_summary,
        runner_label,
    )
    from sleap_export.runtime import load
    from sleap_export.runtime.drivers.live import LiveRunner, Waiting
    from sleap_export.runtime.sources.live_sources import IteratorSource

    ticks_before = cpu_ticks()
    with tempfile.TemporaryDirectory() as work:
        artifact = args.artifact
        if artifact is None:
            from sleap_export import export

            artifact = export([RUN], Path(work) / "single_instance.onnx")
        load_options = {k: v for k, v in (("runtime", args.runtime), ("precision", args.precision)) if v is not None}
        runner = load(artifact, **load_options)
        frames = decoded_frames(VIDEO, 166)
        with runner:
            arms = {"polling": Waiting.default(spin=True), "warming ahead": Waiting.default(spin=True, warm_ahead=True)}
            rounds = interleaved_latency(runner, VIDEO, frames, args.bare_frames, args.rounds, live_seconds=args.round_seconds,
                                         waitings=tuple(arms.values()))
            steady = live_run(runner, VIDEO, args.duration, waiting=arms["warming ahead"])
            sleeping = live_run(runner, VIDEO, args.side_runs, waiting=Waiting(spin=False))
            bare_ms = pooled_ms(rounds.bare_ms)
            bare_rate = 1000 / bare_ms["p50"]
            overloaded = live_run(runner, VIDEO, args.side_runs, fps=args.overload * bare_rate)
            looped = (frames[i % len(frames)] for i in itertools.count())
            preloaded = LiveRunner(runner, IteratorSource(looped, fps=steady.source.fps), duration_s=args.side_runs)
            preloaded.run()
        # sleap-nn last: torch's thread pool would otherwise share the cores with ours.
        reference = sleap_nn_one_frame(runner.spec)
        reference_bare_ms = percentiles_ms(bare_latency_ms(reference, frames, max(10, args.bare_frames // 10)))
        reference_live = live_run(reference, VIDEO, args.side_runs)
    ticks_after = cpu_ticks()
    steal = (ticks_after[1] - ticks_before[1]) / max(ticks_after[0] - ticks_before[0], 1)

    fps = steady.source.fps
    paced_ms = pooled_ms(rounds.paced_ms)
    rounds_live = {name: pooled_summary(lives) for name, lives in zip(arms, rounds.lives)}
    steady_summary, overloaded_summary, reference_summary = steady.summary(), overloaded.summary(), reference_live.summary()
    spans = windows(steady, args.windows)

    def against_bare(summary) -> LatencyReport:
        """``summary`` against the rounds' pooled bare rows (the overheads `bench --latency` reports)."""
        return LatencyReport(str(artifact), str(VIDEO), fps, bare_ms, paced_ms, summary, {}, runner_label(runner))

    def overheads(summary) -> dict:
        report = against_bare(summary)
        return {"p50": report.p50_overhead, "p99_ms": report.p99_overhead_ms,
                "p50_paced": report.p50_overhead_paced, "p99_paced_ms": report.p99_overhead_paced_ms}

    results = {
        "artifact": str(args.artifact or "minimal_instance_single_instance (exported)"),
        "runner": runner_label(runner), "video": str(VIDEO), "fps": fps, "duration_s": args.duration,
        "rounds": args.rounds, "round_seconds": args.round_seconds,
        "bare_ms": bare_ms,
        "bare_paced_ms": paced_ms,
        "rounds_live": {
            name: {**rounds_live[name].as_dict(), "waiting": attrs.asdict(arms[name]), "split_ms": live_split_ms(*lives),
                   "p50_overhead_by_round": rounds.p50_overhead_by_round(arm),
                   "p50_overhead_paced_by_round": rounds.p50_overhead_paced_by_round(arm),
                   "overhead": overheads(rounds_live[name])}
            for arm, (name, lives) in enumerate(zip(arms, rounds.lives))
        },
        "live": steady_summary.as_dict(),
        "live_split_ms": live_split_ms(steady),
        "live_waiting": attrs.asdict(steady.waiting),
        "live_warm_runs": steady.warm_ahead.runs,
        "live_warm_runs_stopped": steady.warm_ahead.stopped,
        "live_windows": spans,
        "live_overhead": overheads(steady_summary),
        "live_sleeping": {**sleeping.summary().as_dict(), "split_ms": live_split_ms(sleeping)},
        "overloaded": {"fps": args.overload * bare_rate, **overloaded_summary.as_dict()},
        "preloaded": {**preloaded.summary().as_dict(), "split_ms": live_split_ms(preloaded)},
        "cpu_steal_share": steal,
        "sleap_nn_bare_ms": reference_bare_ms,
        "sleap_nn_live": reference_summary.as_dict(),
    }
    args.json.write_text(json.dumps(results, indent=2))

    def drops(summary) -> str:
        return f"{summary.dropped} of {summary.captured} dropped ({100 * summary.dropped / max(summary.captured, 1):.1f}%)"

    def against_targets(name: str, figures: dict) -> str:
        return (f"{name} over bare: {100 * figures['p50']:+.1f}% at p50 (target <= +10%), {figures['p99_ms']:+.2f} ms at p99 "
                f"(target <= +1 ms); over paced bare: {100 * figures['p50_paced']:+.1f}% at p50, {figures['p99_paced_ms']:+.2f} ms at p99")

    print(f"single instance ({results['runner']}) on {VIDEO.name}, batch 1, ms (capture -> pose ready for live rows)")
    print("| run | p50 | p90 | p99 | max | frames |")
    print("|---|---|---|---|---|---|")
    print(row(f"bare network (Runner.predict), back to back, {args.rounds} rounds", bare_ms, f"{args.bare_frames} timed"))
    print(row(f"bare network, calls paced at {fps:g} fps, {args.rounds} rounds", paced_ms, f"{args.bare_frames} timed"))
    for name, figures in results["rounds_live"].items():
        print(row(f"live at {fps:g} fps, {args.rounds} rounds of {args.round_seconds:g} s, {name}", rounds_live[name].pose_ms,
                  drops(rounds_live[name])))
        print(row("  of which handoff (capture -> taken, idle inference thread)", figures["split_ms"]["handoff"], ""))
        print(row("  of which inference (taken -> pose ready)", figures["split_ms"]["inference"], ""))
    print(row(f"live at {fps:g} fps, {args.duration:g} s without a break, warming ahead", steady_summary.pose_ms,
              f"{drops(steady_summary)}; {steady.warm_ahead.runs} warm runs, {steady.warm_ahead.stopped} stopped by a frame"))
    print(row("  of which handoff", results["live_split_ms"]["handoff"], ""))
    print(row("  of which inference", results["live_split_ms"]["inference"], ""))
    print(row(f"live, inference thread sleeping between frames, {args.side_runs:g} s", sleeping.summary().pose_ms, drops(sleeping.summary())))
    print(row(f"live overloaded at {args.overload * bare_rate:.0f} fps, {args.side_runs:g} s", overloaded_summary.pose_ms, drops(overloaded_summary)))
    print(row(f"live on preloaded frames at {fps:g} fps, {args.side_runs:g} s", preloaded.summary().pose_ms, drops(preloaded.summary())))
    print(row("  of which handoff", results["preloaded"]["split_ms"]["handoff"], ""))
    print(row("sleap-nn bare (layer.predict, 1 frame)", reference_bare_ms, ""))
    print(row(f"sleap-nn live at {fps:g} fps, {args.side_runs:g} s", reference_summary.pose_ms, drops(reference_summary)))
    for name, figures in results["rounds_live"].items():
        print(against_targets(f"live {name} (interleaved rounds)", figures["overhead"]))
        for baseline, key in (("bare", "p50_overhead_by_round"), ("paced bare", "p50_overhead_paced_by_round")):
            by_round = figures[key]
            print(f"  each round's live p50 over its own {baseline} p50: median {100 * float(np.median(by_round)):+.1f}%, "
                  f"quartiles {100 * np.percentile(by_round, 25):+.1f}% / {100 * np.percentile(by_round, 75):+.1f}%, "
                  f"range {100 * min(by_round):+.1f}% to {100 * max(by_round):+.1f}%")
    print(against_targets(f"live ({args.duration:g} s without a break, warming ahead)", results["live_overhead"]))
    print("live per window (start s: p50 / p99 ms, dropped): "
          + "; ".join(f"{s['start_s']:.0f}: {s['p50']:.1f} / {s['p99']:.1f}, {s['dropped']}" for s in spans))
    print(f"CPU time stolen by the host during the run: {100 * steal:.1f}%")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
