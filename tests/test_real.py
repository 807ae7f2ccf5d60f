"""Real media: the shipped portraits are found and framed, non-faces are refused, and real talking videos
become course clips (25 fps, face crops, 640 audio samples per frame)."""
import time

import numpy as np
import pytest
import torch
from skimage import data

from vasa_lite import InputError, media, real
from vasa_lite.world.params import SAMPLES_PER_FRAME


def face_centre_and_size(crop):
    (x, y, w, h), _ = real.detect_face(crop)
    return (x + w / 2) / crop.shape[1], (y + h / 2) / crop.shape[0], w / crop.shape[1]


@pytest.mark.parametrize("name", real.PORTRAITS)
def test_portraits_are_detected_and_framed(name):
    image = real.load_portrait(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and min(image.shape[:2]) >= 512
    box, score = real.detect_face(image)
    assert score >= real.MIN_HITS and 60 < box[2] < 300
    crop = real.align_crop(image, size=128, box=box)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    cx, cy, frac = face_centre_and_size(crop)   # the face found again in the crop sits in the middle
    assert abs(cx - 0.5) < 0.1 and abs(cy - 0.5) < 0.1
    assert abs(frac - 1 / (1 + 2 * real.MARGIN)) < 0.12


@pytest.mark.parametrize("image", [
    data.coffee(),
    np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 1, 3)),
    np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8),
], ids=["coffee", "gradient", "noise"])
def test_non_faces_are_refused(image):
    with pytest.raises(InputError, match="no face found.*frontal portrait"):
        real.align_crop(image)


def test_small_and_huge_images():
    with pytest.raises(InputError, match="too small"):
        real.detect_face(np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(InputError, match="unknown portrait"):
        real.load_portrait("mona_lisa")
    # a very wide canvas is downscaled for detection, and the box still comes back in its own pixels
    canvas = np.full((512, 8200, 3), 200, np.uint8)
    canvas[:, 5000:5512] = data.astronaut()
    (x, y, w, h), _ = real.detect_face(canvas)
    assert 5150 < x < 5200 and 40 < y < 90 and 80 < w < 120
    assert real.align_crop(canvas, size=64, box=(x, y, w, h)).shape == (64, 64, 3)


# ------------------------------------------------------------------------------------------ VideoFolder


def animated_astronaut(n=30, out=160):
    """The astronaut's head, drifting and zooming a little over n frames."""
    image = data.astronaut()
    frames = []
    for i in range(n):
        phase = 2 * np.pi * i / n
        side = 240 * (1 + 0.05 * np.sin(phase))
        cx, cy = 225 + 6 * np.cos(phase), 125 + 4 * np.sin(phase)
        frames.append(real.crop_region(image, (cx - side / 2, cy - side / 2, side), out))
    return np.stack(frames)


@pytest.fixture(scope="module")
def talking_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("talking")
    rng = np.random.default_rng(0)
    seconds = 30 / 30
    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    media.write_video(root / "astro.mp4", animated_astronaut(30), fps=30, audio=audio)
    return root


def test_video_folder_makes_aligned_clips(talking_folder, tmp_path):
    ds = real.VideoFolder(talking_folder, size=64, cache_dir=tmp_path / "cache")
    assert len(ds) == 1
    item = ds[0]
    frames, audio = item["frames"], item["audio"]
    assert item["fps"] == 25 and item["path"].endswith("astro.mp4")
    assert frames.dtype == torch.uint8 and frames.shape == (25, 3, 64, 64)   # 1 s at 30 fps -> 25 frames
    assert audio.dtype == torch.float32 and audio.shape == (25 * SAMPLES_PER_FRAME,)
    spec = np.abs(np.fft.rfft(audio.numpy()))
    assert abs(np.argmax(spec) * 16000 / len(audio) - 220) < 3


def test_video_folder_crop_is_centred_on_the_face(talking_folder):
    ds = real.VideoFolder(talking_folder, size=128)
    frame = ds[0]["frames"][12].permute(1, 2, 0).numpy()
    cx, cy, frac = face_centre_and_size(frame)
    assert abs(cx - 0.5) < 0.12 and abs(cy - 0.5) < 0.12 and 0.35 < frac < 0.7


def test_video_folder_cache_is_reused(talking_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    t0 = time.perf_counter()
    first = real.VideoFolder(talking_folder, size=64, cache_dir=cache)[0]
    t_first = time.perf_counter() - t0
    assert len(list(cache.glob("*.npz"))) == 1

    def no_processing(self, path):
        raise AssertionError("the cached clip should have been used")

    monkeypatch.setattr(real.VideoFolder, "process", no_processing)
    t0 = time.perf_counter()
    second = real.VideoFolder(talking_folder, size=64, cache_dir=cache)[0]
    t_second = time.perf_counter() - t0
    assert torch.equal(first["frames"], second["frames"]) and torch.equal(first["audio"], second["audio"])
    assert t_second < t_first


def test_video_folder_windows(talking_folder, tmp_path):
    cache = tmp_path / "cache"
    ds = real.VideoFolder(talking_folder, size=64, cache_dir=cache, window=10, float_frames=True)
    item = ds[0]
    assert item["frames"].shape == (10, 3, 64, 64) and item["frames"].dtype == torch.float32
    assert item["audio"].shape == (10 * SAMPLES_PER_FRAME,)
    seq = real.VideoFolder(talking_folder, size=64, cache_dir=cache, window=10, random_window=False)
    assert len(seq) == 2 and [seq[i]["start"] for i in range(2)] == [0, 10]
    whole = seq.clip(0)
    assert np.array_equal(seq[1]["audio"].numpy(), whole["audio"][10 * SAMPLES_PER_FRAME:20 * SAMPLES_PER_FRAME])


def test_video_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no videos"):
        real.VideoFolder(tmp_path)
    mute = tmp_path / "mute"
    media.write_video(mute / "silent_film.mp4", animated_astronaut(4), fps=25)
    with pytest.raises(InputError, match="silent_film.mp4 has no audio track"):
        real.VideoFolder(mute)
