"""Temporal stabilisation of predicted chroma along optical flow: pure numpy / OpenCV maths on render-size arrays,
no files, no model.

    luminance (render size) -> DIS optical flow back to the previous frame (and forward, for a consistency check)
    -> warp the previous stabilised chroma onto this frame -> blend with this frame's prediction where the warp is
    trustworthy -> restart at scene cuts
"""

from __future__ import annotations

import collections
import functools
import threading

import cv2
import numpy as np
import torch

from colorize_cli.video.options import DEFAULT_STRENGTH, Flow


class ChromaStabilizer:
    """Temporal smoothing of predicted chroma along optical flow; one frame at a time, in order.

    step(lum, ab): lum (h,w) luminance 0..1 at render size, ab (2,h,w) the model's Lab chroma for that frame.
    Dense flow (DIS by default) from the current frame back to the previous one warps the previous *stabilised*
    chroma onto this frame; the result is  ab_t = (1 - a) * pred_t + a * warped_prev,  a = strength * confidence,
    where confidence (per pixel, 0..1) needs both a consistent forward-backward flow and a warped previous luminance
    that matches this one (after removing each frame's mean, so old-film exposure flicker does not count as a
    mismatch); pixels warped from outside the frame get 0. A scene cut (the mean-free luminance histograms of
    consecutive frames differ by more than cut_threshold in total variation, or the mean absolute luminance change
    exceeds cut_mad) restarts from the prediction. Non-finite predictions become gray and restart too.

    Key frames (key_every K > 1, for speed): needs_model() picks every K-th frame and the first after a cut; only
    those go through the network, and step(lum, None) carries the previous chroma along the flow to the frames between.
    """

    def __init__(
        self,
        strength: float = DEFAULT_STRENGTH,
        *,
        key_every: int = 1,
        cut_threshold: float = 0.4,
        cut_mad: float = 0.25,
        photo_sigma: float = 0.05,
        fb_sigma: float = 1.0,
        flow_size: int = 160,
        flow: Flow = Flow.DIS,
    ):
        self.flow = flow
        self.strength = float(np.clip(strength, 0.0, 1.0))
        self.key_every = max(1, int(key_every))
        self._plan_prev: tuple[np.ndarray, np.ndarray] | None = None
        self._since_key = 0
        self.cut_threshold, self.cut_mad = cut_threshold, cut_mad
        self.photo_sigma, self.fb_sigma, self.flow_size = photo_sigma, fb_sigma, flow_size
        self.frames = self.cuts = self.nonfinite = 0
        self.confidence_sum = 0.0
        self._grid_cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None
        self._planned: collections.deque = collections.deque()  # (lum, blurred, hist) from needs_model, for step
        self.reset()

    def reset(self) -> None:
        self.prev_ab: np.ndarray | None = None
        self.prev_lum: np.ndarray | None = None  # blurred, full render size
        self.prev_flow: np.ndarray | None = None  # uint8 at flow size
        self.prev_hist: np.ndarray | None = None

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / max(1, self.frames)

    def needs_model(self, lum: np.ndarray, force: bool = False) -> bool:
        """Key-frame planning, called for each frame in order before any step: True for every key_every-th frame, the
        first, and the first after a scene cut (decided on luminance alone, as step decides, so a carried frame is
        never a cut); the frames between are carried along optical flow from the last one (step with ab None)."""
        if self.key_every <= 1:
            return True
        blurred, hist = features(np32(lum))
        self._planned.append((lum, blurred, hist))
        prev = self._plan_prev
        key = (
            force
            or prev is None
            or prev[0].shape != blurred.shape
            or self._since_key >= self.key_every
            or self._is_cut(prev[0], prev[1], blurred, hist)
        )
        self._since_key = 1 if key else self._since_key + 1
        self._plan_prev = (blurred, hist)
        return key

    def step(self, lum: np.ndarray | torch.Tensor, ab: np.ndarray | torch.Tensor | None) -> np.ndarray:
        """The stabilised chroma for this frame: ab blended with the warped previous chroma, or with ab None (a frame
        between key frames) the previous chroma carried along the flow alone."""
        planned = self._planned.popleft() if self._planned else None
        if planned is not None and planned[0] is not lum:  # not the frame planned next: plan afresh
            self._planned.clear()
            planned = None
        lum = np32(lum)
        ab = None if ab is None else np32(ab)
        self.frames += 1
        if ab is not None and not np.isfinite(ab).all():
            self.nonfinite += 1
            ab = np.zeros_like(ab)
            self.reset()
        if self.strength <= 0 and self.key_every <= 1 and ab is not None:
            return ab
        blurred, hist = planned[1:] if planned is not None else features(lum)
        flow_img, scale = self._flow_image(blurred)
        out = ab if ab is not None else np.zeros((2, *lum.shape), np.float32)
        if (
            self.prev_ab is not None
            and self.prev_lum is not None
            and self.prev_hist is not None
            and (self.prev_ab.shape == out.shape)
        ):
            if self._is_cut(self.prev_lum, self.prev_hist, blurred, hist):
                self.cuts += 1
            else:
                warped, conf = self._warp(blurred, flow_img, scale)
                self.confidence_sum += float(conf.mean())
                a = (self.strength * conf)[None]
                out = warped if ab is None else ab + a * (warped - ab)
        self.prev_ab, self.prev_lum, self.prev_flow, self.prev_hist = out, blurred, flow_img, hist
        return out

    def _is_cut(self, prev_blurred: np.ndarray, prev_hist: np.ndarray, blurred: np.ndarray, hist: np.ndarray) -> bool:
        tv = 0.5 * float(np.abs(hist - prev_hist).sum())
        mad = float(np.abs(blurred - prev_blurred).mean())
        return tv > self.cut_threshold or mad > self.cut_mad

    def _flow_image(self, blurred: np.ndarray) -> tuple[np.ndarray, float]:
        """uint8 luminance for the flow, shrunk so the short side is at most flow_size (cost ~ pixels)."""
        h, w = blurred.shape
        s = min(1.0, self.flow_size / min(h, w))
        img = (
            blurred
            if s == 1.0
            else cv2.resize(blurred, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        )
        return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), s

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        if self._grid_cache is None or self._grid_cache[0] != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid_cache = ((h, w), gx, gy)
        return self._grid_cache[1], self._grid_cache[2]

    def _warp(self, blurred: np.ndarray, flow_img: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The previous stabilised chroma moved onto this frame, and a per-pixel confidence 0..1."""
        assert self.prev_flow is not None and self.prev_ab is not None and self.prev_lum is not None  # step checks
        h, w = blurred.shape
        # back: this frame's pixel -> where it was in the previous
        back, fwd = _flow_pair(flow_img, self.prev_flow, self.flow)
        if scale != 1.0:
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) / scale
            fwd = cv2.resize(fwd, (w, h), interpolation=cv2.INTER_LINEAR) / scale
        gx, gy = self._grid(h, w)
        mx, my = gx + back[..., 0], gy + back[..., 1]
        remap = functools.partial(
            cv2.remap, map1=mx, map2=my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        warped = np.stack([remap(c) for c in self.prev_ab])
        warped_lum = remap(self.prev_lum)
        fwd_there = remap(fwd)
        fb_err = np.hypot(back[..., 0] + fwd_there[..., 0], back[..., 1] + fwd_there[..., 1])
        fb_sigma = self.fb_sigma * max(1.0, min(h, w) / 256)
        photo = (warped_lum - warped_lum.mean()) - (blurred - blurred.mean())
        conf = np.exp(-((photo / self.photo_sigma) ** 2) - (fb_err / fb_sigma) ** 2)
        conf *= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        conf = cv2.blur(cv2.erode(conf, np.ones((3, 3), np.uint8)), (3, 3))  # conservative at occlusion edges
        return warped, conf.astype(np.float32)


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(
        a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1, flags=0
    )


_local = threading.local()  # per thread: a DIS instance keeps state between calls and is not thread-safe


def _dis(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if getattr(_local, "dis", None) is None:
        _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    return _local.dis.calc(a, b, None)


_METHODS = {Flow.DIS: _dis, Flow.FARNEBACK: _farneback}
_last_pair: list = [None, None, None, None]  # (method, cur, prev, flows) of the last _flow_pair call


def _flow_pair(cur: np.ndarray, prev: np.ndarray, method: Flow = Flow.DIS) -> tuple[np.ndarray, np.ndarray]:
    """Flow cur -> prev and prev -> cur. The last pair is remembered per method: a caller following the same two
    frames with the same method right after the stabiliser reuses its flows. The reference carry (reference.py) runs
    Farneback while the stabiliser runs DIS, so with --reference each frame pays one Farneback pair more."""
    m, c, p, flows = _last_pair
    if (
        m is method
        and c.shape == cur.shape
        and p.shape == prev.shape
        and np.array_equal(c, cur)
        and np.array_equal(p, prev)
    ):
        return flows
    flow = _METHODS[method]
    flows = (flow(cur, prev), flow(prev, cur))
    _last_pair[:] = [method, cur.copy(), prev.copy(), flows]
    return flows


def features(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What both key-frame planning and the blend read from a frame: its blurred luminance and centred histogram."""
    return cv2.GaussianBlur(lum, (0, 0), 1.0), _centred_hist(lum)


def _centred_hist(lum: np.ndarray, bins: int = 32) -> np.ndarray:
    """Histogram of the luminance minus its mean (a global exposure change is not a cut)."""
    idx = np.clip(((lum - lum.mean() + 0.5) * bins).astype(np.int64), 0, bins - 1)
    return np.bincount(idx.ravel(), minlength=bins) / idx.size


def np32(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)
