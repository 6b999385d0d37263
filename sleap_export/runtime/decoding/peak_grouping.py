"""Host-side grouping of bottom-up peaks into instances, exactly as sleap-nn does it.

Reference: ``sleap_nn/inference/ops/paf.py`` (``match_candidates_sample``,
``assign_connections_to_instances``, ``make_predicted_instances``) and
``ops/identity.py`` (``classify_peaks_from_maps``). The graph already scored
every candidate pair, so per frame this is one small Hungarian matching per
edge, then assembly over the matched connections (a handful per frame) in
sleap-nn's edge order, with its merge rule and quirks kept.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from sleap_export.core.spec import PostprocessSpec


def paf_edge_order(edges) -> tuple[int, ...]:
    """The order sleap-nn assembles PAF edges in: breadth-first from the first root of a topological
    sort, the tree edges only (networkx's ``bfs_edges(G, next(topological_sort(G)))`` on
    ``DiGraph(edges)``, without networkx: nodes and successors in the order the edges name them)."""
    edges = [tuple(int(i) for i in e) for e in edges]
    if not edges:
        return ()
    nodes = list(dict.fromkeys(node for edge in edges for node in edge))
    successors: dict[int, list[int]] = {node: [] for node in nodes}
    for src, dst in edges:
        if dst not in successors[src]:
            successors[src].append(dst)
    has_parent = {dst for _, dst in edges}
    root = next((node for node in nodes if node not in has_parent), nodes[0])
    order, seen, queue = [], {root}, [root]
    while queue:
        node = queue.pop(0)
        for child in successors[node]:
            if child not in seen:
                seen.add(child)
                order.append(edges.index((node, child)))
                queue.append(child)
    return tuple(order)


def match_edges(line_scores: np.ndarray, n_peaks: np.ndarray, edges, post: PostprocessSpec):
    """Per edge in assembly order: matched ``(src, dst, score)`` arrays above the threshold."""
    matched = []
    for edge in post.edge_order:
        src_node, dst_node = edges[edge]
        n_src, n_dst = n_peaks[src_node], n_peaks[dst_node]
        if n_src == 0 or n_dst == 0:
            matched.append((edge, np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32)))
            continue
        cost = -line_scores[edge, :n_src, :n_dst].astype(np.float32)
        cost[np.isnan(cost)] = np.inf
        src, dst = linear_sum_assignment(cost)
        scores = -cost[src, dst]
        keep = scores >= post.min_line_scores
        matched.append((edge, src[keep], dst[keep], scores[keep]))
    return matched


def assemble(matched, edges, n_nodes: int, min_instance_peaks: float) -> dict:
    """sleap-nn's greedy assembly: ``{(node, peak): instance id}`` in insertion order."""
    assignments: dict = {}
    for edge, sources, destinations, _ in matched:
        src_node, dst_node = edges[edge]
        for src_peak, dst_peak in zip(sources.tolist(), destinations.tolist()):
            src_id, dst_id = (src_node, src_peak), (dst_node, dst_peak)
            src_instance = assignments.get(src_id)
            dst_instance = assignments.get(dst_id)
            if src_instance is None and dst_instance is None:
                new = max(assignments.values(), default=-1) + 1
                assignments[src_id] = new
                assignments[dst_id] = new
            elif src_instance is not None and dst_instance is None:
                assignments[dst_id] = src_instance
            elif src_instance is not None:
                # As sleap-nn: move dst first, then merge if the node sets are disjoint.
                assignments[dst_id] = src_instance
                src_nodes = {n for (n, _), i in assignments.items() if i == src_instance}
                dst_nodes = {n for (n, _), i in assignments.items() if i == dst_instance}
                if not src_nodes & dst_nodes:
                    for key, instance in assignments.items():
                        if instance == dst_instance:
                            assignments[key] = src_instance
            # A known destination with an unknown source is left alone, as in sleap-nn.
    if min_instance_peaks > 0 and assignments:
        minimum = int(min_instance_peaks * n_nodes) if isinstance(min_instance_peaks, float) else min_instance_peaks
        ids, counts = np.unique(list(assignments.values()), return_counts=True)
        enough = {i for i, c in zip(ids.tolist(), counts.tolist()) if c >= minimum}
        assignments = {k: i for k, i in assignments.items() if i in enough}
    return assignments


def group_peaks(points, values, valid, line_scores, edges, post: PostprocessSpec):
    """One frame: ``(keypoints (I, N, 2), peak values (I, N), scores (I,))``."""
    n_nodes = points.shape[0]
    n_peaks = valid.sum(axis=1)
    matched = match_edges(line_scores, n_peaks, edges, post)
    assignments = assemble(matched, edges, n_nodes, post.min_instance_peaks)
    ids, index = np.unique(np.array(list(assignments.values()), dtype=np.int64), return_inverse=True)
    slot = dict(zip(assignments, index.tolist()))
    keypoints = np.full((len(ids), n_nodes, 2), np.nan, np.float32)
    peak_values = np.full((len(ids), n_nodes), np.nan, np.float32)
    if slot:
        nodes, peaks = np.array(list(slot)).T
        rows = np.array(list(slot.values()))
        keypoints[rows, nodes] = points[nodes, peaks]
        peak_values[rows, nodes] = values[nodes, peaks]
    # Instance score: the sum of its connections' line scores, accumulated in
    # float32 in sleap-nn's order.
    scores = np.zeros(len(ids), np.float32)
    for edge, sources, destinations, line in matched:
        src_node = edges[edge][0]
        for src_peak, score in zip(sources.tolist(), line):
            if (src_node, src_peak) in slot:
                scores[slot[(src_node, src_peak)]] += score
    return keypoints, peak_values, scores


def cap_by_score(keypoints, peak_values, scores, max_instances: int):
    """Keep the top ``max_instances`` by score when there are more (sleap-nn's rule)."""
    if len(scores) <= max_instances:
        return keypoints, peak_values, scores
    keep = np.argsort(scores)[::-1][:max_instances]
    return keypoints[keep], peak_values[keep], scores[keep]


def classify_peaks(points, values, valid, class_probs):
    """Multi-class bottom-up: per node, a Hungarian assignment of peaks to classes.

    Returns ``(keypoints (C, N, 2), peak values (C, N), class probs (C, N))``
    with instance ``c`` being class ``c``. A matched peak is kept only if the
    class is its most probable one, as in sleap-nn.
    """
    n_nodes = points.shape[0]
    n_classes = class_probs.shape[-1]
    keypoints = np.full((n_classes, n_nodes, 2), np.nan, np.float32)
    peak_values = np.full((n_classes, n_nodes), np.nan, np.float32)
    probs_out = np.full((n_classes, n_nodes), np.nan, np.float32)
    for node in range(n_nodes):
        peaks = np.flatnonzero(valid[node])
        if not len(peaks):
            continue
        probs = class_probs[node, peaks]
        rows, classes = linear_sum_assignment(-probs)
        best = probs[rows, classes] == probs[rows].max(axis=1)
        rows, classes = rows[best], classes[best]
        keypoints[classes, node] = points[node, peaks[rows]]
        peak_values[classes, node] = values[node, peaks[rows]]
        probs_out[classes, node] = probs[rows, classes]
    return keypoints, peak_values, probs_out
