"""Frames in: videos and labels files (`video_inputs`), arrays (`frame_arrays`), cameras and streams (`live_sources`)."""
