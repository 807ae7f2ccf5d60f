"""`vasa-lite inspect`: tell a student whether a file of theirs can be used, and how the course will read it."""
from __future__ import annotations

from pathlib import Path

from vasa_lite.errors import InputError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm"}


def inspect_file(path) -> dict:
    from vasa_lite import media

    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    ext = path.suffix.lower()
    if ext in IMAGE_EXT:
        from vasa_lite.real import detect_face

        image = media.read_image(path)
        face = detect_face(image)
        return {"kind": "image", "path": str(path), "height": int(image.shape[0]), "width": int(image.shape[1]),
                "face_box_xywh": [int(v) for v in face[0]] if isinstance(face, tuple) else face}
    if ext in VIDEO_EXT:
        frames, fps, audio = media.read_video(path)
        return {"kind": "video", "path": str(path), "frames": int(len(frames)), "fps": float(fps),
                "height": int(frames.shape[1]), "width": int(frames.shape[2]),
                "audio_s": None if audio is None else round(len(audio) / 16000, 3)}
    audio = media.read_audio(path)
    media.check_speech(audio)
    return {"kind": "audio", "path": str(path), "sample_rate_hz": 16000, "duration_s": round(len(audio) / 16000, 3)}
