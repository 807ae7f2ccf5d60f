"""Real media: portraits that ship inside packages, a face detector, aligned crops, and real talking videos.

The course trains on rendered faces, so a real portrait must be framed like a render before a model sees
it: face centred, face box a fixed fraction of the frame. Detection uses scikit-image's LBP frontal-face
cascade (no download), and every crop goes through `face_region` + `crop_region`, so stills and video
frames are framed by the same two numbers, `margin` and `shift_y`.
"""
from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from vasa_lite import media
from vasa_lite.errors import InputError
from vasa_lite.world.params import FPS, SAMPLE_RATE

PORTRAITS = ["grace_hopper", "astronaut"]

MIN_SIDE = 64          # smaller images hold too few pixels for the cascade's 24 px window
MAX_SIDE = 8000        # larger images are downscaled to this longer side first
DETECT_SIDE = 320      # detection runs with the shorter side at this size: fast, and hit counts comparable
MIN_HITS = 6           # raw cascade windows that must agree; real faces here give 10-20, clutter 1-4

# Framing: the crop's side is the face box's side times (1 + 2 * margin), so with margin=0.5 the face box
# (brows to chin) spans half the frame; shift_y moves the crop centre down by that many face-box heights.
MARGIN = 0.5
SHIFT_Y = 0.0

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
_CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------- portraits


def load_portrait(name) -> np.ndarray:
    """A real portrait as uint8 RGB: "grace_hopper" (matplotlib), "astronaut" (scikit-image), or an image path."""
    if isinstance(name, str) and name in PORTRAITS:
        if name == "grace_hopper":
            from matplotlib import cbook

            return media.read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        from skimage import data

        return media.read_image(data.astronaut())
    if isinstance(name, (str, os.PathLike)):
        if not Path(name).expanduser().exists():
            raise InputError(f"unknown portrait '{name}': not one of {PORTRAITS} and no such image file; "
                             "give one of those names or the path of a frontal portrait")
        return media.read_image(name)
    return media.read_image(name)


def _prepare(image, what: str) -> "tuple[np.ndarray, float]":
    """uint8 RGB image with the size checks; returns (image, scale) where scale maps original px to these."""
    image = media.read_image(image)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{what} is {w}x{h} px, too small to find a face in; use a portrait at least "
                         f"{MIN_SIDE} px on its shorter side")
    scale = 1.0
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        image = _resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
    return image, scale


def _resize(image: np.ndarray, hw) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), Image.LANCZOS, reducing_gap=3.0))


def _describe(image) -> str:
    return f"image {image}" if isinstance(image, (str, os.PathLike)) else "the image"


# --------------------------------------------------------------------------------------------- detection


@functools.lru_cache(maxsize=1)
def _cascade():
    from skimage import data
    from skimage.feature import Cascade

    return Cascade(data.lbp_frontal_face_cascade_filename())


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter)


def detect_face(image, min_hits: int = MIN_HITS) -> "tuple[tuple[float, float, float, float], float]":
    """The most confident frontal face: ((x, y, w, h) in the image's pixels, score).

    The cascade scans every window position at scales from 1/8 of the shorter side up to all of it, with
    merging turned off; windows that overlap a face's box vote for it. The face is the box with most votes
    (ties go to the larger), score is its vote count, and fewer than min_hits votes means no face.
    """
    from PIL import Image

    what = _describe(image)
    img, scale = _prepare(image, what)
    h, w = img.shape[:2]
    f = DETECT_SIDE / min(h, w)
    grey = Image.fromarray(img).convert("L").resize((max(1, round(w * f)), max(1, round(h * f))),
                                                    Image.LANCZOS, reducing_gap=3.0)
    grey = np.asarray(grey, dtype=np.float32) / 255.0
    side = min(grey.shape)
    min_win = max(24, side // 8)
    raw = _cascade().detect_multi_scale(img=grey, scale_factor=1.15, step_ratio=1.0, min_size=(min_win, min_win),
                                        max_size=(side, side), min_neighbor_number=1,
                                        intersection_score_threshold=1.01)
    best_votes, best_box = 0, None
    if raw:
        boxes = np.array([[d["c"], d["r"], d["width"], d["height"]] for d in raw], dtype=np.float64)
        overlap = np.stack([_iou(b, boxes) for b in boxes]) > 0.3
        votes = overlap.sum(axis=1)
        # most votes first, then the larger window
        i = max(range(len(boxes)), key=lambda k: (votes[k], boxes[k, 2]))
        best_votes, best_box = int(votes[i]), boxes[overlap[i]].mean(axis=0)
    if best_box is None or best_votes < min_hits:
        raise InputError(f"no face found in {what}; use a frontal portrait with the face clearly visible "
                         f"(face detector score {best_votes}, needs {min_hits})")
    x, y, bw, bh = (best_box / f / scale).tolist()
    return (x, y, bw, bh), float(best_votes)


# ---------------------------------------------------------------------------------------------- cropping


def face_region(box, margin: float = MARGIN, shift_y: float = SHIFT_Y) -> "tuple[float, float, float]":
    """The square crop (x0, y0, side) that frames a face box like the course's renders."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise InputError(f"face box must have positive width and height, got {tuple(box)}")
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0 + shift_y * h
    return cx - side / 2.0, cy - side / 2.0, side


def crop_region(image: np.ndarray, region, size: int = 128) -> np.ndarray:
    """Crop a square (x0, y0, side) out of a uint8 RGB image, resized to size x size with anti-aliasing.

    Parts of the square outside the image repeat the edge pixels, so a face near the border stays centred.
    """
    from PIL import Image

    x0, y0, side = (float(v) for v in region)
    h, w = image.shape[:2]
    left = max(0, math.ceil(-x0))
    top = max(0, math.ceil(-y0))
    right = max(0, math.ceil(x0 + side - w))
    bottom = max(0, math.ceil(y0 + side - h))
    if left or top or right or bottom:
        image = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="edge")
        x0, y0 = x0 + left, y0 + top
    box = (x0, y0, x0 + side, y0 + side)
    # PIL's box argument crops at sub-pixel precision, and LANCZOS widens when shrinking (anti-aliasing)
    out = Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.LANCZOS, box=box,
                                                             reducing_gap=3.0)
    return np.asarray(out)


def align_crop(image, size: int = 128, box=None, margin: float = MARGIN, shift_y: float = SHIFT_Y) -> np.ndarray:
    """A size x size uint8 RGB crop with the face centred and framed like the renders.

    box: (x, y, w, h) in the image's pixels (default: `detect_face`). margin, shift_y: see `face_region`.
    """
    if int(size) < 8:
        raise InputError(f"crop size must be at least 8 px, got {size}")
    what = _describe(image)
    img, scale = _prepare(image, what)
    if box is None:
        box, _ = detect_face(img)
    else:
        box = tuple(float(v) * scale for v in box)
    return crop_region(img, face_region(box, margin, shift_y), int(size))


# ------------------------------------------------------------------------------------------ real videos


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class VideoFolder(torch.utils.data.Dataset):
    """Real talking videos in a folder, as the course's clips: face-cropped frames plus aligned speech.

    Each video gets one crop box (the median of the faces found on `n_detect` frames spread over the clip)
    so the crop does not jitter; every frame is cropped with it and resized to `size`, the video is resampled
    to `fps`, and the audio to 16 kHz mono, padded or cut so len(audio) == n_frames * SAMPLE_RATE / fps.
    Processed clips are cached as .npz under cache_dir (keyed by the file's hash and these parameters), or
    only kept in memory when cache_dir is None; with a cache, the keep_in_memory most recent clips stay loaded.

    Items: {'frames': uint8 [T, 3, H, W] (float [0, 1] with float_frames=True), 'audio': float32 [T * 640],
    'fps', 'path', 'start'}. With window=W, items are W-frame windows: a random one per video
    (random_window=True, len = number of videos) or every non-overlapping window in order.
    """

    def __init__(self, root, size: int = 128, fps: float = FPS, cache_dir=None, window: "int | None" = None,
                 random_window: bool = True, margin: float = MARGIN, shift_y: float = SHIFT_Y,
                 n_detect: int = 5, float_frames: bool = False, keep_in_memory: int = 8):
        root = Path(root).expanduser()
        if not root.exists():
            raise InputError(f"video folder not found: {root}; check the path")
        if root.is_file():
            files = [root] if root.suffix.lower() in VIDEO_EXTENSIONS else []
        else:
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                           and not p.name.startswith("."))
        if not files:
            raise InputError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found in {root}; put talking-face "
                             "videos with their audio in it")
        spf = SAMPLE_RATE / fps
        if fps <= 0 or abs(spf - round(spf)) > 1e-9:
            raise InputError(f"fps={fps} does not divide {SAMPLE_RATE} Hz into whole samples per frame; use 25")
        if window is not None and int(window) < 1:
            raise InputError(f"window must be a positive number of frames, got {window}")
        self.root, self.files = root, files
        self.size, self.fps, self.samples_per_frame = int(size), float(fps), int(round(spf))
        self.window, self.random_window = (int(window) if window is not None else None), random_window
        self.margin, self.shift_y, self.n_detect = float(margin), float(shift_y), int(n_detect)
        self.float_frames = float_frames
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        # clips stay in memory (all of them without a cache, the most recent few with one), so random
        # windows do not reload a whole clip from disk every step
        self._memo: OrderedDict = OrderedDict()
        self._memo_max = None if self.cache_dir is None else int(keep_in_memory)
        self._keys = [self._cache_key(p) for p in files]
        for path, key in zip(files, self._keys):
            if not self._cached(key):
                self._check_streams(path)   # fail at construction, naming the file, not mid-training
        self._index = None
        if self.window is not None and not random_window:
            self._index = [(i, s) for i in range(len(files))
                           for s in range(0, self._n_frames(i) - self.window + 1, self.window)]
            if not self._index:
                raise InputError(f"every video in {root} is shorter than window={self.window} frames; "
                                 "lower the window or add longer videos")

    # --- processing

    def _cache_key(self, path: Path) -> str:
        params = f"v{_CACHE_VERSION}-{self.size}-{self.fps:g}-{self.margin:g}-{self.shift_y:g}-{self.n_detect}"
        return f"{path.stem[:40]}-{_file_hash(path)}-{hashlib.sha256(params.encode()).hexdigest()[:8]}"

    def _cache_path(self, key: str) -> "Path | None":
        return self.cache_dir / f"{key}.npz" if self.cache_dir is not None else None

    def _cached(self, key: str) -> bool:
        p = self._cache_path(key)
        return key in self._memo or (p is not None and p.exists())

    @staticmethod
    def _check_streams(path: Path) -> dict:
        info = media.probe(path)
        if info["video"] is None:
            raise InputError(f"{path} has no video stream; VideoFolder needs talking-face videos")
        if info["audio"] is None:
            raise InputError(f"video {path} has no audio track; VideoFolder needs talking videos with their "
                             "speech (mp4 with audio); remove the file or add its audio")
        return info

    def face_box(self, path) -> "tuple[float, float, float, float]":
        """One face box for the whole video: the median over faces found on frames spread through it."""
        path = Path(path)
        info = self._check_streams(path)
        duration = info["duration"] or 0.0
        times = [(k + 0.5) / self.n_detect * duration for k in range(self.n_detect)] if duration else [0.0]
        boxes = []
        for t in times:
            frame = next(media.iter_frames(path, start=t, max_frames=1, info=info), None)
            if frame is None:
                continue
            try:
                boxes.append(detect_face(frame)[0])
            except InputError:
                continue
        if not boxes:
            raise InputError(f"no face found in video {path} (checked {len(times)} frames); use a video of a "
                             "frontal talking face, clearly visible")
        b = np.array(boxes)
        centre = np.median(b[:, :2] + b[:, 2:] / 2, axis=0)
        side = float(np.median(b[:, 2:].max(axis=1)))
        return float(centre[0] - side / 2), float(centre[1] - side / 2), side, side

    def process(self, path) -> dict:
        """Process one video: {'frames': uint8 [T, H, W, 3], 'audio': float32 [T * spf], 'box': (x, y, w, h)}."""
        path = Path(path)
        box = self.face_box(path)
        region = face_region(box, self.margin, self.shift_y)
        frames = [crop_region(f, region, self.size) for f in media.iter_frames(path, fps=self.fps)]
        if not frames:
            raise InputError(f"video {path} has no decodable frames; it may be corrupt")
        frames = np.stack(frames)
        audio = media.read_audio(path, sr=SAMPLE_RATE)
        n = len(frames) * self.samples_per_frame
        audio = audio[:n] if len(audio) >= n else np.concatenate([audio, np.zeros(n - len(audio), np.float32)])
        return {"frames": frames, "audio": audio.astype(np.float32), "box": np.array(box, np.float32)}

    def clip(self, i: int) -> dict:
        """The whole processed clip i (numpy), from memory, the cache, or processed now."""
        key = self._keys[i]
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        cache = self._cache_path(key)
        clip = None
        if cache is not None and cache.exists():
            try:
                with np.load(cache) as z:
                    clip = {k: z[k] for k in ("frames", "audio", "box")}
            except Exception:  # noqa: BLE001 - a broken cache file is rebuilt, never trusted
                clip = None
        if clip is None:
            clip = self.process(self.files[i])
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(suffix=".npz", dir=cache.parent)
                os.close(fd)
                np.savez(tmp, **clip)
                os.replace(tmp, cache)   # atomic, so a killed run never leaves half a cache file
        self._memo[key] = clip
        while self._memo_max is not None and len(self._memo) > self._memo_max:
            self._memo.popitem(last=False)
        return clip

    def _n_frames(self, i: int) -> int:
        return len(self.clip(i)["frames"])

    # --- Dataset

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else len(self.files)

    def __getitem__(self, idx: int) -> dict:
        if self._index is not None:
            i, start = self._index[idx]
        else:
            i, start = idx, 0
        clip = self.clip(i)
        frames, audio = clip["frames"], clip["audio"]
        if self.window is not None:
            t = len(frames)
            if t < self.window:
                raise InputError(f"video {self.files[i]} has {t} frames at {self.fps:g} fps, fewer than "
                                 f"window={self.window}; lower the window or remove the file")
            if self._index is None and self.random_window:
                start = int(torch.randint(0, t - self.window + 1, ()).item())
            frames = frames[start:start + self.window]
            spf = self.samples_per_frame
            audio = audio[start * spf:(start + self.window) * spf]
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()
        if self.float_frames:
            x = x.float() / 255.0
        return {"frames": x, "audio": torch.from_numpy(np.array(audio, np.float32)), "fps": self.fps,
                "path": str(self.files[i]), "start": start}
