"""Tests for colorize_cli.imaging (decoding edge cases, encoding, atomic writes) and colorize_cli.folders (scanning)."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from colorize_cli import imaging
from colorize_cli.folders import iter_images, output_path
from colorize_cli.imaging import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageError,
    encode_image,
    read_image,
    write_atomic,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VAL_PNG = DATA / "val" / "cset5_bird.png"
OLD_JPG = DATA / "historical" / "1850Geography.jpg"
needs_data = pytest.mark.skipif(not (VAL_PNG.is_file() and OLD_JPG.is_file()), reason="shared data not available")


def _cv_rgb(data: bytes | Path) -> np.ndarray:
    """Independent decode (cv2, BGR->RGB) for comparisons."""
    buf = np.fromfile(data, np.uint8) if isinstance(data, Path) else np.frombuffer(data, np.uint8)
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert arr is not None
    if arr.ndim == 3:
        arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
    return arr


def _write(path: Path, arr: np.ndarray) -> Path:
    ok, buf = cv2.imencode(path.suffix, arr)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims w x h but whose pixel data is essentially empty."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


# ----------------------------------------------------------------------------- reading


@needs_data
def test_png_8bit_roundtrip_is_exact(tmp_path: Path) -> None:
    src = Path(shutil.copy(VAL_PNG, tmp_path / "bird.png"))
    dec = read_image(src)
    ref = _cv_rgb(src)
    assert dec.rgb.dtype == np.float32 and dec.rgb.shape == ref.shape
    assert dec.bit_depth == 8 and dec.ext == ".png" and dec.alpha is None
    assert 0.0 <= dec.rgb.min() and dec.rgb.max() <= 1.0
    np.testing.assert_array_equal(np.rint(dec.rgb * 255).astype(np.uint8), ref)
    # float -> bytes -> pixels must give back the very same 8-bit values
    np.testing.assert_array_equal(_cv_rgb(encode_image(dec.rgb, None, ".png")), ref)


@needs_data
def test_jpeg_read_matches_pillow_and_reencodes_close(tmp_path: Path) -> None:
    src = Path(shutil.copy(OLD_JPG, tmp_path / "old.JPG"))
    dec = read_image(src)
    pil = np.asarray(Image.open(src).convert("RGB"), dtype=np.float32) / 255
    assert dec.rgb.shape == pil.shape and dec.ext == ".jpg" and dec.bit_depth == 8
    assert np.abs(dec.rgb - pil).mean() < 1.5 / 255  # two IDCT implementations, same picture
    again = _cv_rgb(encode_image(dec.rgb, None, ".jpg", jpeg_quality=95)).astype(np.float32) / 255
    assert np.abs(again - dec.rgb).mean() < 2 / 255
    low = encode_image(dec.rgb, None, ".jpg", jpeg_quality=20)
    assert len(low) < len(encode_image(dec.rgb, None, ".jpg", jpeg_quality=95))


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_16bit_values_survive_read_and_encode(tmp_path: Path, ext: str) -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 65536, size=(7, 5, 3), dtype=np.uint16)
    bgr[0, 0] = (1, 2, 65535)  # values an 8-bit detour would destroy
    src = _write(tmp_path / f"deep{ext}", bgr)
    dec = read_image(src)
    assert dec.bit_depth == 16
    rgb16 = np.rint(dec.rgb.astype(np.float64) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(rgb16, bgr[:, :, ::-1])
    out = _cv_rgb(encode_image(dec.rgb, None, ext, bit_depth=16))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, bgr[:, :, ::-1])


def test_16bit_gray_png_written_by_pillow(tmp_path: Path) -> None:
    src = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.uint16)).save(src)
    dec = read_image(src)
    assert dec.bit_depth == 16 and dec.rgb.shape == (1, 3, 3)
    np.testing.assert_allclose(dec.rgb[0, :, 1], [0, 1000 / 65535, 1], rtol=1e-6)


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".webp"])
def test_16bit_downgraded_for_8bit_formats(ext: str) -> None:
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    out = _cv_rgb(encode_image(rgb, None, ext, bit_depth=16))
    assert out.dtype == np.uint8
    assert abs(int(out[2, 2, 0]) - 128) <= 2


def test_float_tiff_is_clipped_and_reported_16bit(tmp_path: Path) -> None:
    f = np.array([[[-0.5, 0.25, 1.5]]], dtype=np.float32)  # BGR
    src = _write(tmp_path / "float.tif", f)
    dec = read_image(src)
    assert dec.bit_depth == 16
    np.testing.assert_allclose(dec.rgb[0, 0], [1.0, 0.25, 0.0])


def test_float_tiff_pillow_cannot_parse_is_still_size_checked(tmp_path: Path) -> None:
    # Pillow has no mode for 3-channel float32, so the size comes from our own IFD parse.
    src = _write(tmp_path / "rgbf.tif", np.full((5, 7, 3), 0.5, np.float32))
    with pytest.raises(ImageError, match="7x5 pixels exceeds the limit of 34"):
        read_image(src, max_pixels=34)
    assert read_image(src, max_pixels=35).rgb.shape == (5, 7, 3)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(src.read_bytes()[:40])
    with pytest.raises(ImageError, match="broken.tif"):
        read_image(broken)


def test_encode_rounds_clips_and_rescales_integers() -> None:
    rgb = np.array([[[-0.1, 0.5, 1.2], [0.002, 0.998, 1 / 255]]], dtype=np.float32)
    out = _cv_rgb(encode_image(rgb, None, "png"))  # dot optional
    np.testing.assert_array_equal(out, [[[0, 128, 255], [1, 254, 1]]])
    u8 = np.array([[[0, 1, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(_cv_rgb(encode_image(u8, None, ".png")), u8)
    deep = _cv_rgb(encode_image(u8, None, ".png", bit_depth=16))
    np.testing.assert_array_equal(deep, [[[0, 257, 65535]]])
    u16 = np.array([[[0, 257, 65535]]], dtype=np.uint16)
    np.testing.assert_array_equal(_cv_rgb(encode_image(u16, None, ".png")), [[[0, 1, 255]]])


def test_encode_unknown_format_raises_image_error() -> None:
    with pytest.raises(ImageError, match=r"\.nope"):
        encode_image(np.zeros((2, 2, 3), np.float32), None, ".nope")


def test_rgba_alpha_preserved(tmp_path: Path) -> None:
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.arange(8, dtype=np.uint8)[None, :] * 30
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(src)
    dec = read_image(src)
    assert dec.alpha is not None and dec.alpha.dtype == np.float32 and dec.alpha.shape == (6, 8)
    np.testing.assert_array_equal(np.rint(dec.alpha * 255), rgba[..., 3])
    for ext in (".png", ".tif"):
        np.testing.assert_array_equal(_cv_rgb(encode_image(dec.rgb, dec.alpha, ext)), rgba)
    assert _cv_rgb(encode_image(dec.rgb, dec.alpha, ".webp")).shape[2] == 4
    for ext in (".jpg", ".bmp"):  # no alpha there: dropped, not an error
        assert _cv_rgb(encode_image(dec.rgb, dec.alpha, ext)).shape == (6, 8, 3)


@needs_data
def test_gray_inputs_become_three_equal_channels(tmp_path: Path) -> None:
    src = tmp_path / "gray.png"
    Image.open(OLD_JPG).convert("L").save(src)
    dec = read_image(src)
    assert dec.rgb.shape[2] == 3 and dec.alpha is None
    assert np.array_equal(dec.rgb[..., 0], dec.rgb[..., 1])
    assert np.array_equal(dec.rgb[..., 1], dec.rgb[..., 2])
    np.testing.assert_array_equal(np.rint(dec.rgb[..., 0] * 255), np.asarray(Image.open(src)))


def test_gray_with_alpha(tmp_path: Path) -> None:
    la = np.stack([np.full((3, 4), 90, np.uint8), np.full((3, 4), 40, np.uint8)], axis=2)
    src = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(src)
    dec = read_image(src)
    np.testing.assert_allclose(dec.rgb, 90 / 255, rtol=1e-6)
    assert dec.alpha is not None
    np.testing.assert_allclose(dec.alpha, 40 / 255, rtol=1e-6)


def test_cmyk_jpeg_decodes_to_rgb(tmp_path: Path) -> None:
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(src, quality=100)  # pure red
    dec = read_image(src)
    assert dec.rgb.shape == (8, 8, 3)
    np.testing.assert_allclose(dec.rgb[4, 4], [1, 0, 0], atol=0.02)


def _marked(h: int = 16, w: int = 24) -> np.ndarray:
    """Distinct corner blocks so every flip/rotation is distinguishable."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:8, :8] = (255, 0, 0)
    a[:8, -8:] = (0, 255, 0)
    a[-8:, :8] = (0, 0, 255)
    return a


def test_exif_orientation_6_rotates_jpeg(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    src = tmp_path / "rotated.jpg"
    Image.fromarray(_marked()).save(src, exif=exif.tobytes(), quality=100)
    dec = read_image(src)
    assert dec.rgb.shape == (24, 16, 3)  # was 16x24 as stored
    np.testing.assert_allclose(dec.rgb[3, -4], [1, 0, 0], atol=0.05)  # top-left red -> top-right
    np.testing.assert_allclose(dec.rgb[-4, -4], [0, 1, 0], atol=0.05)  # top-right green -> bottom-right
    np.testing.assert_allclose(dec.rgb[3, 3], [0, 0, 1], atol=0.05)  # bottom-left blue -> top-left


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations_match_pillow(tmp_path: Path, orientation: int) -> None:
    img = Image.fromarray(_marked())
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "o.png"
    img.save(src, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(src)).convert("RGB"))
    got = np.rint(read_image(src).rgb * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


@pytest.mark.parametrize("orientation", [3, 6])
def test_png_orientation_after_the_pixels_is_found(tmp_path: Path, orientation: int) -> None:
    """An eXIf chunk placed after the image data (allowed, and past where the header read stops) still turns it."""
    src = tmp_path / "late.png"
    Image.fromarray(_marked()).save(src)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = src.read_bytes()
    assert data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
    src.write_bytes(data[:-12] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + data[-12:])  # without "Exif\0\0"
    expected = np.asarray(ImageOps.exif_transpose(Image.open(src)).convert("RGB"))
    assert expected.shape[:2] != (16, 24) or orientation == 3
    np.testing.assert_array_equal(np.rint(read_image(src).rgb * 255).astype(np.uint8), expected)


def test_png_orientation_is_read_without_pillow_decoding_the_pixels(tmp_path: Path, monkeypatch) -> None:
    """A PNG whose metadata all precedes its pixels (Pillow's own writer: eXIf, XMP) is turned by it, and Pillow
    never decodes it (its PNG getexif would, only to look past the pixels); cv2 decodes it once."""
    from PIL import ImageFile, PngImagePlugin

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_marked()).save(tmp_path / "exif.png", exif=exif.tobytes())
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    Image.fromarray(_marked()).save(tmp_path / "xmp.png", pnginfo=info)
    Image.fromarray(_marked()).save(tmp_path / "plain.png")

    def no_decode(self):
        raise AssertionError("Pillow decoded the pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    for name in ("exif.png", "xmp.png"):
        got = np.rint(read_image(tmp_path / name).rgb * 255).astype(np.uint8)
        np.testing.assert_array_equal(got, np.rot90(_marked(), k=-1))
    np.testing.assert_array_equal(np.rint(read_image(tmp_path / "plain.png").rgb * 255).astype(np.uint8), _marked())


def test_tiff_orientation_not_applied_twice(tmp_path: Path) -> None:
    src = tmp_path / "o6.tif"
    Image.fromarray(_marked()).save(src, tiffinfo={0x0112: 6})
    got = np.rint(read_image(src).rgb * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, np.rot90(_marked(), k=-1))


def test_bomb_header_refused_fast_with_little_memory(tmp_path: Path) -> None:
    src = tmp_path / "bomb.png"
    src.write_bytes(_png_header_only(100_000, 100_000))
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ImageError) as info:
            read_image(src)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(info.value)
    assert msg.startswith(str(src)) and "100000x100000" in msg
    assert str(DEFAULT_MAX_PIXELS) in msg and "--max-pixels" in msg
    assert elapsed < 1.0 and peak < 5_000_000


def test_max_pixels_is_inclusive_and_enforced(tmp_path: Path) -> None:
    src = _write(tmp_path / "small.png", np.zeros((3, 4, 3), np.uint8))
    assert read_image(src, max_pixels=12).rgb.shape == (3, 4, 3)
    with pytest.raises(ImageError, match="4x3 pixels exceeds the limit of 11"):
        read_image(src, max_pixels=11)


def test_one_pixel_wide_image_is_fine(tmp_path: Path) -> None:
    src = _write(tmp_path / "thin.jpg", np.full((50, 1, 3), 128, np.uint8))
    assert read_image(src).rgb.shape == (50, 1, 3)


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", noise)[1]
    files = {
        "zero": (tmp_path / "empty.jpg", b""),
        "truncated": (tmp_path / "cut.jpg", jpeg.tobytes()[: len(jpeg) // 2]),
        "text": (tmp_path / "notes.jpg", b"this is not a picture\n" * 10),
        "garbage_png": (tmp_path / "noise.png", b"\x89PNG\r\n\x1a\n" + os.urandom(64)),
        "truncated_png": (tmp_path / "cut.png", cv2.imencode(".png", jpeg)[1].tobytes()[:60]),
    }
    for path, data in files.values():
        path.write_bytes(data)
    paths = {k: p for k, (p, _) in files.items()}
    paths["missing"] = tmp_path / "missing.png"
    (tmp_path / "adir.png").mkdir()
    paths["directory"] = tmp_path / "adir.png"
    return paths


@pytest.mark.parametrize("kind", ["zero", "truncated", "text", "garbage_png", "truncated_png", "missing", "directory"])
def test_bad_inputs_raise_image_error_naming_file(tmp_path: Path, kind: str) -> None:
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(ImageError) as info:
        read_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and path.name in msg
    assert "\n" not in msg and len(msg) > len(str(path)) + 4


def test_messages_say_what_is_wrong(tmp_path: Path) -> None:
    paths = _bad_files(tmp_path)
    with pytest.raises(ImageError, match="empty"):
        read_image(paths["zero"])
    with pytest.raises(ImageError, match="not an image or unsupported format"):
        read_image(paths["text"])
    with pytest.raises(ImageError, match="not found"):
        read_image(paths["missing"])


@needs_data
@pytest.mark.parametrize("name", ["фото 照片.png", "with space.png", "-leading-dash.png", "--help.png"])
def test_awkward_file_names(tmp_path: Path, name: str) -> None:
    src = Path(shutil.copy(VAL_PNG, tmp_path / name))
    assert read_image(src).rgb.shape == _cv_rgb(VAL_PNG).shape
    out = tmp_path / "out" / name
    write_atomic(out, encode_image(read_image(str(src)).rgb, None, out.suffix))
    np.testing.assert_array_equal(_cv_rgb(out), _cv_rgb(VAL_PNG))


def test_pillow_fallback_uses_first_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (6, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=50)
    monkeypatch.setattr(imaging.cv2, "imdecode", lambda *a, **k: None)  # as if cv2 could not decode it
    dec = read_image(src)
    assert dec.rgb.shape == (4, 6, 3) and dec.ext == ".gif"
    np.testing.assert_allclose(dec.rgb[1, 1], [1, 0, 0])
    cut = tmp_path / "cut.jpg"  # and a broken file still fails cleanly through Pillow
    cut.write_bytes(cv2.imencode(".jpg", np.full((64, 64, 3), 99, np.uint8))[1].tobytes()[:300])
    with pytest.raises(ImageError, match="cut.jpg"):
        read_image(cut)


# ----------------------------------------------------------------------------- writing


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_success_creates_dirs_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    write_atomic(target, b"first")
    write_atomic(target, b"second")  # overwrite in place
    assert target.read_bytes() == b"second"
    assert _leftovers(target.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_write_atomic_failure_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(imaging.os, "replace", full_disk)
    with pytest.raises(ImageError, match=r"out\.png: cannot write: No space left on device"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def _permissions_enforced(d: Path) -> bool:
    try:
        (d / "probe").write_bytes(b"")
    except PermissionError:
        return True
    (d / "probe").unlink()
    return False


def test_write_atomic_read_only_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if not _permissions_enforced(ro):
            pytest.skip("permissions not enforced (running as root?)")
        with pytest.raises(ImageError, match="cannot write"):
            write_atomic(ro / "x.png", b"data")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------- scanning


def _tree(root: Path) -> None:
    names = [
        "b.png",
        "a.JPG",
        "c.txt",
        "z.webp",
        "noext",
        ".out.png.1234.tmp",
        ".x.png.tmp",
        "._mac.jpg",
        "sub/d.tif",
        "sub/a.jpeg",
        "sub/deeper/e.BMP",
        "b/c.png",
        "out/result.png",
    ]
    for rel in names:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (root / "dir.png").mkdir()  # a folder with an image-like name is not an image


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_iter_images_flat_sorted_and_filtered(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert _rel(list(iter_images(tmp_path, recursive=False)), tmp_path) == ["a.JPG", "b.png", "z.webp"]


def test_iter_images_recursive_order_and_exclude(tmp_path: Path) -> None:
    _tree(tmp_path)
    got = _rel(list(iter_images(tmp_path, recursive=True)), tmp_path)
    assert got == [
        "a.JPG",
        "b/c.png",
        "b.png",
        "out/result.png",
        "sub/a.jpeg",
        "sub/d.tif",
        "sub/deeper/e.BMP",
        "z.webp",
    ]
    # exclude given by another spelling of the same folder still works
    excl = tmp_path / "sub" / ".." / "out"
    got = _rel(list(iter_images(tmp_path, recursive=True, exclude=excl)), tmp_path)
    assert "out/result.png" not in got and len(got) == 7
    assert list(iter_images(tmp_path / "sub", recursive=True, exclude=tmp_path)) == []


def test_iter_images_symlink_loop_terminates(tmp_path: Path) -> None:
    _tree(tmp_path)
    try:
        (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
        (tmp_path / "sub" / "self").symlink_to(tmp_path / "sub", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")
    got = _rel(list(iter_images(tmp_path, recursive=True)), tmp_path)
    assert len(got) == len(set(got)) == 8


def test_iter_images_follows_symlinked_dir_and_skips_unreadable(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "broken.png").symlink_to(tmp_path / "nowhere.png")
    locked = root / "locked"
    locked.mkdir()
    (locked / "secret.png").write_bytes(b"x")
    locked.chmod(0)
    try:
        got = _rel(list(iter_images(root, recursive=True)), root)
    finally:
        locked.chmod(0o755)
    assert "link/o.png" in got and "broken.png" not in got
    assert set(got) <= {"link/o.png", "locked/secret.png"}  # root may read 'locked' anyway
    assert list(iter_images(tmp_path / "missing", recursive=True)) == []


# ----------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("src", "in_root", "fmt", "expected"),
    [
        ("in/a/b/x.jpg", "in", "same", "out/a/b/x.jpg"),
        ("in/a/x.JPG", "in", "same", "out/a/x.JPG"),
        ("in/a/x.tiff", "in", "png", "out/a/x.png"),
        ("in/x.png", "in", "jpg", "out/x.jpg"),
        ("in/anim.gif", "in", "same", "out/anim.png"),
        ("in/raw.pgm", "in", "same", "out/raw.png"),
        ("elsewhere/x.webp", None, "same", "out/x.webp"),
        ("elsewhere/photo.v2.bmp", None, "jpg", "out/photo.v2.jpg"),
    ],
)
def test_output_path(src: str, in_root: str | None, fmt: str, expected: str) -> None:
    got = output_path(Path(src), Path(in_root) if in_root else None, Path("out"), fmt)
    assert got == Path(expected)


def test_output_path_rejects_unknown_format() -> None:
    with pytest.raises(ValueError):
        output_path(Path("x.png"), None, Path("out"), "gif")


def test_constants() -> None:
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_import_does_not_pull_in_torch() -> None:
    # DataLoader workers and --help import this module; torch would make them slow.
    import subprocess
    import sys

    code = "import sys, colorize_cli.imaging; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, timeout=60).returncode == 0
