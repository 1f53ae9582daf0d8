"""Image file I/O: safe decoding, encoding and atomic writes (folder walking and output names: folders.py).

Kept free of torch so DataLoader workers and ``--help`` paths import it cheaply.
Every reading failure surfaces as :class:`ImageError` with a one-line message
that names the file, so a batch run can report it and carry on.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin

from colorize_cli.claims import temp_file

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "Decoded",
    "ImageError",
    "encode_image",
    "read_image",
    "write_atomic",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
DEFAULT_MAX_PIXELS: int = 100_000_000

# Our max_pixels check on the header is the bomb guard. Pillow's global limit would
# otherwise refuse images the user allowed with --max-pixels (and hide W x H).
Image.MAX_IMAGE_PIXELS = None

_EXIF_ORIENTATION = 0x0112
_ALPHA_EXTS = frozenset({".png", ".tif", ".tiff", ".webp"})
_DEEP_EXTS = frozenset({".png", ".tif", ".tiff"})


class ImageError(Exception):
    """One clear, one-line, human message that names the file."""


@dataclass
class Decoded:
    samples: np.ndarray  # as stored, orientation applied, RGB order: HxW gray or HxWx3; uint8, uint16 or float32 0..1
    alpha: np.ndarray | None  # float32 HxW in 0..1
    bit_depth: int  # 8 or 16 (float sources count as 16)
    ext: str  # lower-case source extension, e.g. ".jpg"

    @property
    def gray(self) -> np.ndarray | None:
        """The one gray plane as stored (C-contiguous) when the source has no colour: a 1 MP gray JPEG stays 1 MB
        of uint8 instead of 12 MB of float RGB."""
        return np.ascontiguousarray(self.samples) if self.samples.ndim == 2 else None

    @functools.cached_property
    def rgb(self) -> np.ndarray:
        """float32 HxWx3 in 0..1, gray replicated; made on first use only."""
        f = _to_unit_float(self.samples)
        return np.ascontiguousarray(np.repeat(f[:, :, None], 3, axis=2) if f.ndim == 2 else f)


# --------------------------------------------------------------------------- reading


def read_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode an image file; raises only ImageError("<path>: <reason>")."""
    path = Path(path)
    try:
        return _read(path, max_pixels)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{path}: out of memory while decoding") from None
    except Exception as e:  # noqa: BLE001 - contract: never leak other types
        raise ImageError(f"{path}: cannot decode: {_reason(e)}") from e


def from_array(a: np.ndarray, name: str = "array") -> Decoded:
    """An in-memory image (RGB order) as the decoder would give it: uint8, uint16 or float 0..1; HxW, HxWx1, HxWx2
    (gray + alpha), HxWx3 or HxWx4 (RGBA). ImageError for anything else."""
    a = np.asarray(a)
    if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"{name}: expected an HxW or HxWxC image array, got shape {a.shape}")
    return Decoded(*_normalize(a, False, Path(name)), "")


def _read(path: Path, max_pixels: int) -> Decoded:
    im, (w, h) = _open_header(path)
    with im if im is not None else contextlib.nullcontext():
        if w * h > max_pixels:
            raise ImageError(f"{path}: {w}x{h} pixels exceeds the limit of {max_pixels} (raise it with --max-pixels)")
        data = _file_bytes(path)  # read once: the PNG chunk walk and the decoder both use it
        orientation = _orientation(im, data) if im is not None else 1
        arr, bgr = _decode(path, im, data)
    return Decoded(*_normalize(_orient(arr, orientation), bgr, path), ext=path.suffix.lower())


def _open_header(path: Path) -> tuple[Image.Image | None, tuple[int, int]]:
    """Read only the header (no pixel data): Pillow, or our own TIFF IFD parse for
    TIFFs Pillow cannot model (e.g. 3-channel float32), then image is None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # corrupt-EXIF chatter; failures raise below
            im = Image.open(path)
        return im, im.size
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except Image.DecompressionBombError as e:  # only if someone re-enabled Pillow's limit
        raise ImageError(f"{path}: {e}") from None
    except OSError as e:
        if not isinstance(e, Image.UnidentifiedImageError):
            raise ImageError(f"{path}: cannot read: {_reason(e)}") from None
    except Exception:  # noqa: BLE001 - malformed headers raise ValueError, struct.error...
        pass
    size = _tiff_size(path)
    if size is not None:
        return None, size
    if _is_empty(path):
        raise ImageError(f"{path}: empty file (0 bytes)")
    raise ImageError(f"{path}: not an image or unsupported format")


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a TIFF's first IFD, or None if it is not a readable TIFF."""
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about truncated IFDs; we just give up
            head = fp.read(8)
            if head[:4] not in TiffImagePlugin.PREFIXES:
                return None
            if head[2:4] in (b"\x00+", b"+\x00"):  # BigTIFF: 16-byte header
                head += fp.read(8)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
            fp.seek(ifd.next)
            ifd.load(fp)
            return int(ifd[256]), int(ifd[257])
    except Exception:  # noqa: BLE001 - anything odd simply means "not a TIFF we know"
        return None


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _orientation(im: Image.Image, data: np.ndarray) -> int:
    # TIFF: both Pillow and cv2 apply the Orientation tag themselves while decoding.
    if im.format == "TIFF":
        return 1
    try:
        if im.format == "PNG" and "exif" not in im.info and not _png_metadata_after_pixels(data.data):
            # Pillow's PNG getexif decodes every pixel to look past them for metadata (as long as the decode itself);
            # none is there, so the base getexif reads what the header gave (eXIf, EXIF or XMP text chunks).
            exif = Image.Image.getexif(im)
        else:
            exif = im.getexif()
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - broken EXIF must not cost the picture
        return 1
    return value if 1 <= value <= 8 else 1


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})  # where Pillow finds EXIF or XMP orientation


def _png_metadata_after_pixels(png: memoryview) -> bool:
    """Whether a chunk that may hold orientation follows the PNG's image data, found by walking the chunk headers of
    the file's bytes (no pixel decoded). True where the walk cannot tell: Pillow then looks as before."""
    if png[:8] != _PNG_SIGNATURE:
        return True
    seen_pixels, at = False, 8
    while at + 8 <= len(png):
        length, kind = int.from_bytes(png[at : at + 4], "big"), bytes(png[at + 4 : at + 8])
        if kind == b"IEND":
            return False
        if seen_pixels and kind in _PNG_METADATA:
            return True
        seen_pixels = seen_pixels or kind == b"IDAT"
        at += 12 + length  # length, type, the chunk's data and CRC
    return True


def _file_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)  # fromfile copes with unicode paths
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {_reason(e)}") from None


def _decode(path: Path, im: Image.Image | None, data: np.ndarray) -> tuple[np.ndarray, bool]:
    """Pixels as stored, from the file's bytes; returns (array, channels_are_bgr)."""
    try:
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED keeps 16-bit and alpha
    except cv2.error:
        arr = None
    if arr is not None:
        return arr, True
    if im is None:
        raise ImageError(f"{path}: cannot decode: truncated or corrupt data")
    try:
        return _pil_pixels(im), False
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001
        raise ImageError(f"{path}: cannot decode: truncated or corrupt data") from None


def _pil_pixels(im: Image.Image) -> np.ndarray:
    """Fallback decode. Animated GIF/WebP: only the FIRST FRAME is used."""
    im.seek(0)
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)  # also fixes big-endian I;16B
    if im.mode == "F":
        return np.asarray(im)
    has_alpha = "A" in im.mode or "transparency" in im.info
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxW[xC] array, as Pillow's exif_transpose."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda x: x[:, ::-1],  # mirror horizontal
        3: lambda x: x[::-1, ::-1],  # rotate 180
        4: lambda x: x[::-1],  # mirror vertical
        5: lambda x: x.swapaxes(0, 1),  # transpose
        6: lambda x: x.swapaxes(0, 1)[:, ::-1],  # rotate 90 clockwise
        7: lambda x: x[::-1, ::-1].swapaxes(0, 1),  # transverse
        8: lambda x: x.swapaxes(0, 1)[::-1],  # rotate 90 counter-clockwise
    }
    op = ops.get(orientation)
    return a if op is None else op(a)


def _normalize(a: np.ndarray, bgr: bool, path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Any decoder layout -> (samples: HxW gray or HxWx3 RGB in the stored type, float32 alpha or None, bit depth).
    Float samples are cleaned here (NaN would poison the model); integer ones stay as stored until used."""
    depth = _bit_depth(a, path)
    if a.dtype.kind == "f":
        a = np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    channels = 1 if a.ndim == 2 else a.shape[2]
    if channels == 2:  # gray + alpha
        samples = a[:, :, 0]
    elif channels in (3, 4):
        samples = a[:, :, 2::-1] if bgr else a[:, :, :3]
    elif channels != 1:
        raise ImageError(f"{path}: unsupported number of channels ({channels})")
    else:
        samples = a
    alpha = np.ascontiguousarray(_to_unit_float(a[:, :, -1])) if channels in (2, 4) else None
    return samples, alpha, depth


def _bit_depth(a: np.ndarray, path: Path) -> int:
    if a.dtype == np.uint8:
        return 8
    if a.dtype == np.uint16 or a.dtype.kind == "f":  # float TIFF: nominal range 0..1, counts as 16
        return 16
    raise ImageError(f"{path}: unsupported sample type {a.dtype}")


def _to_unit_float(a: np.ndarray) -> np.ndarray:
    """Samples of a known type (see _bit_depth; floats already cleaned) -> float32 0..1."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) * np.float32(1 / 65535)
    return a.astype(np.float32, copy=False)


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(text.split())  # keep the message on one line


# --------------------------------------------------------------------------- writing


def encode_image(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    ext: str,
    bit_depth: int = 8,
    jpeg_quality: int = 95,
) -> bytes:
    """Encode RGB (float 0..1, uint8 or uint16) to bytes for `ext` with cv2.

    16-bit survives only in PNG/TIFF; alpha only in PNG/TIFF/WebP (dropped elsewhere).
    `jpeg_quality` also drives lossy WebP.
    """
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    dtype = np.uint16 if bit_depth == 16 and ext in _DEEP_EXTS else np.uint8
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    if rgb.ndim != 3 or rgb.shape[2] not in (1, 3):
        raise ValueError(f"expected HxWx3 RGB, got shape {rgb.shape}")
    rgb = np.broadcast_to(rgb, (*rgb.shape[:2], 3))
    if alpha is not None and ext in _ALPHA_EXTS:
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
        planes = [_quantize(rgb[:, :, 2::-1], dtype), _quantize(alpha, dtype)[:, :, None]]  # cv2 wants BGR
        pixels = np.ascontiguousarray(np.concatenate(planes, axis=2))
    else:  # one SIMD pass to BGR instead of a strided copy
        pixels = cv2.cvtColor(np.ascontiguousarray(_quantize(rgb, dtype)), cv2.COLOR_RGB2BGR)
    q = int(np.clip(jpeg_quality, 1, 100))
    params = {
        ".jpg": [cv2.IMWRITE_JPEG_QUALITY, q],
        ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, q],
        ".webp": [cv2.IMWRITE_WEBP_QUALITY, q],
    }.get(ext, [])
    try:
        ok, buf = cv2.imencode(ext, pixels, params)
    except cv2.error as e:
        raise ImageError(f"{ext}: cannot encode: {_reason(e)}") from None
    if not ok:
        raise ImageError(f"{ext}: cannot encode this image")
    return buf.tobytes()


def _quantize(a: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """Round/clip to the target integer type; integer inputs are rescaled exactly."""
    top = np.iinfo(dtype).max
    if a.dtype == dtype:
        return a
    if a.dtype == np.uint8:  # 8 -> 16: 255 * 257 == 65535
        return a.astype(np.uint16) * np.uint16(257)
    if a.dtype == np.uint16:  # 16 -> 8
        return np.rint(a / 257.0).astype(np.uint8)
    f = np.clip(np.asarray(a, dtype=np.float32), 0.0, 1.0) * np.float32(top)
    return np.rint(f).astype(dtype)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a same-directory temp file + fsync + os.replace: never a half-written output."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(temp_file(path))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also clean up on KeyboardInterrupt
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise ImageError(f"{path}: cannot write: {_reason(e)}") from e
        raise
