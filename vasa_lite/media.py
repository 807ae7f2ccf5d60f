"""Media in and out: images, audio and video through the ffmpeg binary that imageio-ffmpeg ships.

Every reader returns the course's formats (uint8 RGB images, float32 mono audio at 16 kHz, uint8 video
frames [T, H, W, 3]) whatever the file was, and every bad file becomes one `InputError` that says what was
wrong and what to do. Reading and writing talk to ffmpeg directly rather than through mediapy: mediapy never
writes audio, and its reader passes `-vsync`, which ffmpeg 9 (imageio-ffmpeg 0.8) rejects.
"""
from __future__ import annotations

import base64
import functools
import math
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vasa_lite.errors import InputError, VasaError
from vasa_lite.world.params import FPS, SAMPLE_RATE

SILENCE_FLOOR_DBFS = -60.0     # check_speech: RMS below this is treated as silence
_SOUNDFILE_EXT = {".wav", ".flac"}
_SOUNDFILE_MAX_FRAMES = 10 * 60 * 48_000   # longer files stream through ffmpeg instead of loading whole
_VIDEO_EXT = {".mp4", ".m4v"}


# ----------------------------------------------------------------------------------------------- ffmpeg


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped in imageio-ffmpeg's wheel; mediapy is pointed at it too."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # noqa: BLE001 - any failure here means the same thing to a student
        raise VasaError(f"no ffmpeg binary found ({e}); run `pip install imageio-ffmpeg`") from None
    try:
        import mediapy

        mediapy.set_ffmpeg(exe)
    except ImportError:
        pass
    return exe


def ffmpeg_version() -> str:
    """The version string of `ffmpeg_exe()`, e.g. 'n9.0.2-...'."""
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    m = re.match(r"ffmpeg version (\S+)", out)
    return m.group(1) if m else "unknown"


def _last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def _existing_file(path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{what} file not found: {path}; check the path and the working directory")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a file; give the path of one {what} file")
    if path.stat().st_size == 0:
        raise InputError(f"{what} file {path} is empty (0 bytes); re-export or re-download it")
    return path


def _fps_token(token: str) -> float:
    # ffmpeg prints rates with %g, and large ones as '1k'
    return float(token[:-1]) * 1000 if token.endswith("k") else float(token)


def probe(path) -> dict:
    """What ffmpeg sees in a media file, parsed from `ffmpeg -i` (no ffprobe ships with imageio-ffmpeg).

    Returns {'duration': seconds or None, 'video': {'width', 'height', 'fps'} or None,
    'audio': {'sample_rate', 'channels'} or None}. Width and height are as displayed (after rotation).
    """
    path = _existing_file(path, "media")
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                         text=True, errors="replace")
    err = res.stderr
    if "Input #0" not in err:
        raise InputError(f"cannot read {path}: {_last_error_line(err)}; the file is corrupt or not a media file "
                         "ffmpeg knows (re-export it as mp4/wav)")
    info: dict = {"duration": None, "video": None, "audio": None}
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    if m:
        info["duration"] = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    lines = err.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"Stream #\d+:\d+.*?: (Video|Audio): (.*)", line)
        if not m:
            continue
        kind, desc = m.groups()
        if kind == "Video" and info["video"] is None and "attached pic" not in desc:
            size = re.search(r", (\d+)x(\d+)", desc)
            if not size:
                continue
            w, h = int(size.group(1)), int(size.group(2))
            rate = re.search(r"([\d.]+k?) fps", desc) or re.search(r"([\d.]+k?) tbr", desc)
            # side data (rotation) follows on the stream's indented lines
            rotation = 0.0
            for extra in lines[i + 1:]:
                if "Stream #" in extra or not extra.startswith("    "):
                    break
                r = re.search(r"rotation of (-?[\d.]+) degrees", extra)
                if r:
                    rotation = float(r.group(1))
            if round(rotation) % 180 == 90:   # ffmpeg autorotates while decoding, so swap to displayed size
                w, h = h, w
            info["video"] = {"width": w, "height": h, "fps": _fps_token(rate.group(1)) if rate else None}
        elif kind == "Audio" and info["audio"] is None:
            sr = re.search(r"(\d+) Hz", desc)
            layout = re.search(r"Hz, ([^,]+)", desc)
            channels = {"mono": 1, "stereo": 2}.get(layout.group(1).strip(), None) if layout else None
            if channels is None and layout:
                ch = re.match(r"(\d+) channels", layout.group(1).strip())
                channels = int(ch.group(1)) if ch else None
            info["audio"] = {"sample_rate": int(sr.group(1)) if sr else None, "channels": channels}
    return info


# ------------------------------------------------------------------------------------------------ images


def _image_array_to_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    """Any HxW, HxWx1/2/3/4 or CxHxW array, of any numeric dtype, to uint8 RGB HxWx3."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)   # CHW (torch layout) to HWC
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4)):
        raise InputError(f"{what} has shape {arr.shape}; give an image as HxW, HxWx3 or HxWx4")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{what} is empty (size {arr.shape[1]}x{arr.shape[0]}); give a non-empty image")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{what} has NaN or Inf pixels; give finite values in [0, 1]")
        scale = 255.0 if arr.max() <= 1.0 + 1e-6 else 1.0   # float [0, 1] or float [0, 255]
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        # 16-bit images keep their top byte; wider integers (PIL's mode "I") are 16-bit when above 255
        if arr.dtype.itemsize == 2 or arr.max() > 255:
            arr = np.rint(np.clip(arr, 0, 65535) / 257.0).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    else:
        raise InputError(f"{what} has dtype {arr.dtype}; give uint8, uint16 or float pixels")
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[-1]
    if c in (2, 4):   # alpha: composite on white, so transparent backgrounds do not turn black
        alpha = arr[..., -1:].astype(np.float32) / 255.0
        colour = arr[..., :-1].astype(np.float32)
        arr = np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        c -= 1
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def _pil_to_rgb(img, what: str) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        img = ImageOps.exif_transpose(img)   # phone photos store rotation in EXIF
    except Exception:  # noqa: BLE001 - broken EXIF should not stop the image from loading
        pass
    if img.width == 0 or img.height == 0:
        raise InputError(f"{what} is empty (size {img.width}x{img.height}); give a non-empty image")
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        img = img.convert("RGB")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    return _image_array_to_rgb(np.asarray(img), what)


def _resize_rgb(image: np.ndarray, size) -> np.ndarray:
    """int: centre square crop then resize (aspect kept); (height, width): plain resize."""
    from PIL import Image

    if isinstance(size, (int, np.integer)):
        h, w = image.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        image = image[y0:y0 + s, x0:x0 + s]
        out_h = out_w = int(size)
    else:
        out_h, out_w = (int(v) for v in size)
    if out_h <= 0 or out_w <= 0:
        raise InputError(f"size must be positive, got {size}")
    if image.shape[:2] == (out_h, out_w):
        return image
    # LANCZOS in PIL widens its kernel when shrinking, so downscaling is anti-aliased
    return np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.LANCZOS, reducing_gap=3.0))


def read_image(path_or_array, size=None) -> np.ndarray:
    """Any image (file path, PIL image, numpy array or torch tensor) as uint8 RGB [H, W, 3].

    RGBA and palette images with transparency are composited on white; greyscale is repeated to RGB;
    16-bit images keep their top 8 bits; EXIF rotation is applied. size: an int gives a centre-cropped
    square of that side; (height, width) resizes to exactly that.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(path_or_array, (str, os.PathLike)):
        path = _existing_file(path_or_array, "image")
        what = f"image {path}"
        try:
            with Image.open(path) as img:
                img.load()   # decode now, so a truncated file fails here with a clear message
                image = _pil_to_rgb(img, what)
        except UnidentifiedImageError:
            raise InputError(f"cannot read image {path}: not an image format Pillow knows or the file is corrupt; "
                             "re-save it as PNG or JPEG") from None
        except Image.DecompressionBombError as e:
            raise InputError(f"image {path} is too large to open safely ({e}); downscale it first") from None
        except (OSError, SyntaxError, ValueError) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"cannot read image {path}: the file is corrupt or truncated ({e}); "
                             "re-save it as PNG or JPEG") from None
    elif isinstance(path_or_array, Image.Image):
        image = _pil_to_rgb(path_or_array, "image")
    else:
        arr = path_or_array
        if hasattr(arr, "detach"):   # torch tensor
            arr = arr.detach().cpu().numpy()
        if not isinstance(arr, np.ndarray):
            raise InputError(f"cannot read an image from {type(path_or_array).__name__}; give a file path, "
                             "a PIL image or an array")
        image = _image_array_to_rgb(arr, "image array")
    if size is not None:
        image = _resize_rgb(image, size)
    return image


# ------------------------------------------------------------------------------------------------- audio


def _resample(audio: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    if int(orig_sr) == int(sr):
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(int(orig_sr), int(sr))
    return resample_poly(audio, int(sr) // g, int(orig_sr) // g).astype(np.float32)


def _finish_audio(audio: np.ndarray, what: str) -> np.ndarray:
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.size == 0:
        raise InputError(f"{what} is empty (no samples); give a recording with speech in it")
    if not np.all(np.isfinite(audio)):
        raise InputError(f"{what} has NaN or Inf samples; give finite samples in [-1, 1]")
    return audio


def _array_to_mono(arr, what: str) -> np.ndarray:
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    elif arr.dtype == np.int32:
        arr = arr.astype(np.float32) / 2147483648.0
    elif arr.dtype == np.uint8:
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    elif not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{what} has dtype {arr.dtype}; give float samples in [-1, 1] or int16 PCM")
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        # (channels, samples) when the first axis is short, else (samples, channels)
        arr = arr.mean(axis=0) if arr.shape[0] <= 8 and arr.shape[1] > arr.shape[0] else arr.mean(axis=1)
    elif arr.ndim != 1:
        raise InputError(f"{what} has shape {arr.shape}; give mono [N] or multi-channel [N, C] samples")
    return arr


def _ffmpeg_audio(path: Path, sr: int) -> np.ndarray:
    """Decode the first audio stream to float32 mono at sr; ffmpeg downmixes and resamples while streaming."""
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
           "-ac", "1", "-ar", str(int(sr)), "-f", "f32le", "-"]
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf)
        chunks, rest = [], b""
        while True:
            buf = proc.stdout.read(1 << 20)
            if not buf:
                break
            buf = rest + buf
            cut = len(buf) // 4 * 4   # a pipe read can end mid-sample: keep the tail for the next chunk
            chunks.append(np.frombuffer(buf[:cut], np.float32))
            rest = buf[cut:]
        proc.stdout.close()
        rc = proc.wait()
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if rc != 0 and audio.size == 0:
        raise InputError(f"cannot decode the audio in {path}: {_last_error_line(err)}; the file may be corrupt "
                         "(re-export it as wav or mp3)")
    return audio


def read_audio(path_or_array, sr: int = SAMPLE_RATE, orig_sr: "int | None" = None) -> np.ndarray:
    """Audio from a file (anything ffmpeg reads, video files included) or an array, as float32 mono at sr.

    Arrays are taken to be at orig_sr (default: sr already); int16 PCM is scaled to [-1, 1]; stereo is
    averaged to mono; files longer than 10 minutes stream through ffmpeg, so only the 16 kHz result is held.
    Raises InputError for a missing, corrupt or empty file, a video with no audio track, and NaN/Inf samples.
    Silence is allowed here; `check_speech` rejects it.
    """
    if sr <= 0:
        raise InputError(f"sample rate must be positive, got {sr}")
    if not isinstance(path_or_array, (str, os.PathLike)):
        if isinstance(path_or_array, (bytes, bytearray)):
            raise InputError("read_audio got raw bytes; write them to a file or give a numpy array")
        audio = _array_to_mono(path_or_array, "audio array")
        audio = _finish_audio(audio, "audio array")
        return _finish_audio(_resample(audio, orig_sr or sr, sr), "audio array")

    path = _existing_file(path_or_array, "audio")
    what = f"audio in {path}"
    audio = None
    if path.suffix.lower() in _SOUNDFILE_EXT:
        # libsndfile is much faster than a process for wav/flac; anything it cannot read goes to ffmpeg
        import soundfile as sf

        try:
            info = sf.info(str(path))
            if info.frames <= _SOUNDFILE_MAX_FRAMES:
                data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
                audio = _resample(data.mean(axis=1), file_sr, sr)
        except Exception:  # noqa: BLE001 - fall through to ffmpeg, which gives the error message
            audio = None
    if audio is None:
        info = probe(path)
        if info["audio"] is None:
            if info["video"] is not None:
                raise InputError(f"{path} is a video with no audio track; give a file with speech in it, or pass "
                                 "the speech separately as a wav/mp3")
            raise InputError(f"{path} has no audio stream; give a wav, mp3, m4a, flac or ogg file with speech")
        audio = _ffmpeg_audio(path, sr)
    return _finish_audio(audio, what)


def check_speech(audio, min_dbfs: float = SILENCE_FLOOR_DBFS, name: str = "audio") -> np.ndarray:
    """Raise InputError when audio is silent (RMS below min_dbfs); returns the audio unchanged otherwise."""
    arr = np.asarray(audio.detach().cpu().numpy() if hasattr(audio, "detach") else audio, dtype=np.float32)
    if arr.size == 0:
        raise InputError(f"{name} is empty; give a recording with speech in it")
    rms = float(np.sqrt(np.mean(np.square(arr, dtype=np.float64))))
    dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    if dbfs < min_dbfs:
        raise InputError(f"{name} is silent (RMS {dbfs:.0f} dBFS, below the {min_dbfs:.0f} dBFS floor); "
                         "record louder or check the microphone, or synthesise speech")
    return audio


def write_audio(path, audio, sr: int = SAMPLE_RATE) -> Path:
    """Write audio (float [-1, 1], mono [N] or [N, C]) with soundfile; the suffix picks the format (wav, flac, ogg)."""
    import soundfile as sf

    arr = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] <= 8 and arr.shape[1] > arr.shape[0]:
        arr = arr.T   # soundfile wants (samples, channels)
    _finish_audio(arr, "audio to write")
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.clip(arr, -1.0, 1.0), int(sr))
    except (OSError, RuntimeError, TypeError, ValueError) as e:
        raise InputError(f"cannot write audio to {path} ({e}); use a writable folder and a .wav or .flac name"
                         ) from None
    return path


# ------------------------------------------------------------------------------------------------- video


def _frames_layout(frames):
    """(array-like in [T, H, W, C] order, to_uint8 function for one frame) for numpy or torch input."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputError("no frames to write; give at least one frame")
        first = frames[0]
        frames = (np.stack([f.detach().cpu().numpy() for f in frames]) if hasattr(first, "detach")
                  else np.stack([np.asarray(f) for f in frames]))
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu()
        if frames.ndim == 4 and frames.shape[1] in (1, 3, 4) and frames.shape[-1] not in (1, 3, 4):
            frames = frames.permute(0, 2, 3, 1)
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim == 4 and frames.shape[1] in (1, 3, 4) and frames.shape[-1] not in (1, 3, 4):
        frames = np.moveaxis(frames, 1, -1)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise InputError(f"frames have shape {frames.shape}; give [T, H, W, 3] (numpy) or [T, 3, H, W] (torch)")
    if 0 in frames.shape:
        raise InputError(f"frames have shape {frames.shape}; give at least one non-empty frame")
    if np.issubdtype(frames.dtype, np.floating):
        lo, hi = float(np.min(frames)), float(np.max(frames))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError("frames have NaN or Inf values; give finite values in [0, 1]")
        if lo < -0.05 or hi > 1.05:
            raise InputError(f"float frames must be in [0, 1], got [{lo:.3g}, {hi:.3g}]; for [-1, 1] outputs use "
                             "(x + 1) / 2, for 0-255 floats divide by 255 or cast to uint8")

        def to_uint8(f):
            return np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
    elif frames.dtype == np.uint8:
        def to_uint8(f):
            return f
    else:
        raise InputError(f"frames have dtype {frames.dtype}; give uint8 [0, 255] or float [0, 1] frames")

    def to_rgb(f):
        f = to_uint8(f)
        if f.shape[-1] == 1:
            f = np.repeat(f, 3, axis=-1)
        elif f.shape[-1] == 4:
            f = f[..., :3]
        return f

    return frames, to_rgb


def _rate_str(fps: float) -> str:
    return str(Fraction(fps).limit_denominator(1001))


def check_video_path(path) -> Path:
    """The path of a video to write, checked before any work: an .mp4 name in a writable folder (created if
    missing); an InputError says what to change."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in _VIDEO_EXT:
        raise InputError(f"cannot write {path}: videos are written as H.264 MP4, so name the file .mp4")
    if path.is_dir():
        raise InputError(f"cannot write video to {path}: it is a folder; give a file name ending in .mp4")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the folder for {path} ({e.strerror or e}); choose a writable location"
                         ) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write video to {path}: permission denied; choose a writable location")
    return path


def _temp_name(parent: Path, suffix: str) -> Path:
    try:
        fd, name = tempfile.mkstemp(suffix=suffix, prefix=".vasa_tmp_", dir=parent)
    except OSError as e:
        raise InputError(f"cannot write in {parent} ({e.strerror or e}); choose a writable location") from None
    os.close(fd)
    return Path(name)


def write_video(path, frames, fps: float = FPS, audio=None, sr: int = SAMPLE_RATE, crf: int = 18) -> Path:
    """Write frames as an H.264 MP4 (yuv420p, plays in browsers), with the speech muxed in as AAC.

    frames: uint8 [T, H, W, 3], float [0, 1], or a torch tensor [T, 3, H, W]. Odd sizes are padded by one
    edge pixel (yuv420p needs even sizes). audio: samples at sr, or a path; it is padded with silence to
    the video's length so `-shortest` never cuts frames. crf: x264 quality (lower is better, 18 is
    near-lossless to the eye). Returns the path.
    """
    if not (isinstance(fps, (int, float)) and fps > 0 and math.isfinite(fps)):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    path = check_video_path(path)
    frames, to_rgb = _frames_layout(frames)
    t, h, w = frames.shape[:3]
    pad_h, pad_w = h % 2, w % 2
    if audio is not None:
        audio = read_audio(audio, sr=sr)
        n = int(round(t / fps * sr))
        if len(audio) < n:
            audio = np.concatenate([audio, np.zeros(n - len(audio), np.float32)])

    video_tmp = _temp_name(path.parent, ".mp4")
    tmps = [video_tmp]
    try:
        cmd = [ffmpeg_exe(), "-y", "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w + pad_w}x{h + pad_h}", "-r", _rate_str(fps), "-i", "-", "-an",
               "-c:v", "libx264", "-preset", "medium", "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
               "-movflags", "+faststart", "-f", "mp4", str(video_tmp)]
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errf)
            try:
                for i in range(t):
                    frame = to_rgb(frames[i])
                    if pad_h or pad_w:
                        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                    proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()
            rc = proc.wait()
            errf.seek(0)
            err = errf.read().decode(errors="replace")
        if rc != 0:
            raise InputError(f"ffmpeg could not encode {path}: {_last_error_line(err)}")
        if audio is None:
            os.replace(video_tmp, path)
            return path

        wav_tmp = _temp_name(path.parent, ".wav")
        muxed_tmp = _temp_name(path.parent, ".mp4")
        tmps += [wav_tmp, muxed_tmp]
        write_audio(wav_tmp, audio, sr)
        # mediapy writes no audio, so mux it here; the video stream is copied, not re-encoded
        cmd = [ffmpeg_exe(), "-y", "-nostdin", "-v", "error", "-i", str(video_tmp), "-i", str(wav_tmp),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-shortest",
               "-movflags", "+faststart", "-f", "mp4", str(muxed_tmp)]
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if res.returncode != 0:
            raise InputError(f"ffmpeg could not add the audio to {path}: {_last_error_line(res.stderr)}")
        os.replace(muxed_tmp, path)
        return path
    except PermissionError as e:
        raise InputError(f"cannot write video to {path} ({e.strerror}); choose a writable location") from None
    finally:
        for tmp in tmps:
            try:
                tmp.unlink()
            except OSError:
                pass


def _size_filter(size) -> "tuple[str, int, int]":
    """ffmpeg filter for read sizes: int = centre square crop + resize, (height, width) = plain resize."""
    if isinstance(size, (int, np.integer)):
        s = int(size)
        if s <= 0:
            raise InputError(f"size must be positive, got {size}")
        return f"crop='min(iw,ih)':'min(iw,ih)',scale={s}:{s}:flags=lanczos", s, s
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise InputError(f"size must be positive, got {size}")
    return f"scale={w}:{h}:flags=lanczos", h, w


def iter_frames(path, fps: "float | None" = None, size=None, start: float = 0.0,
                max_frames: "int | None" = None, info: "dict | None" = None) -> Iterator[np.ndarray]:
    """Stream uint8 RGB frames [H, W, 3] from a video, one at a time (memory stays at one frame).

    fps resamples with ffmpeg's fps filter (drops or repeats frames by timestamp); size as in read_video;
    start seeks (seconds) and max_frames stops early. info: `probe(path)`'s result, if already known.
    """
    path = _existing_file(path, "video")
    info = info or probe(path)
    if info["video"] is None:
        raise InputError(f"{path} has no video stream; give an mp4/mov/mkv/webm video")
    h, w = info["video"]["height"], info["video"]["width"]
    filters = []
    if fps is not None:
        if not fps > 0:
            raise InputError(f"fps must be positive, got {fps}")
        filters.append(f"fps={_rate_str(fps)}")
    if size is not None:
        f, h, w = _size_filter(size)
        filters.append(f)
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error"]
    if start:
        cmd += ["-ss", f"{float(start):.6f}"]
    cmd += ["-i", str(path), "-map", "0:v:0", "-an", "-sn"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    if max_frames is not None:
        cmd += ["-frames:v", str(int(max_frames))]
    # passthrough keeps decoded frames as they are: the old `-vsync 0`, which ffmpeg 9 no longer accepts
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    nbytes = h * w * 3
    errf = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf)
    count = 0
    try:
        while True:
            buf = proc.stdout.read(nbytes)
            if len(buf) < nbytes:
                break
            count += 1
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        proc.stdout.close()
        rc = proc.wait()
        if rc != 0 and count == 0:
            errf.seek(0)
            err = errf.read().decode(errors="replace")
            raise InputError(f"cannot decode the video in {path}: {_last_error_line(err)}; the file may be corrupt")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        errf.close()


def read_video(path, fps: "float | None" = None, size=None, sr: int = SAMPLE_RATE):
    """Read a video: (frames uint8 [T, H, W, 3], fps, audio float32 mono at sr or None when it has none).

    fps: resample to this rate (ffmpeg's fps filter); size: int for a centre-cropped square of that side,
    or (height, width).
    """
    path = _existing_file(path, "video")
    info = probe(path)
    if info["video"] is None:
        raise InputError(f"{path} has no video stream; give an mp4/mov/mkv/webm video")
    frames = [f.copy() for f in iter_frames(path, fps=fps, size=size, info=info)]
    if not frames:
        raise InputError(f"{path} has no decodable frames; the video may be corrupt or empty")
    out_fps = float(fps) if fps is not None else float(info["video"]["fps"] or FPS)
    audio = read_audio(path, sr=sr) if info["audio"] is not None else None
    return np.stack(frames), out_fps, audio


def video_data_uri(path_or_frames, audio=None, fps: float = FPS, sr: int = SAMPLE_RATE) -> "tuple[str, int]":
    """The clip as a data URI (an MP4 with its sound, base64) and its native width in px: what an HTML <video> needs.
    Give a path to an mp4, or frames (with optional audio) that are encoded first."""
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(path_or_frames, (str, os.PathLike)):
            path = _existing_file(path_or_frames, "video")
            if audio is not None:
                frames, in_fps, _ = read_video(path)
                path = write_video(Path(tmp) / "clip.mp4", frames, fps=in_fps, audio=audio, sr=sr)
        else:
            path = write_video(Path(tmp) / "clip.mp4", path_or_frames, fps=fps, audio=audio, sr=sr)
        info = probe(path)
        native = int(info["video"]["width"]) if info["video"] else 256
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    mime = "video/webm" if Path(path).suffix.lower() == ".webm" else "video/mp4"
    return f"data:{mime};base64,{data}", native


def show_video(path_or_frames, audio=None, width: "int | None" = None, fps: float = FPS, sr: int = SAMPLE_RATE):
    """An HTML `<video controls>` with the MP4 embedded as a data URI, so notebooks play it with sound.

    Give a path to an mp4, or frames (with optional audio) that are encoded first. width: display width in
    px; None shows the clip at its size but at least 256 px, so 64 px clips stay visible.
    """
    from IPython.display import HTML

    uri, native = video_data_uri(path_or_frames, audio, fps, sr)
    width = max(native, 256) if width is None else width
    mime = uri[5:uri.index(";")]
    return HTML(f'<video controls playsinline width="{int(width)}">'
                f'<source src="{uri}" type="{mime}">'
                "Your browser cannot play this video.</video>")
