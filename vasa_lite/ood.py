"""Out of distribution (notebook 09): the course's models on inputs unlike their training data, measured honestly.

The models were trained on the talking-head world only: procedural actors rendered in one style, speaking ten
European languages in espeak-ng's voices. VASA-1 reports that its model copes with inputs it never saw (paintings,
singing, other languages); here the same claim is tested on the course's own models. Each case is an
(portrait, speech) pair; `run_case` animates it and measures the clip with the instruments:

- **in distribution**: a world actor speaking English, the reference row;
- **real photos** shipped by packages: Grace Hopper and the astronaut;
- **artistic portraits**: a painting, a pencil sketch and a cartoon, made from photos and actors by image filters
  (`stylise`, applied to the aligned face frame, so that face detection is not what is tested);
- **singing**: a melody, each syllable sung on one note (espeak-ng's pitch per word, `sung`);
- **held-out language**: Mandarin, which no training clip speaks (`held_out_languages`).

Per case: Sc and Sd (lip sync, SyncNet-lite), the offset of best sync (frames), identity similarity of the generated
frames to the portrait (the course's identity network), ΔP (head motion, deg/frame), the std of the read mouth
opening (does the mouth move at all?) and the portrait's self-reconstruction PSNR (how well the latent model
represents this face before any motion: where that is low, everything after it suffers).

What helps is measured too: `finetune_on_photo` fine-tunes the latent model's decoder for a few minutes on a short
video made from one photo (`photo_video`, a `VideoFolder`), with the motion encoders frozen so that the motion
generator still fits, and the photo's rows are measured again with the fine-tuned decoder.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.params import FPS, SAMPLE_RATE

STYLES = ("painting", "sketch", "cartoon")
ENGLISH = "Every frame of this video was made from one picture and the sound of my voice."
MANDARIN = "你好。我是一个会说话的头像，今天我们用中文说话。"
# "Twinkle, twinkle, little star, how I wonder what you are": one syllable per word, one note per syllable
SONG = "twin kle twin kle lit tle star how I won der what you are"
MELODY = (30, 30, 58, 58, 64, 64, 58, 52, 52, 46, 46, 40, 40, 30)     # espeak-ng pitch (50 = the voice's normal)


@dataclasses.dataclass
class Case:
    """One out-of-distribution input: a portrait (aligned uint8 [H, W, 3]) and speech (16 kHz)."""
    name: str
    kind: str                   # in distribution, photo, artistic, singing, language
    portrait: np.ndarray
    audio: np.ndarray
    source: str                 # where the portrait came from
    speech: str                 # what the speech is


def stylise(frame: np.ndarray, style: str) -> np.ndarray:
    """An aligned face frame (uint8 [H, W, 3]) redrawn as a painting, a pencil sketch or a cartoon (PIL filters)."""
    from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps

    if style not in STYLES:
        raise InputError(f"unknown style {style!r}; choose one of: {', '.join(STYLES)}")
    img = Image.fromarray(np.asarray(frame, np.uint8))
    if style == "painting":
        # flat patches of strong colour with soft brush edges
        out = ImageEnhance.Color(img.filter(ImageFilter.ModeFilter(5))).enhance(1.6)
        out = ImageOps.posterize(out, 4).filter(ImageFilter.SMOOTH_MORE).filter(ImageFilter.EDGE_ENHANCE)
    elif style == "sketch":
        # the classic colour dodge of a greyscale image by its blurred negative: pencil lines on white
        grey = ImageOps.grayscale(img)
        blur = ImageOps.invert(grey).filter(ImageFilter.GaussianBlur(3))
        g, b = np.asarray(grey, np.float32), np.asarray(blur, np.float32)
        dodge = np.clip(g * 255.0 / np.maximum(255.0 - b, 1.0), 0, 255).astype(np.uint8)
        out = Image.fromarray(dodge).convert("RGB")
    else:
        # few flat colours and dark outlines
        flat = ImageOps.posterize(img.filter(ImageFilter.MedianFilter(5)).filter(ImageFilter.MedianFilter(5)), 3)
        edges = ImageOps.grayscale(img).filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
        out = ImageChops.multiply(flat, ImageOps.invert(edges).convert("RGB"))
    return np.asarray(out, np.uint8).copy()


def sung(text: str = SONG, melody=MELODY, lang: str = "en", rate: float = 100.0) -> np.ndarray:
    """16 kHz speech that sings `text` on `melody`: one espeak-ng pitch (0 to 100) per whitespace-separated word."""
    from vasa_lite.world.speech import speak

    return speak(text, lang=lang, rate=rate, pitch_contour=list(melody)).audio


def held_out_languages(preset="cpu") -> list[str]:
    """Languages espeak-ng speaks for the course that no training clip of the preset's world uses."""
    from vasa_lite.config import get_preset
    from vasa_lite.world.speech import LANGUAGES

    return sorted(set(LANGUAGES) - set(get_preset(preset).world.languages))


def cases(preset="cpu") -> list[Case]:
    """Every case of the chapter, in the order of the table."""
    from vasa_lite.config import get_preset
    from vasa_lite.demo import speech_of
    from vasa_lite.motion.animate import portrait_frame

    p = get_preset(preset)
    size = p.world.size
    frame = {n: portrait_frame(n, size) for n in ("actor", "grace_hopper", "astronaut")}
    english = speech_of(ENGLISH, "en")
    if "cmn" not in held_out_languages(p):
        raise InputError(f"the '{p.name}' world trains on Mandarin; this chapter needs it held out")
    out = [Case("world actor, English", "in distribution", frame["actor"], english, "world actor", "English"),
           Case("photo: Grace Hopper", "photo", frame["grace_hopper"], english, "photo (matplotlib)", "English"),
           Case("photo: astronaut", "photo", frame["astronaut"], english, "photo (scikit-image)", "English"),
           Case("painting of Grace Hopper", "artistic", stylise(frame["grace_hopper"], "painting"), english,
                "photo, painted", "English"),
           Case("sketch of the actor", "artistic", stylise(frame["actor"], "sketch"), english, "world actor, sketched",
                "English"),
           Case("cartoon of the astronaut", "artistic", stylise(frame["astronaut"], "cartoon"), english,
                "photo, cartoon", "English"),
           Case("world actor, singing", "singing", frame["actor"], sung(), "world actor", "sung melody (English)"),
           Case("world actor, Mandarin", "language", frame["actor"], speech_of(MANDARIN, "cmn"), "world actor",
                "Mandarin (held out)")]
    return out


def portrait_psnr(latent, frame: np.ndarray) -> float:
    """Self reconstruction of the portrait through the latent model (dB): how well it represents this face."""
    from vasa_lite.latent.losses import psnr
    from vasa_lite.motion.animate import encode_portrait

    src = encode_portrait(latent, frame)
    with torch.no_grad():
        rec = latent.decode(src, src["z_pose"], src["z_dyn"]).clamp(0, 1)
    return round(float(psnr(rec, src["image"])), 2)


def run_case(case: Case, preset="cpu", latent=None, seed: int = 0, device=None, steps: "int | None" = None,
             sampler: str = "ddim") -> dict:
    """Animate one case with the shipped motion generator (and `latent`, default the preset's) and measure it.
    Returns the figures and the frames (uint8 [T, H, W, 3]) with the speech."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.metrics import evaluate
    from vasa_lite.motion.animate import encode_portrait, frames_of, load_pipeline
    from vasa_lite.motion.generate import generate_motion

    p = get_preset(preset)
    dev = pick_device(device)
    shipped, model, encoder = load_pipeline(p, dev)
    latent = latent if latent is not None else shipped
    t0 = time.perf_counter()
    with torch.no_grad():
        feats = encoder.encode_array(case.audio)
    motion = generate_motion(feats, model=model, seed=seed, sampler=sampler,
                             steps=steps if steps is not None else p.motion.ddim_steps, device=dev)
    _, frames = frames_of(latent, encode_portrait(latent, case.portrait), model, motion, "relative")
    seconds = time.perf_counter() - t0
    ref = torch.from_numpy(np.array(case.portrait)).permute(2, 0, 1)[None].float() / 255
    m = evaluate(frames, case.audio, reference=ref, preset=p, device=dev)
    jaw = np.asarray(m["tracks"]["jaw"], np.float64)
    row = {"kind": case.kind, "source": case.source, "speech": case.speech, "frames": int(len(frames)),
           "Sc": m["Sc"], "Sd": m["Sd"], "offset": m["offset"], "identity": m["identity_similarity"],
           "delta_p": m["delta_p"], "mouth_std": round(float(jaw.std()), 4),
           "portrait_psnr_db": portrait_psnr(latent, case.portrait), "seconds": round(seconds, 2)}
    return {"row": row, "frames": frames, "audio": case.audio}


def markdown_table(rows: dict) -> str:
    cols = [("kind", "kind"), ("Sc ↑", "Sc"), ("Sd ↓", "Sd"), ("offset", "offset"), ("identity ↑", "identity"),
            ("ΔP", "delta_p"), ("mouth std", "mouth_std"), ("portrait PSNR dB", "portrait_psnr_db")]
    lines = ["| case | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        cells = [r.get(k) for _, k in cols]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else (v if isinstance(v, str) else f"{v:.3g}")
                                                  for v in cells) + " |")
    return "\n".join(lines)


def eval_ood(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
             out_json=None) -> dict:
    """`vasa-lite eval ood`: every case of `cases` (the first `limit`), animated and measured; a dict with "rows"
    and "markdown". checkpoint: a latent checkpoint to use instead of the preset's (e.g. a fine-tuned one)."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.latent.model import load_latent

    p = get_preset(preset)
    dev = pick_device(device)
    latent = load_latent(p, path=checkpoint, device=dev) if checkpoint else None
    t0 = time.perf_counter()
    rows = {}
    for case in cases(p)[:limit]:
        rows[case.name] = run_case(case, p, latent=latent, seed=seed, device=dev)["row"]
    report = {"component": "ood", "preset": p.name, "seed": seed, "latent": str(checkpoint or "shipped"),
              "rows": rows, "markdown": markdown_table(rows), "eval_seconds": round(time.perf_counter() - t0, 1)}
    if out_json:
        from vasa_lite.metrics import write_report

        write_report(report, out_json)
    return report


# ------------------------------------------------------------------------------------------ what helps
# Fine-tuning on one photo: the motion encoders stay as they are (the motion generator was trained on their codes),
# so do the identity encoder and the expression read-out; a small learning rate keeps what the world taught (at the
# preset's 1e-3 the decoder forgets faster than it learns the photo); one person has no one to contrast with, so no
# cross-identity loss; half the pairs are self pairs, to learn the photo as it is. The warp learns the face too, so
# its self-correction is off (a warp that trains under it drifts, see pipeline.SELF_FLOW_STAGE): on cpu, 150 steps
# drew Grace Hopper at 25.5 dB this way, and at 23.3 dB with the correction on and the warp frozen (shipped: 19.6).
FINETUNE = {"freeze": ("pose", "dynamics", "identity", "expression_head"),
            "overrides": {"lr": 1e-4, "cross_id_weight": 0.0, "self_pairs": 0.5, "self_flow": 0}}


def photo_video(image, folder, seconds: float = 2.0, fps: int = FPS, size: int = 256) -> Path:
    """A short 'talking video' of one photo for a VideoFolder: the face drifts and zooms a little (the decoder then
    sees it at several framings), with silence as its sound. Returns the folder."""
    from vasa_lite import real
    from vasa_lite.media import read_image, write_video

    img = read_image(image) if not isinstance(image, np.ndarray) else np.asarray(image, np.uint8)
    x, y, side = real.face_region(real.detect_face(img)[0])
    n = max(2, int(seconds * fps))
    frames = []
    for i in range(n):
        ph = 2 * np.pi * i / n
        s = side * (1 + 0.06 * np.sin(ph))
        cx, cy = x + side / 2 + 0.03 * side * np.cos(ph), y + side / 2 + 0.02 * side * np.sin(2 * ph)
        frames.append(real.crop_region(img, (cx - s / 2, cy - s / 2, s), size))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "photo.mp4", np.stack(frames), fps=fps, audio=np.zeros(int(n / fps * SAMPLE_RATE),
                                                                                  np.float32), sr=SAMPLE_RATE)
    return folder


def finetune_on_photo(image, preset="cpu", steps: int = 150, out=None, work=None, seed: int = 0, device=None,
                      progress: bool = False) -> dict:
    """Fine-tune the preset's latent model on one photo (`photo_video` as a VideoFolder) with FINETUNE's settings:
    the decoder learns this face; the pose and dynamics encoders stay frozen, so motion codes, and the motion
    generator trained on them, stay valid. Returns train_latent's summary (its "checkpoint" is the fine-tuned
    model)."""
    import tempfile

    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset
    from vasa_lite.latent.train import train_latent

    p = get_preset(preset)
    work = Path(work or tempfile.mkdtemp(prefix="vasa_photo_"))
    folder = photo_video(image, work / "video")
    out = Path(out or work / f"latent_photo_{p.name}.pt")
    return train_latent(p, seed=seed, device=device, steps=steps, resume=False, out=out, progress=progress,
                        data=folder, init=checkpoint_path("latent", p.name), freeze=FINETUNE["freeze"],
                        overrides=dict(FINETUNE["overrides"]), preview_every=10**9)


__all__ = ["Case", "cases", "stylise", "sung", "held_out_languages", "run_case", "eval_ood", "portrait_psnr",
           "photo_video", "finetune_on_photo", "FINETUNE", "STYLES", "markdown_table"]
