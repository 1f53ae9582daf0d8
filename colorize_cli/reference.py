"""Reference-guided film: a colourist's colour image of one frame carried through its shot.

    --reference WHEN=IMAGE    WHEN: HH:MM:SS[.ms] or seconds (the first frame at or after that time, the frame
                              `ffmpeg -ss WHEN -frames:v 1` extracts), or #N (frame N, counted from 0)

The reference's Lab chroma (at render size) is the frame's chroma at its frame, and is carried along optical flow
forward and backward through the shot: up to the scene cut on either side, REACH frames, or the next reference. What
travels is the chroma and a confidence (1 at the reference); each step multiplies the confidence by the flow's per-pixel
trust, the stabiliser's own measure (forward-backward agreement, luminance match, inside the frame). A frame's chroma
becomes stab + c * (ref - stab), stab being the automatic, stabilised chroma: where the flow loses track (disocclusion,
fast motion) the model's colour fades in without a seam. Between two references of one shot both carries are blended by
their confidences. The carry reads luminance only, never the model, so it can be replayed from its reference for any
frame (a resumed segment, a folder rerun) and gives exactly the colours of an unbroken run.

Memory stays bounded on long shots. The forward carry is online: one frame of state. The backward carry needs the frames
before the reference in reverse order, so when the run reaches the first frame a reference can reach, the guide reads
that window a second time through its loader (render-size luminance kept as uint8, at most REACH frames), carries the
reference back through it and keeps, per frame, only the carried chroma (int8) and confidence (uint8) at render size:
3 bytes a pixel, about 35 MB per 100 frames of a 16:9 film at render size 256, freed as the frames go out. At most one
such window is held at a time, since a backward carry stops at the reference before it.

The reference also grades the model. Where the carry cannot reach (road and houses a panning camera reveals later in
the shot) the model's colour is all there is, and its errors in one shot are mostly systematic: a cast on asphalt, a
wrong hue of a wall. So at each reference the model's own chroma of that frame is set against the reference's, and an
affine map (a, b, L, 1) -> the correction of (a, b) is fitted by ridge regression (it shrinks towards no correction);
every frame of that shot, as far as REACH and the cuts, gets its model chroma graded so before the stabiliser and the
carry see it. With the true first frame as reference this took car-roundabout from +2.2 to +4.3 dB over the
automatic mode (benchmarks/RESULTS.md). The grade needs the model once per reference (`chroma`, render-size luminance
-> chroma), on luminance the loader reads, so a replay gives the same grade.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from colorize_cli import color
from colorize_cli.engine import render_shape
from colorize_cli.imaging import ImageError, read_image
from colorize_cli.video.options import Flow
from colorize_cli.video.stabilize import ChromaStabilizer, features

REACH = 300  # frames a reference is carried each way at most (12.5 s at 24 fps)
ASPECT_TOLERANCE = 0.02  # relative difference of width/height allowed between a reference and its frame
MIN_CORRELATION = 0.5  # of reference and frame luminance; below: a different shot or the wrong time
FADED = 1e-3  # a carry whose confidence is below this everywhere is dropped
# The flow's per-pixel confidence (video.ChromaStabilizer._warp) -> a carry step's trust: 0 below, 1 above, linear.
# Lenient on purpose: the stabiliser's confidence is a soft blend weight (about 0.8 a step on moving DAVIS footage),
# and multiplied along a carry it faded a reference out within 20 frames; the carried colour itself stayed within
# 2-5 ab units of the truth. (0, 1), i.e. the raw confidence, gained 2.3 dB over the automatic mode on the DAVIS
# clips, (0.1, 0.5) 3.2 dB, this 3.6 dB (benchmarks/RESULTS.md).
TRUST = (0.02, 0.15)
GRADE_RIDGE = 1.0  # per pixel, on the a, b and 100 L terms (their variances are 10^2-10^3): a light pull to none

Chroma = Callable[[np.ndarray], np.ndarray]  # render-size luminance (h, w) -> the model's chroma (2, h, w)

Loader = Callable[[int, int], Iterator[np.ndarray]]  # (first, count) -> render-size luminance of those frames


@dataclass(frozen=True)
class ReferenceSpec:
    """One --reference as typed: a frame number or a time, and the colour image of that frame."""

    text: str
    path: Path
    frame: int | None = None
    seconds: float | None = None

    def frame_at(self, fps: Fraction | float | None) -> int:
        """The frame index: #N as given, a time -> the first frame at or after it (as --start picks)."""
        if self.frame is not None:
            return self.frame
        if not fps or self.seconds is None:
            raise ValueError(f"--reference {self.text}: a frame folder has no clock; give the frame as #N")
        return int(np.ceil(self.seconds * float(fps) - 1e-6)) if self.seconds > 0 else 0


def parse_spec(text: str) -> ReferenceSpec:
    """'00:01:12.5=shot12.png', '72.5=shot12.png' or '#300=frame.png' -> ReferenceSpec; ValueError otherwise."""
    from colorize_cli.video import parse_time

    when, sep, path = str(text).partition("=")
    when, path = when.strip(), path.strip()
    usage = f"bad --reference {text!r}: use TIME=IMAGE (HH:MM:SS[.ms] or seconds) or #N=IMAGE (frame N from 0)"
    if not sep or not when or not path:
        raise ValueError(usage)
    if when.startswith("#"):
        if not re.fullmatch(r"#\d+", when):
            raise ValueError(usage)
        return ReferenceSpec(text, Path(path), frame=int(when[1:]))
    try:
        return ReferenceSpec(text, Path(path), seconds=parse_time(when))
    except ValueError:
        raise ValueError(usage) from None


def load_rgb(spec: ReferenceSpec) -> np.ndarray:
    """The reference image, float32 RGB 0..1; ValueError naming the file if it is missing or unreadable."""
    try:
        return read_image(spec.path).rgb
    except ImageError as e:
        raise ValueError(f"--reference {spec.text}: {e}") from None


def mismatch(spec: ReferenceSpec, rgb: np.ndarray, frame_lum: np.ndarray, frame: int) -> str | None:
    """Why the reference cannot be a colouring of this frame (other shape, other picture), or None if it can."""
    (h, w), (fh, fw) = rgb.shape[:2], frame_lum.shape
    if abs((w / h) / (fw / fh) - 1) > ASPECT_TOLERANCE:
        return (
            f"{spec.path}: reference is {w}x{h} ({w / h:.2f}:1) but the frames are {fw}x{fh} ({fw / fh:.2f}:1); "
            f"give a colour image of the whole frame"
        )
    small = (max(8, round(64 * fw / min(fh, fw))), max(8, round(64 * fh / min(fh, fw))))
    a = cv2.resize(color.srgb_luminance(rgb), small, interpolation=cv2.INTER_AREA)
    b = cv2.resize(frame_lum.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    a, b = a - a.mean(), b - b.mean()
    corr = float((a * b).sum() / max(1e-9, np.sqrt((a * a).sum() * (b * b).sum())))
    if corr < MIN_CORRELATION:
        return (
            f"{spec.path}: does not look like frame {frame} (luminance correlation {corr:.2f}): the wrong time, "
            f"or a frame of another shot?"
        )
    return None


def reference_chroma(rgb: np.ndarray, frame_hw: tuple[int, int], render_size: int) -> np.ndarray:
    """Lab a, b (2, h, w) float32 of the reference at the render size of a frame of frame_hw."""
    rh, rw = render_shape(*frame_hw, render_size)
    small = cv2.resize(np.ascontiguousarray(rgb, np.float32), (rw, rh), interpolation=cv2.INTER_AREA)
    lab = color.rgb_to_lab(torch.from_numpy(np.clip(small, 0, 1)).permute(2, 0, 1)[None])
    return lab[0, 1:].numpy().astype(np.float32)


@dataclass
class Reference:
    frame: int
    ab: np.ndarray  # (2, h, w) Lab chroma at render size
    name: str = ""


@dataclass(frozen=True)
class Grade:
    """The colour correction one reference shows for the model in its shot: ab + [a, b, 100 L, 1] @ m."""

    m: np.ndarray  # (4, 2) float64

    @staticmethod
    def fit(model_ab: np.ndarray, lum: np.ndarray, ref_ab: np.ndarray, ridge: float = GRADE_RIDGE) -> Grade:
        x = _design(model_ab, lum)
        y = (ref_ab - model_ab).reshape(2, -1).T.astype(np.float64)
        reg = ridge * len(x) * np.diag([1.0, 1.0, 1.0, 0.0])  # the offset is free: a cast is the commonest error
        return Grade(np.linalg.solve(x.T @ x + reg, x.T @ y))

    def __call__(self, ab: np.ndarray, lum: np.ndarray) -> np.ndarray:
        return (ab + (_design(ab, lum) @ self.m).T.reshape(ab.shape)).astype(np.float32)


def _design(ab: np.ndarray, lum: np.ndarray) -> np.ndarray:
    return np.stack([ab[0].ravel(), ab[1].ravel(), 100 * lum.ravel(), np.ones(lum.size)], 1).astype(np.float64)


class _Carrier(ChromaStabilizer):
    """Moves a (3, h, w) stack [a, b, confidence] from frame to frame along the flow, frame by frame in the order
    given (forward or backward in time); the stabiliser's flow, trust and cut test, without a model. Once the
    confidence has faded it still follows the shot (`alive` until a cut), which the grade needs."""

    alive = False

    def __init__(self) -> None:
        # Farneback, not the stabiliser's DIS: a carry compounds its flow over up to REACH frames, and DIS lost the
        # synthetic pan's colour faster (tests/test_reference.py); the figures in RESULTS.md were made with Farneback.
        super().__init__(flow=Flow.FARNEBACK)

    def start(self, lum: np.ndarray, ab: np.ndarray) -> np.ndarray:
        self.reset()
        self.alive = True
        blurred, self.prev_hist = features(lum)
        self.prev_lum = blurred
        self.prev_flow, _ = self._flow_image(blurred)
        self.prev_ab = np.concatenate([ab, np.ones((1, *ab.shape[1:]), np.float32)])
        return self.prev_ab

    def carry(self, lum: np.ndarray) -> np.ndarray | None:
        """The stack moved onto this frame; None at a scene cut (alive turns False) or once the confidence has faded
        out (the shot is still followed)."""
        if not self.alive or self.prev_lum is None or self.prev_hist is None or self.prev_lum.shape != lum.shape:
            self.alive = False
            return None
        blurred, hist = features(lum)
        if self._is_cut(self.prev_lum, self.prev_hist, blurred, hist):
            self.reset()
            self.alive = False
            return None
        if self.prev_ab is None:  # faded: only the cut test runs
            self.prev_lum, self.prev_hist = blurred, hist
            return None
        flow_img, scale = self._flow_image(blurred)
        warped, conf = self._warp(blurred, flow_img, scale)
        lo, hi = TRUST
        warped[2] *= np.clip((conf - lo) / (hi - lo), 0, 1)
        out = warped if warped[2].max() > FADED else None
        self.prev_ab, self.prev_lum, self.prev_flow, self.prev_hist = out, blurred, flow_img, hist
        return out


@dataclass
class _Forward:
    index: int  # which reference
    frame: int  # the frame `value` belongs to
    carrier: _Carrier
    value: np.ndarray | None


@dataclass
class _Now:
    """What the references give one frame: the carried stacks, and the references whose shot holds it."""

    frame: int
    carried: list[np.ndarray]
    shots: list[int]


class ReferenceGuide:
    """Frame by frame, in order: correct(frame, lum, ab) grades the model's chroma of a frame as its shot's reference
    shows (before the stabiliser), apply(frame, lum, ab) gives the guided chroma of that frame (None: no reference
    reaches it, keep ab). Frames may skip ahead or restart (segments, folder reruns): the carry is then replayed
    through `load`. `first` is the first frame of the span: backward carries stop there. Without `chroma` (the model
    at render size) there is no grade."""

    def __init__(
        self, refs: list[Reference], load: Loader, first: int = 0, reach: int = REACH, chroma: Chroma | None = None
    ):
        self.refs = sorted(refs, key=lambda r: r.frame)
        self.frames = [r.frame for r in self.refs]
        self.load, self.first, self.reach, self.chroma = load, first, reach, chroma
        self._fwd: _Forward | None = None
        self._back_index: int | None = None
        self._back: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}  # None: in the shot, nothing carried
        self._grades: dict[int, Grade | None] = {}
        self._now: _Now | None = None

    def correct(self, frame: int, lum: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """The model's chroma of this frame graded by the references whose shot holds it (ab itself if none)."""
        now = self._at(frame, lum)
        lum = np.asarray(lum, np.float32)
        graded = [
            (k, g(ab, lum))
            for k in now.shots
            if (g := self._grade(k)) is not None and self.refs[k].ab.shape[1:] == ab.shape[1:]
        ]
        if len(graded) == 2:  # between two references of one shot: each weighs by its nearness
            (k0, g0), (k1, g1) = graded
            w = (frame - self.frames[k0]) / max(1, self.frames[k1] - self.frames[k0])
            return ((1 - w) * g0 + w * g1).astype(np.float32)
        return graded[0][1] if graded else ab

    def apply(self, frame: int, lum: np.ndarray, ab: np.ndarray) -> np.ndarray | None:
        carried = [c for c in self._at(frame, lum).carried if c.shape[1:] == ab.shape[1:]]
        if not carried:
            return None
        if len(carried) == 1:
            ref, conf = carried[0][:2], carried[0][2]
        else:
            (f, b) = carried
            conf = 1 - (1 - f[2]) * (1 - b[2])
            ref = (f[:2] * f[2] + b[:2] * b[2]) / np.maximum(f[2] + b[2], 1e-6)
        return (ab + conf[None] * (ref - ab)).astype(np.float32)

    def _at(self, frame: int, lum: np.ndarray) -> _Now:
        """The carries moved onto this frame, once per frame (correct and apply both ask)."""
        if self._now is None or self._now.frame != frame:
            lum = np.asarray(lum, np.float32)
            fwd, (back, back_shot) = self._forward(frame, lum), self._backward(frame)
            k = bisect.bisect_right(self.frames, frame)
            shots = ([k - 1] if self._fwd is not None and self._fwd.carrier.alive else []) + ([k] if back_shot else [])
            self._now = _Now(frame, [c for c in (fwd, back) if c is not None], shots)
        return self._now

    def _grade(self, k: int) -> Grade | None:
        """Reference k's grade of the model, fitted once on the model's chroma of its frame (read through `load`)."""
        if k not in self._grades:
            self._grades[k] = None
            ref, chroma = self.refs[k], self.chroma
            lums = list(self.load(ref.frame, 1)) if chroma is not None else []
            if chroma is not None and lums and lums[0].shape == ref.ab.shape[1:]:
                lum = np.asarray(lums[0], np.float32)
                self._grades[k] = Grade.fit(np.asarray(chroma(lum), np.float32), lum, ref.ab)
        return self._grades[k]

    # ---------------------------------------------------------------------------------------------- forward
    def _forward(self, frame: int, lum: np.ndarray) -> np.ndarray | None:
        k = bisect.bisect_right(self.frames, frame) - 1
        if k < 0 or frame - self.frames[k] > self.reach:
            self._fwd = None
            return None
        st = self._fwd
        if frame == self.frames[k]:
            carrier = _Carrier()
            st = _Forward(k, frame, carrier, carrier.start(lum, self.refs[k].ab))
        elif st is None or st.index != k or st.frame != frame - 1:
            st = self._replay(k, frame)
        else:
            st.value = st.carrier.carry(lum)
            st.frame = frame
        self._fwd = st
        return st.value

    def _replay(self, k: int, frame: int) -> _Forward:
        """The forward carry of reference k at `frame`, carried afresh from the reference (this frame is read too)."""
        ref, carrier = self.refs[k], _Carrier()
        value = None
        for i, lum in enumerate(self.load(ref.frame, frame - ref.frame + 1)):
            value = carrier.start(lum, ref.ab) if i == 0 else carrier.carry(lum)
            if not carrier.alive or i == frame - ref.frame:
                return _Forward(k, ref.frame + i if carrier.alive else frame, carrier, value)
        carrier.alive = False  # the loader stopped short: a frame could not be read
        return _Forward(k, frame, carrier, None)

    # --------------------------------------------------------------------------------------------- backward
    def _backward(self, frame: int) -> tuple[np.ndarray | None, bool]:
        """The backward carry at this frame, and whether the frame is in the shot of the reference after it."""
        k = bisect.bisect_right(self.frames, frame)
        if k >= len(self.refs):
            return None, False
        if self._back_index != k:
            lo = max(self.first, self.frames[k] - self.reach, self.frames[k - 1] + 1 if k else 0)
            if frame < lo:
                return None, False
            self._build_back(k, lo, frame)
        if frame not in self._back:
            return None, False
        item = self._back.pop(frame)
        if item is None:
            return None, True
        ab, conf = item
        return np.concatenate([ab.astype(np.float32), conf.astype(np.float32)[None] / 255]), True

    def _build_back(self, k: int, lo: int, now: int) -> None:
        """Read frames lo..reference k once more and carry the reference back through them; keep frames >= now."""
        ref = self.refs[k]
        self._back_index, self._back = k, {}
        lums = [np.rint(lum * 255).astype(np.uint8) for lum in self.load(lo, ref.frame - lo + 1)]
        if len(lums) != ref.frame - lo + 1:
            return  # a frame could not be read: no backward carry
        carrier = _Carrier()
        carrier.start(lums[-1].astype(np.float32) / 255, ref.ab)
        for j in range(ref.frame - 1, max(lo, now) - 1, -1):
            value = carrier.carry(lums[j - lo].astype(np.float32) / 255)
            if not carrier.alive:
                break
            self._back[j] = (
                None
                if value is None
                else (
                    np.clip(np.rint(value[:2]), -128, 127).astype(np.int8),
                    np.rint(np.clip(value[2], 0, 1) * 255).astype(np.uint8),
                )
            )
