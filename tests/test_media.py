"""Media I/O: what goes in comes back out (frames, rate, sound), and every bad file is one clear InputError."""
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from vasa_lite import InputError, media
from vasa_lite.world.params import SAMPLES_PER_FRAME


def dominant_hz(audio, sr=16000):
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return np.argmax(spec) * sr / len(audio)


def moving_square(t=30, h=48, w=64, side=12):
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, 10:10 + side, i:i + side] = (255, 200, 40)
    return frames


def square_x(frame):
    """Column of the square's left edge, from the bright pixels."""
    cols = np.nonzero(frame[..., 0].max(axis=0) > 128)[0]
    return cols.min()


def ffmpeg_convert(ffmpeg, src, dst, *args):
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", str(src), *args, str(dst)], check=True)
    return dst


# ------------------------------------------------------------------------------------------------ video


def test_ffmpeg_binary_is_the_shipped_one():
    assert "imageio_ffmpeg" in media.ffmpeg_exe()
    assert media.ffmpeg_version() != "unknown"


def test_video_round_trip_keeps_frames_rate_and_sound(tmp_path, tone):
    frames = moving_square()
    audio = tone(440, len(frames) * SAMPLES_PER_FRAME / 16000)
    path = media.write_video(tmp_path / "sub" / "clip.mp4", frames, fps=25, audio=audio)
    assert path.exists() and path.suffix == ".mp4"

    info = media.probe(path)
    assert info["audio"] is not None and info["video"]["fps"] == 25

    back, fps, sound = media.read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8 and fps == 25
    for i in (0, 15, 29):   # the square moves one pixel per frame, and comes back where it was written
        assert abs(square_x(back[i]) - i) <= 1
    assert np.abs(back.astype(int) - frames).mean() < 3
    assert abs(len(sound) - len(audio)) <= SAMPLES_PER_FRAME
    assert abs(dominant_hz(sound) - 440) < 3


def test_write_video_takes_torch_float_and_odd_sizes(tmp_path):
    frames = torch.rand(5, 3, 33, 47)
    path = media.write_video(tmp_path / "odd.mp4", frames, fps=10)
    back, fps, sound = media.read_video(path)
    assert back.shape == (5, 34, 48, 3) and fps == 10 and sound is None


def test_read_video_resamples_fps_and_size(tmp_path):
    path = media.write_video(tmp_path / "c30.mp4", moving_square(t=30), fps=30)
    frames, fps, _ = media.read_video(path, fps=25, size=32)
    assert fps == 25 and frames.shape == (25, 32, 32, 3)


def test_write_video_bad_inputs(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="writable"):
        media.write_video(blocker / "out.mp4", moving_square(t=2))
    with pytest.raises(InputError, match=r"\.mp4"):
        media.write_video(tmp_path / "out.avi", moving_square(t=2))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        media.write_video(tmp_path / "out.mp4", np.full((2, 8, 8, 3), 2.0 * 255))
    with pytest.raises(InputError, match="NaN"):
        media.write_video(tmp_path / "out.mp4", np.full((2, 8, 8, 3), np.nan, np.float32))


def test_show_video_embeds_a_playable_unmuted_player(tmp_path, tone):
    html = media.show_video(moving_square(t=10), audio=tone(300, 0.4)).data
    assert "<video" in html and "controls" in html and "muted" not in html and "base64," in html
    path = media.write_video(tmp_path / "c.mp4", moving_square(t=5))
    assert "<video" in media.show_video(path, width=200).data


# ------------------------------------------------------------------------------------------------ images


def test_read_image_formats(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[:, :15] = (255, 0, 0, 255)   # opaque red left half, transparent right half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = media.read_image(tmp_path / "rgba.png")
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[0, -1]) == (255, 255, 255)

    Image.fromarray(np.full((10, 12), 77, np.uint8), "L").save(tmp_path / "grey.png")
    assert np.all(media.read_image(tmp_path / "grey.png") == 77)

    deep = np.full((10, 12), 40000, np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    img = media.read_image(str(tmp_path / "deep.png"))
    assert img.shape == (10, 12, 3) and abs(int(img[0, 0, 0]) - 40000 // 257) <= 1

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P").save(tmp_path / "pal.gif")
    assert media.read_image(tmp_path / "pal.gif").shape == (8, 8, 3)

    assert media.read_image(torch.rand(3, 16, 24)).shape == (16, 24, 3)
    assert media.read_image(Image.new("RGB", (40, 20)), size=16).shape == (16, 16, 3)


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        media.read_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(InputError, match="cannot read image"):
        media.read_image(tmp_path / "junk.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt|truncated"):
        media.read_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="empty"):
        media.read_image(np.zeros((0, 5, 3), np.uint8))


# ------------------------------------------------------------------------------------------------ audio


def test_read_audio_resamples_and_downmixes(tmp_path, tone):
    stereo = np.stack([tone(440, 1.0, sr=48000), tone(440, 1.0, sr=48000)], axis=1)
    sf.write(tmp_path / "st48.wav", stereo, 48000)
    audio = media.read_audio(tmp_path / "st48.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) == 16000
    assert abs(dominant_hz(audio) - 440) < 3 and abs(np.abs(audio).max() - 0.3) < 0.02

    sf.write(tmp_path / "n8.wav", tone(300, 0.5, sr=8000), 8000)
    audio = media.read_audio(tmp_path / "n8.wav")
    assert len(audio) == 8000 and abs(dominant_hz(audio) - 300) < 3

    assert len(media.read_audio(tone(440, 1.0, sr=44100), orig_sr=44100)) == 16000


@pytest.mark.parametrize("ext,codec", [("mp3", "libmp3lame"), ("m4a", "aac")])
def test_read_audio_compressed(tmp_path, tone, ffmpeg, ext, codec):
    stereo = np.stack([tone(500, 1.0, sr=44100)] * 2, axis=1)
    sf.write(tmp_path / "src.wav", stereo, 44100)
    path = ffmpeg_convert(ffmpeg, tmp_path / "src.wav", tmp_path / f"speech.{ext}", "-c:a", codec)
    audio = media.read_audio(path)
    assert abs(len(audio) - 16000) < 0.06 * 16000   # encoders add a little padding
    assert abs(dominant_hz(audio) - 500) < 3


def test_read_audio_errors(tmp_path, tone):
    with pytest.raises(InputError, match="not found"):
        media.read_audio(tmp_path / "missing.wav")
    silent_video = media.write_video(tmp_path / "mute.mp4", moving_square(t=3))
    with pytest.raises(InputError, match="no audio track"):
        media.read_audio(silent_video)
    bad = tone(440, 0.2)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        media.read_audio(tmp_path / "nan.wav")
    with pytest.raises(InputError, match="NaN"):
        media.read_audio(bad)
    (tmp_path / "junk.mp3").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InputError, match="corrupt"):
        media.read_audio(tmp_path / "junk.mp3")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="empty"):
        media.read_audio(tmp_path / "empty.wav")


def test_check_speech_rejects_silence(tone):
    with pytest.raises(InputError, match="silent"):
        media.check_speech(np.zeros(16000, np.float32))
    with pytest.raises(InputError, match="silent"):
        media.check_speech(tone(440, 1.0, amp=1e-5))
    speech = tone(440, 1.0)
    assert media.check_speech(speech) is speech


def test_write_audio_round_trip(tmp_path, tone):
    path = media.write_audio(tmp_path / "deep" / "a.wav", tone(440, 0.5), 16000)
    audio = media.read_audio(path)
    assert len(audio) == 8000 and abs(dominant_hz(audio) - 440) < 3
