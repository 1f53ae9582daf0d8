"""The photo stream: shape buckets, strip-wise merge at full resolution, quantised output."""

from __future__ import annotations

import ctypes
import platform
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from colorize_cli import color, engine, pipeline
from tests.conftest import VAL, SpyColorizer, pick


def test_batches_hold_one_render_shape_and_every_image_comes_once(tmp_path: Path):
    """Portrait, landscape and square photos interleaved: each model call sees one shape (no padding), and every
    image comes out exactly once, at its own size."""
    src = pick(VAL, 1, "*.png")[0]
    img = cv2.imread(str(src))
    shapes = [(120, 180), (180, 120), (150, 150)]
    paths = []
    for k in range(17):
        h, w = shapes[k % 3]
        paths.append(tmp_path / f"{k:02d}.png")
        cv2.imwrite(str(paths[-1]), cv2.resize(img, (w, h)))
    spy = SpyColorizer()
    opts = pipeline.Options(render_size=64, batch_size=4, workers=0)
    out = list(pipeline.stream(paths, spy, opts))
    assert sorted(i for i, _ in out) == list(range(17))
    assert all(len(c) == 1 for c in spy.calls) and len(spy.calls) <= 17 // 4 + 3
    for i, item in out:
        assert item.rgb_out.shape[:2] == shapes[i % 3]


def test_merge_in_strips_matches_the_whole_image_merge(monkeypatch):
    """The pipeline's strip-wise merge (small strips forced) gives the whole-image merge, as float and quantised."""
    g = torch.Generator().manual_seed(3)
    lum = 0.1 + 0.8 * torch.rand(203, 157, generator=g)
    ab = torch.rand(2, 51, 40, generator=g) * 60 - 30
    whole = color.merge_luminance(lum[None, None], ab[None])[0].permute(1, 2, 0).numpy()
    monkeypatch.setattr(engine, "MERGE_PIXELS", 157 * 7 + 3)  # 7 rows a strip, a ragged last one
    colorizer = pipeline.Engine(torch.nn.Identity(), torch.device("cpu"))
    rgb, finite = colorizer.merge(lum, ab)
    assert finite and rgb.dtype == np.float32 and np.abs(rgb - whole).max() < 1e-4
    q8, _ = colorizer.merge(lum, ab, np.uint8)
    q16, _ = colorizer.merge(lum, ab, np.uint16)
    assert q8.dtype == np.uint8 and np.abs(q8.astype(int) - np.rint(whole * 255)).max() <= 1
    assert q16.dtype == np.uint16 and np.abs(q16.astype(int) - np.rint(whole * 65535)).max() <= 8


def test_bf16_network_stays_close_to_fp32(one_thread):
    """Autocast (bf16 here, fp16 on CUDA) changes the shipped model's colours by little: the readout stays fp32."""
    from colorize_cli.zoo import load_model

    img = cv2.imread(str(pick(VAL, 1, "cbsd68_*.png")[0]), cv2.IMREAD_GRAYSCALE)
    small = torch.from_numpy(cv2.resize(img, (96, 64)).astype(np.float32) / 255)
    model = load_model("unet-lab")
    cpu = torch.device("cpu")
    fp32 = pipeline.Engine(model, cpu, "fp32").chroma([small])[0]
    bf16 = pipeline.Engine(model, cpu, "bf16").chroma([small])[0]
    assert fp32.dtype == bf16.dtype == torch.float32
    assert 0 < (fp32 - bf16).abs().mean().item() < 0.1 * fp32.abs().mean().item()
    with pytest.raises(ValueError, match="precision"):
        pipeline.Engine(model, cpu, "int4")


def test_compiled_network_gives_the_eager_colours(one_thread):
    """--compile: torch.compile'd network (CPU inductor here, one render shape) matches the eager one."""
    from colorize_cli.zoo import load_model

    small = torch.rand(48, 64, generator=torch.Generator().manual_seed(5))
    model = load_model("unet-lab")
    cpu = torch.device("cpu")
    eager = pipeline.Engine(model, cpu).chroma([small])[0]
    compiled = pipeline.Engine(model, cpu, compile=True).chroma([small])[0]
    assert (eager - compiled).abs().max().item() < 0.05


def _ramp(lo: float, hi: float) -> np.ndarray:
    return np.tile(np.linspace(lo, hi, 200, dtype=np.float32), (50, 1))


def test_a_full_range_image_reaches_the_network_unchanged():
    full = _ramp(0.0, 1.0)
    assert engine.stretch_tones(full) is full
    assert np.array_equal(pipeline.render_small(full, 50), pipeline.render_small(full, 50, tones=False))


def test_a_faded_print_is_stretched_to_the_range_the_network_learnt():
    """Lifted blacks and dulled whites (0.2..0.7) reach the network spanning TONE_BLACK..TONE_WHITE at the same
    percentiles, order kept; a very flat frame gains at most TONE_GAIN; nearby ranges map nearby (no jump)."""
    out = engine.stretch_tones(_ramp(0.2, 0.7))
    lo, hi = np.percentile(out, [0.5, 99.5])
    assert abs(lo - engine.TONE_BLACK) < 1e-4 and abs(hi - engine.TONE_WHITE) < 1e-4
    assert (np.diff(out[0]) > 0).all() and out.dtype == np.float32
    flat = engine.stretch_tones(_ramp(0.40, 0.45))
    assert np.ptp(flat) == pytest.approx(engine.TONE_GAIN * 0.05, rel=1e-3)
    a, b = engine.stretch_tones(_ramp(0.079, 0.9)), engine.stretch_tones(_ramp(0.081, 0.9))
    assert np.abs(a - b).max() < 0.01


def test_precision_and_device_words_parse_to_their_enums():
    """--precision and --device stay plain words on the command line and in Options; inside they are Enums."""
    from colorize_cli.zoo import DeviceKind, pick_device

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pipeline.check_precision("bf16") is pipeline.Precision.BF16 == "bf16"
    assert [p.autocast(cuda) for p in pipeline.Precision] == [torch.float16, None, torch.bfloat16, torch.float16]
    assert pipeline.Precision.AUTO.autocast(cpu) is None and pipeline.Engine(torch.nn.Identity(), cpu).dtype is None
    with pytest.raises(ValueError, match="unknown precision 'FP8'; valid: auto, fp32, bf16, fp16"):
        pipeline.check_precision("FP8")
    assert pick_device(" CPU ") == cpu and pick_device(DeviceKind.CPU) == cpu and str(DeviceKind.CUDA) == "cuda"
    with pytest.raises(ValueError, match="unknown --device 'tpu'"):
        pick_device("tpu")


def _torch_merge(lum: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """The merge as it was before OpenCV: the torch Lab -> sRGB formula on the whole image."""
    return color.merge_luminance(lum[None, None], ab[None])[0].permute(1, 2, 0).numpy()


def test_cpu_merge_is_within_one_level_of_the_torch_formula():
    """OpenCV's float32 Lab -> sRGB (the CPU merge) against the torch formula it replaced, on the full range of L
    (black and white included) and of chroma (much of it out of gamut, so clipping is exercised): at most one level
    of 8-bit output anywhere, and few pixels differ at all."""
    g = torch.Generator().manual_seed(5)
    lum = torch.rand(311, 457, generator=g)
    lum[:4], lum[4:8] = 0.0, 1.0
    ab = torch.randn(2, 78, 114, generator=g) * 45
    old = _torch_merge(lum, ab)
    engine = pipeline.Engine(torch.nn.Identity(), torch.device("cpu"))
    q8, finite = engine.merge(lum, ab, np.uint8)
    diff = np.abs(q8.astype(int) - np.rint(old * 255).astype(int))
    assert finite and diff.max() <= 1 and (diff > 0).mean() < 0.01
    q16, _ = engine.merge(lum, ab, np.uint16)
    assert np.abs(q16.astype(int) - np.rint(old * 65535).astype(int)).max() <= 257
    rgb, _ = engine.merge(lum, ab)
    assert rgb.dtype == np.float32 and rgb.min() >= 0 and rgb.max() <= 1 and np.abs(rgb - old).max() < 1 / 255


def test_cpu_merge_keeps_the_input_lightness():
    """In gamut, the CPU merge's output has the input's own L, as the torch formula's (tests/test_color.py)."""
    g = torch.Generator().manual_seed(6)
    lum = 0.2 + 0.6 * torch.rand(120, 160, generator=g)
    ab = torch.rand(2, 30, 40, generator=g) * 30 - 15
    rgb, _ = pipeline.Engine(torch.nn.Identity(), torch.device("cpu")).merge(lum, ab)
    full = torch.cat([lum[None, None] * 100, color.upsample(ab[None], (120, 160))], 1)
    raw = color.lab_to_rgb(full, clip=False)
    in_gamut = ((raw >= 0) & (raw <= 1)).all(1)[0]
    assert in_gamut.float().mean() > 0.5
    err = (color.rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0, 0] - lum * 100).abs()
    assert err[in_gamut].max() < 0.05


def test_gray_sources_get_the_luminance_of_their_float_rgb():
    """The lookup-table luminance of 8- and 16-bit gray samples is srgb_luminance of the same pixels as float RGB,
    and prepare() gives the same render copy either way."""
    from colorize_cli.imaging import from_array

    g8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    g16 = np.random.default_rng(0).integers(0, 65536, (40, 50), dtype=np.uint16)
    for gray, top in ((g8, 255), (g16, 65535)):
        rgb = np.repeat((gray.astype(np.float32) * np.float32(1 / top))[..., None], 3, 2)
        np.testing.assert_allclose(color.gray_luminance(gray), color.srgb_luminance(rgb), atol=1e-6)
        dec = from_array(gray)
        assert dec.gray is not None and dec.gray.dtype == gray.dtype
        opts = pipeline.Options(render_size=8)
        lum, small = engine.prepare(dec, opts)
        ref = color.srgb_luminance(dec.rgb)
        np.testing.assert_allclose(lum, ref, atol=1e-6)
        np.testing.assert_allclose(small, pipeline.render_small(ref, 8), atol=1e-5)


def test_threads_split_the_cores_and_come_back_after_a_run(tmp_path: Path):
    """--threads N is taken as given; 0 is every core; a stream sets them for its run only."""
    cores = engine.available_cores()
    assert engine.split_threads(3) == 3
    assert engine.split_threads(0) == cores
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.full((20, 30), 90, np.uint8))
    before = torch.get_num_threads()
    seen = []

    class Spy(SpyColorizer):
        def chroma(self, smalls):
            seen.append(torch.get_num_threads())
            return super().chroma(smalls)

    list(pipeline.stream([src], Spy(), pipeline.Options(render_size=16, workers=0, threads=before + 1)))
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_decode_workers_start_after_opencv_used_its_threads(tmp_path):
    """A decode worker forked after the parent ran OpenCV on several threads must not touch OpenCV's thread count
    (cv2.setNumThreads in a forked child hangs on the parent's pool): `colorize dir` with a worker finishes."""
    import subprocess
    import sys

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.full((40, 60), 128, np.uint8))
    code = (
        "import sys, cv2, numpy as np\n"
        "cv2.setNumThreads(2)\n"
        "cv2.cvtColor(np.random.rand(800, 800, 3).astype(np.float32), cv2.COLOR_Lab2RGB)\n"
        "from typer.testing import CliRunner\n"
        "from colorize_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['dir', sys.argv[1], '-o', sys.argv[2], '--workers', '1', '--threads', '2',"
        " '--quiet'])\n"
        "sys.exit(r.exit_code)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(src), str(tmp_path / "out")], timeout=300, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "out" / "a.png").exists()


def test_stream_items_cross_the_pipe_as_bytes_when_small_and_shared_when_large():
    """A small photo's luminance is pickled as bytes (cheaper than a shared-memory file per tensor); a large one's
    stays a tensor, which torch's worker pickler shares; either way the item arrives as it left."""
    import pickle

    from colorize_cli.stream import PIPE_BYTES, StreamItem

    small = StreamItem(3, 1.5, lum=torch.rand(64, 48), small=torch.rand(16, 12), ext=".png")
    state = small.__getstate__()
    assert isinstance(state["lum"], np.ndarray) and isinstance(state["small"], np.ndarray)
    back = pickle.loads(pickle.dumps(small))
    assert isinstance(back.lum, torch.Tensor) and torch.equal(back.lum, small.lum) and back.ext == ".png"
    side = int((PIPE_BYTES // 4) ** 0.5) + 1
    large = StreamItem(0, 0.0, lum=torch.rand(side, side), small=torch.rand(16, 16))
    state = large.__getstate__()
    assert isinstance(state["lum"], torch.Tensor) and isinstance(state["small"], np.ndarray)
    assert StreamItem(1, 0.0, error="x: cannot read").__getstate__()["lum"] is None


def test_cpu_chunks_are_even_in_order_and_within_the_limit():
    """A batch the CPU cap splits goes in chunks of about equal size (4 + 4, never 7 + 1: a lone image costs the
    network far more per pixel), in input order, none over the cap unless one image alone is; with lanes, in a
    multiple of them where there are the images."""
    limit = engine.CPU_CHUNK_PIXELS

    def split(shapes: list[tuple[int, int]]) -> list[list[torch.Tensor]]:
        return engine.cpu_chunks([torch.full(s, float(k)) for k, s in enumerate(shapes)], limit)

    assert [len(c) for c in split([(192, 192)] * 8)] == [4, 4]
    assert [len(c) for c in split([(256, 455)] * 8)] == [2, 2, 2, 2]
    assert [len(c) for c in split([(192, 192)] * 3)] == [3]
    lanes = [torch.zeros(192, 192)] * 16
    assert [len(c) for c in engine.cpu_chunks(lanes[:3], limit, lanes=2)] == [1, 2]
    assert [len(c) for c in engine.cpu_chunks(lanes, limit, lanes=2)] == [4] * 4  # not 3 chunks on 2 lanes
    assert [len(c) for c in engine.cpu_chunks(lanes[:4], limit, lanes=8)] == [1] * 4
    assert len(engine.cpu_chunks(lanes[:1], limit, lanes=2)) == 1
    mixed = [(192, 192)] * 2 + [(1024, 1024)] + [(192, 256)] * 5
    chunks = split(mixed)
    assert [float(s[0, 0]) for c in chunks for s in c] == list(range(len(mixed)))
    assert all(len(c) == 1 or sum(s.numel() for s in c) <= limit for c in chunks)
    assert len(chunks) <= 4 and engine.cpu_chunks([], limit) == []


_TWO_LANES = threading.Barrier(2)  # module-level: the Engine deep-copies its model, and a lock cannot be copied


class ThreadSpy(torch.nn.Module):
    """A network that notes which thread ran each call, at how many torch threads, and on how many images."""

    def __init__(self, fail: bool = False, meet: bool = False):
        super().__init__()
        self.fail = fail
        self.meet = meet  # calls off the main thread wait for each other at _TWO_LANES: lanes must run side by side
        self.calls: list[tuple[int, int, int]] = []

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        self.calls.append((threading.get_ident(), torch.get_num_threads(), len(lum)))
        if self.meet and threading.current_thread() is not threading.main_thread():
            _TWO_LANES.wait(timeout=10)  # BrokenBarrierError if the other lane never comes
        if self.fail:
            raise RuntimeError("the network broke")
        return lum.expand(-1, 2, -1, -1).clone()  # each image's chroma is its own luminance: order shows

    def to_chroma(self, raw: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
        return raw


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_cpu_batch_runs_in_lanes_of_one_thread_and_the_thread_count_comes_back(two_threads):
    """At two torch threads a batch runs as two chunks on two lanes of one thread each (no layer waits on a thread
    the decoder took), every image once and in order; a lone image keeps both threads; the count is put back."""
    colorizer = pipeline.Engine(ThreadSpy(meet=True), torch.device("cpu"))
    spy = colorizer.model
    smalls = [torch.full((40, 40), k / 10) for k in range(4)]
    out = colorizer.chroma(smalls)
    assert [round(float(ab[1, 0, 0]), 3) for ab in out] == [0.0, 0.1, 0.2, 0.3]
    assert [ab.shape for ab in out] == [(2, 40, 40)] * 4
    assert sorted(n for _, _, n in spy.calls) == [2, 2] and {t for _, t, _ in spy.calls} == {1}
    assert len({ident for ident, _, _ in spy.calls}) == 2 and threading.get_ident() not in {i for i, _, _ in spy.calls}
    assert torch.get_num_threads() == 2
    spy.calls.clear()
    colorizer.chroma(smalls[:1])
    assert spy.calls == [(threading.get_ident(), 2, 1)]


def test_lanes_give_the_one_lane_colours_and_a_failure_puts_the_threads_back(two_threads):
    """The shipped model's chroma in lanes is the chroma of one call over the batch; a network that raises in a
    lane raises to the caller, with torch's thread count put back."""
    from colorize_cli.zoo import load_model

    colorizer = pipeline.Engine(load_model("unet-lab", torch.device("cpu")), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    smalls = [torch.rand(64, 96, generator=g) for _ in range(4)]
    together = colorizer._chroma(smalls)
    for lone, ab in zip(together, colorizer.chroma(smalls)):
        assert torch.allclose(lone, ab, atol=1e-3)
    broken = pipeline.Engine(ThreadSpy(fail=True), torch.device("cpu"))
    with pytest.raises(RuntimeError, match="the network broke"):
        broken.chroma(smalls)
    assert torch.get_num_threads() == 2


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mmapped_bytes() -> int:
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):  # glibc before 2.33
        pytest.skip("no mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_blocks_up_to_32_mb_come_from_the_heap_that_keeps_them():
    """After keep_freed_memory (every Engine calls it) a 24 MB array is carved from malloc's heap, which keeps it for
    the next batch, not mapped fresh from the kernel and handed back on free (glibc's default above 128 KB)."""
    assert engine.keep_freed_memory() and engine.keep_freed_memory()  # once per process, then cached
    before = _mmapped_bytes()
    block = np.ones(24 << 20, np.uint8)
    assert _mmapped_bytes() - before < 1 << 20 and int(block[-1]) == 1
