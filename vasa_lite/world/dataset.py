"""The world as a dataset. Building caches what is slow or random to make (speech, performances, ground truth);
frames are rendered on demand, since the renderer is deterministic and faster than reading pixels from disk.

Layout: `<root>/<split>/<actor>_<k>.npz` per clip (audio as int16, tracks, viseme ids) and `<root>/<split>.json`,
the index with every clip's clip-level ground truth (text, language, voice, emotion, gaze, distance)."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vasa_lite.config import get_preset
from vasa_lite.errors import InputError
from vasa_lite.paths import CACHE_DIR
from vasa_lite.world.params import EMOTIONS, FRAME_FACTOR_NAMES, SAMPLES_PER_FRAME

SPLITS = ("train", "val", "test")


def default_root(preset) -> Path:
    return CACHE_DIR / f"world_{get_preset(preset).name}"


def clip_seed(base_seed: int, actor_seed: int, k: int) -> int:
    """One independent, reproducible seed per clip, so any clip can be rebuilt alone (resume, parallel)."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}/{actor_seed}/{k}".encode()).digest()[:4], "little")


def sample_clip_controls(rng: np.random.Generator) -> dict:
    """Clip-level factors: emotion with intensity, main gaze (mostly near forward), head distance."""
    emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
    intensity = 0.0 if emotion == "neutral" else float(rng.uniform(0.4, 1.0))
    gaze = (float(np.clip(rng.normal(0, 10), -25, 25)), float(np.clip(rng.normal(0, 7), -15, 15)))
    distance = float(rng.uniform(0.85, 1.2))
    return {"emotion": emotion, "intensity": intensity, "gaze": gaze, "distance": distance}


def make_clip(actor_seed: int, seed: int, cfg) -> dict:
    """Speech plus performance for one clip: everything except pixels. The actor's seed fixes its motion
    style (amplitude, tempo) across its clips; the clip seed draws the sentence, voice and controls."""
    from vasa_lite.world.perform import perform_text
    from vasa_lite.world.speech import VARIANTS, random_sentence, viseme_ids, viseme_tracks

    rng = np.random.default_rng(seed)
    controls = sample_clip_controls(rng)
    lang = cfg.languages[int(rng.integers(len(cfg.languages)))]
    text = random_sentence(rng, lang, cfg.min_words, cfg.max_words)
    voice = VARIANTS[int(rng.integers(len(VARIANTS)))]
    rate, pitch = int(rng.integers(130, 201)), int(rng.integers(30, 71))
    perf = perform_text(text, lang=lang, voice=voice, rate=rate, pitch=pitch, seed=seed, style=int(actor_seed),
                        **controls)
    speech = perf.speech
    tracks = perf.as_array(FRAME_FACTOR_NAMES)
    speaking = viseme_tracks(speech, perf.n_frames)["speaking"]
    meta = {"actor_seed": int(actor_seed), "clip_seed": int(seed), "text": speech.text, "lang": speech.lang,
            "voice": speech.voice, "rate": int(speech.rate), "pitch": int(speech.pitch), "n_frames": int(perf.n_frames),
            "duration_s": round(len(speech.audio) / 16000, 3), **controls, "gaze": list(controls["gaze"]),
            "speaking_s": round(float(np.sum(speaking)) / 25, 3), "blinks": int(len(perf.blink_times()))}
    audio = np.clip(speech.audio, -1, 1)
    return {"audio": (audio * 32767).astype(np.int16), "tracks": tracks.astype(np.float32),
            "visemes": viseme_ids(speech, perf.n_frames).astype(np.int16), "meta": meta}


def _digest(clip: dict) -> str:
    h = hashlib.sha256()
    for key in ("audio", "tracks", "visemes"):
        h.update(np.ascontiguousarray(clip[key]).tobytes())
    return h.hexdigest()[:16]


def build_world(preset="cpu", root=None, splits=SPLITS, seed: int = 0, progress: bool = True) -> dict:
    """Build (or finish building: existing clips are kept) the preset's dataset; returns a summary."""
    from tqdm.auto import tqdm

    from vasa_lite.world.actor import actor_seeds

    p = get_preset(preset)
    cfg = p.world
    root = Path(root) if root else default_root(p)
    counts = {"train": cfg.n_train_actors, "val": cfg.n_val_actors, "test": cfg.n_test_actors}
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise InputError(f"unknown split(s) {sorted(unknown)}; choose from {', '.join(SPLITS)}")
    t0 = time.perf_counter()
    summary = {"preset": p.name, "root": str(root), "splits": {}}
    for split in splits:
        out = root / split
        out.mkdir(parents=True, exist_ok=True)
        jobs = [(a, k) for a in actor_seeds(split, counts[split]) for k in range(cfg.clips_per_actor)]
        index, built = [], 0
        for actor_seed, k in tqdm(jobs, desc=f"world {split}", disable=not progress, unit="clip"):
            path = out / f"{actor_seed:06d}_{k}.npz"
            clip = None
            if path.exists():
                try:
                    clip = load_clip(path)
                except Exception:
                    clip = None  # a clip cut short by an interrupted build is rebuilt
            if clip is None:
                clip = make_clip(actor_seed, clip_seed(seed, actor_seed, k), cfg)
                tmp = path.with_name(path.stem + ".tmp.npz")
                np.savez(tmp, audio=clip["audio"], tracks=clip["tracks"], visemes=clip["visemes"],
                         meta=np.frombuffer(json.dumps(clip["meta"]).encode(), dtype=np.uint8))
                os.replace(tmp, path)
                built += 1
            index.append({**clip["meta"], "file": path.name, "digest": _digest(clip)})
        (root / f"{split}.json").write_text(json.dumps({"preset": p.name, "seed": seed, "size": cfg.size,
                                                        "factors": list(FRAME_FACTOR_NAMES), "clips": index}))
        summary["splits"][split] = {"clips": len(index), "built_now": built, **dataset_stats(index)}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["disk_mb"] = round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20, 1)
    return summary


def load_clip(path) -> dict:
    with np.load(path) as z:
        return {"audio": z["audio"], "tracks": z["tracks"], "visemes": z["visemes"],
                "meta": json.loads(z["meta"].tobytes().decode())}


def dataset_stats(index: list) -> dict:
    """Numbers a student should know about their data: hours, actors, languages, emotions."""
    if not index:
        return {}
    langs, emos = {}, {}
    for c in index:
        langs[c["lang"]] = langs.get(c["lang"], 0) + 1
        emos[c["emotion"]] = emos.get(c["emotion"], 0) + 1
    speech_s = sum(c["duration_s"] for c in index)
    return {"actors": len({c["actor_seed"] for c in index}), "speech_min": round(speech_s / 60, 2),
            "languages": langs, "emotions": emos}


class WorldClips(torch.utils.data.Dataset):
    """Clips (or windows of `window` frames) of the built world: frames, 16 kHz audio and every ground-truth track.

    Frames are rendered on access at the preset's size (or `size`); `render=False` skips pixels for audio- or
    motion-only chapters. Window starts come from `seed`, so an epoch is reproducible."""

    def __init__(self, preset="cpu", split="train", root=None, size=None, window=None, render=True, seed=0,
                 device=None):
        from vasa_lite.world.actor import sample_actor
        from vasa_lite.world.render import Renderer

        p = get_preset(preset)
        self.root = Path(root) if root else default_root(p)
        index_path = self.root / f"{split}.json"
        if not index_path.exists():
            raise InputError(f"no '{split}' split under {self.root}; build it first: "
                             f"vasa-lite world build --preset {p.name}")
        self.index = json.loads(index_path.read_text())["clips"]
        self.split, self.window, self.render, self.seed = split, window, render, seed
        self.size = size or p.world.size
        self._actor = sample_actor
        self._renderer = Renderer(size=self.size, device=device) if render else None

    def __len__(self):
        return len(self.index)

    def item_meta(self, i: int) -> dict:
        return self.index[i]

    def __getitem__(self, i: int) -> dict:
        meta = self.index[i]
        clip = load_clip(self.root / self.split / meta["file"])
        tracks, audio, vis = clip["tracks"], clip["audio"].astype(np.float32) / 32767, clip["visemes"]
        start, n = 0, len(tracks)
        if self.window:
            if self.window > n:
                raise InputError(f"window of {self.window} frames is longer than clip {meta['file']} ({n} frames)")
            start = int(np.random.default_rng([self.seed, i]).integers(0, n - self.window + 1))
            n = self.window
        tracks, vis = tracks[start:start + n], vis[start:start + n]
        audio = audio[start * SAMPLES_PER_FRAME:(start + n) * SAMPLES_PER_FRAME]
        item = {"audio": torch.from_numpy(np.ascontiguousarray(audio)), "tracks": torch.from_numpy(tracks.copy()),
                "visemes": torch.from_numpy(vis.astype(np.int64)), "start": start, "actor_seed": meta["actor_seed"],
                "emotion": EMOTIONS.index(meta["emotion"]), "intensity": float(meta["intensity"]),
                "gaze": torch.tensor(meta["gaze"], dtype=torch.float32), "distance": float(meta["distance"])}
        if self.render:
            actor = self._actor(meta["actor_seed"])
            named = {name: tracks[:, j] for j, name in enumerate(FRAME_FACTOR_NAMES)}
            item["frames"] = self._renderer.render(actor, named).cpu()
        return item
