"""How an actor performs a Speech: every per-frame factor of the world, from head pose to blinks.

The mouth follows the phonemes exactly (speech.viseme_tracks), so lip sync is determined by the audio.
Everything else is a stochastic process tied to the speech: nods on stressed syllables, posture shifts at
phrase boundaries, slow sway that settles when the actor stops talking, blinks, gaze fixations with small
saccades, and an emotion that shifts the expression baseline. One speech with different seeds gives
different, equally plausible motions: the one-to-many mapping that VASA-1's diffusion model learns.

    perf = perform(speak("Hello there, how are you?"), emotion="happy", seed=3)
    perf.as_array()          # [n_frames, len(FRAME_FACTOR_NAMES)]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from vasa_lite.errors import InputError
from vasa_lite.world.params import EMOTIONS, FACTORS, FPS, FRAME_FACTOR_NAMES, SAMPLES_PER_FRAME, check_tracks
from vasa_lite.world.speech import (DEFAULT_PITCH, DEFAULT_RATE, PITCH_RANGE, RATE_RANGE, Speech, _check_number,
                                    is_silence, is_stressed, speak, viseme_tracks)

DT = 1.0 / FPS

# Expression baselines at intensity 1 (neutral is the zero point: value = neutral + intensity * (emotion - neutral)).
# lid: resting eyelid closure (sad lids droop); jaw: resting jaw opening (surprise drops the jaw).
EXPRESSIONS = {
    "neutral": dict(smile=0.0, brow_raise=0.05, brow_furrow=0.03, squint=0.05, lid=0.0, jaw=0.0),
    "happy": dict(smile=0.65, brow_raise=0.12, brow_furrow=0.0, squint=0.35, lid=0.0, jaw=0.03),
    "sad": dict(smile=-0.45, brow_raise=0.2, brow_furrow=0.35, squint=0.0, lid=0.22, jaw=0.0),
    "angry": dict(smile=-0.35, brow_raise=0.0, brow_furrow=0.75, squint=0.3, lid=0.05, jaw=0.0),
    "surprised": dict(smile=0.05, brow_raise=0.8, brow_furrow=0.0, squint=0.0, lid=0.0, jaw=0.15),
}
# How an emotion moves the body: head-motion energy, head pitch offset (deg), jaw gain, blink-rate scale.
MOTION = {
    "neutral": dict(energy=1.0, head_pitch=0.0, jaw_gain=1.0, blink=1.0),
    "happy": dict(energy=1.25, head_pitch=1.0, jaw_gain=1.05, blink=1.0),
    "sad": dict(energy=0.6, head_pitch=-5.0, jaw_gain=0.85, blink=0.9),
    "angry": dict(energy=1.35, head_pitch=-2.5, jaw_gain=1.1, blink=1.15),
    "surprised": dict(energy=1.2, head_pitch=2.5, jaw_gain=1.05, blink=0.75),
}
# How an emotion changes the voice: speaking-rate factor and base-pitch offset (eSpeak's 0-100 scale).
PROSODY = {
    "neutral": dict(rate_scale=1.0, pitch_offset=0.0),
    "happy": dict(rate_scale=1.08, pitch_offset=8.0),
    "sad": dict(rate_scale=0.85, pitch_offset=-8.0),
    "angry": dict(rate_scale=1.1, pitch_offset=3.0),
    "surprised": dict(rate_scale=1.0, pitch_offset=12.0),
}

# An actor's style: how much and how fast it moves. Ranges are what `style` dicts may hold.
STYLE_DEFAULTS = dict(head_scale=1.0, tempo=1.0, nod_gain=1.0, tilt_gain=1.0, yaw_bias=0.0, pitch_bias=0.0,
                      roll_bias=0.0, blink_rate=17.0, expressivity=1.0)
STYLE_RANGES = dict(head_scale=(0.0, 2.0), tempo=(0.5, 2.0), nod_gain=(0.0, 2.5), tilt_gain=(0.0, 2.5),
                    yaw_bias=(-10.0, 10.0), pitch_bias=(-8.0, 8.0), roll_bias=(-6.0, 6.0), blink_rate=(6.0, 30.0),
                    expressivity=(0.0, 2.0))

BLINK_SHAPE = np.array([0.5, 1.0, 0.7, 0.35, 0.1], np.float32)  # 200 ms: fast closing, slower opening
BLINK_MIN_GAP = 0.6  # s between blink onsets
GAZE_RANDOM = dict(gaze_yaw=(-15.0, 15.0), gaze_pitch=(-10.0, 10.0))
DISTANCE_RANDOM = (0.85, 1.2)


@dataclass(eq=False)  # holds arrays: compare tracks explicitly
class Performance:
    """Per-frame ground truth of one clip plus its clip-level conditions."""

    tracks: dict
    speech: Speech
    emotion: str
    intensity: float
    gaze: tuple
    distance: float
    seed: int
    style: dict
    events: dict = field(default_factory=dict)  # ground-truth event times in seconds: blinks, nods

    @property
    def n_frames(self) -> int:
        return len(next(iter(self.tracks.values())))

    @property
    def duration(self) -> float:
        return self.n_frames / FPS

    def as_array(self, names=FRAME_FACTOR_NAMES) -> np.ndarray:
        """Tracks stacked as float32 [n_frames, len(names)] in the order of `names`."""
        unknown = [n for n in names if n not in self.tracks]
        if unknown:
            raise InputError(f"unknown factor(s) {unknown}; accepted: {list(FRAME_FACTOR_NAMES)}")
        return np.stack([self.tracks[n] for n in names], axis=1).astype(np.float32)

    def conditions(self) -> dict:
        """The clip-level controls VASA-1's generator takes: main gaze, distance, emotion (and its strength)."""
        return dict(gaze=self.gaze, distance=self.distance, emotion=self.emotion, intensity=self.intensity)

    def blink_times(self) -> np.ndarray:
        """Times (s) at which each blink's eyelids are fully shut."""
        return np.asarray(self.events.get("blinks", []), np.float64)

    def blink_rate(self) -> float:
        """Blinks per minute over the clip."""
        return 60.0 * len(self.blink_times()) / max(self.duration, 1e-9)

    def delta_p(self) -> float:
        """Mean absolute frame-to-frame change of the head angles (deg): the paper's liveliness metric.

        VASA-1 reports it as the mean over all frame pairs and the three angles.
        """
        pose = np.stack([self.tracks[k] for k in ("yaw", "pitch", "roll")], axis=1)
        return float(np.abs(np.diff(pose, axis=0)).mean()) if len(pose) > 1 else 0.0

    def __repr__(self) -> str:
        return (f"Performance({self.n_frames} frames, emotion={self.emotion!r} x{self.intensity:.2f}, "
                f"gaze={self.gaze}, distance={self.distance:.3f}, seed={self.seed}, {len(self.blink_times())} blinks)")


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------
def _check_emotion(emotion, intensity) -> tuple[str, float]:
    if emotion not in EMOTIONS:
        raise InputError(f"unknown emotion {emotion!r}; accepted: {list(EMOTIONS)}")
    try:
        intensity = float(intensity)
    except (TypeError, ValueError):
        raise InputError(f"intensity must be a number in [0, 1], got {intensity!r}") from None
    if not 0.0 <= intensity <= 1.0:
        raise InputError(f"intensity {intensity!r} out of range; accepted: [0, 1]")
    return emotion, intensity


def _in_range(name: str, value, low: float, high: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number in [{low}, {high}], got {value!r}") from None
    if not (np.isfinite(v) and low <= v <= high):
        raise InputError(f"{what} {value!r} out of range; accepted: [{low}, {high}]")
    return v


def _check_gaze(gaze, rng) -> tuple[float, float]:
    fy, fp = FACTORS["gaze_yaw"], FACTORS["gaze_pitch"]
    if gaze is None:
        return (0.0, 0.0)  # VASA-1's default: looking forward
    if isinstance(gaze, str) and gaze == "random":
        lo, hi = GAZE_RANDOM["gaze_yaw"], GAZE_RANDOM["gaze_pitch"]
        return (float(np.round(rng.uniform(*lo), 2)), float(np.round(rng.uniform(*hi), 2)))
    try:
        yaw, pitch = gaze
    except (TypeError, ValueError):
        raise InputError(f"gaze must be None, 'random' or (gaze_yaw_deg, gaze_pitch_deg), got {gaze!r}") from None
    return (_in_range("gaze_yaw", yaw, fy.low, fy.high, "gaze yaw (deg)"),
            _in_range("gaze_pitch", pitch, fp.low, fp.high, "gaze pitch (deg)"))


def _check_distance(distance, rng) -> float:
    f = FACTORS["distance"]
    if distance is None:
        return 1.0  # the mean distance
    if isinstance(distance, str) and distance == "random":
        return float(np.round(rng.uniform(*DISTANCE_RANDOM), 3))
    return _in_range("distance", distance, f.low, f.high, "distance")


def sample_style(rng=None) -> dict:
    """A random actor: movement amplitude and tempo, nodding and tilting habits, posture biases, blink rate."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return dict(
        head_scale=float(rng.uniform(0.6, 1.4)), tempo=float(rng.uniform(0.75, 1.35)),
        nod_gain=float(rng.uniform(0.5, 1.5)), tilt_gain=float(rng.uniform(0.5, 1.5)),
        yaw_bias=float(np.clip(rng.normal(0, 2.0), -5, 5)), pitch_bias=float(np.clip(rng.normal(0, 2.0), -5, 5)),
        roll_bias=float(np.clip(rng.normal(0, 1.5), -4, 4)), blink_rate=float(rng.uniform(14.0, 20.0)),
        expressivity=float(rng.uniform(0.6, 1.4)),
    )


def _check_style(style, rng) -> dict:
    if style is None:
        return sample_style(rng)
    if isinstance(style, (int, np.integer)) and not isinstance(style, bool):
        return sample_style(np.random.default_rng(int(style)))  # the same actor across clips
    if not isinstance(style, dict):
        raise InputError(f"style must be None, an int (actor seed) or a dict with keys {list(STYLE_DEFAULTS)}, "
                         f"got {type(style).__name__}")
    unknown = set(style) - set(STYLE_DEFAULTS)
    if unknown:
        raise InputError(f"unknown style key(s) {sorted(unknown)}; accepted: {list(STYLE_DEFAULTS)}")
    out = dict(STYLE_DEFAULTS)
    for k, v in style.items():
        out[k] = _in_range(k, v, *STYLE_RANGES[k], what=f"style '{k}'")
    return out


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------
def _ou(rng, n: int, tau: float, std: float, gain: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """Ornstein-Uhlenbeck sway: std is the stationary spread; `gain` scales the driving noise per frame.

    A raw OU path is rough at the frame scale (jitter); `smooth` > 0 low-passes it with that time constant.
    """
    a = np.exp(-DT / tau)
    noise = rng.standard_normal(n) * gain * std * np.sqrt(1 - a * a)
    x0 = rng.standard_normal() * std * gain[0]
    x = lfilter([1.0], [1.0, -a], noise, zi=[a * x0])[0]
    return _smooth2(x, smooth) if smooth > 0 else x


def _smooth2(x: np.ndarray, tau: float) -> np.ndarray:
    """Two cascaded one-pole low-passes: a critically damped, causal glide toward a target."""
    a = np.exp(-DT / tau)
    y = lfilter([1 - a], [1, -a], x, zi=[a * x[0]])[0]
    return lfilter([1 - a], [1, -a], y, zi=[a * y[0]])[0]


def _bumps(n: int, times, amps, sigma: float) -> np.ndarray:
    """Sum of Gaussian bumps (seconds, amplitudes, width in s) sampled at frame centres."""
    t = (np.arange(n) + 0.5) * DT
    out = np.zeros(n)
    for t0, a in zip(times, amps):
        lo, hi = max(0, int((t0 - 4 * sigma) * FPS)), min(n, int((t0 + 4 * sigma) * FPS) + 2)
        out[lo:hi] += a * np.exp(-0.5 * ((t[lo:hi] - t0) / sigma) ** 2)
    return out


def _soft_limit(x: np.ndarray, limit: float) -> np.ndarray:
    """Identity up to 60% of the limit, then a tanh knee: rare big excursions stay inside the range."""
    knee = 0.6 * limit
    over = np.abs(x) - knee
    squashed = knee + (limit - knee) * np.tanh(np.maximum(over, 0) / (limit - knee))
    return np.where(over > 0, np.sign(x) * squashed, x)


def _loudness(speech: Speech, n: int) -> np.ndarray:
    """Per-frame loudness in [0, 1]: frame RMS in dB, 0 at 30 dB below the clip's loud frames."""
    frames = speech.audio[: n * SAMPLES_PER_FRAME].reshape(-1, SAMPLES_PER_FRAME).astype(np.float64)
    db = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-5)
    out = np.zeros(n)
    if len(db):
        top = np.percentile(db, 95)
        out[: len(db)] = np.clip((db - (top - 30.0)) / 30.0, 0.0, 1.0)
    return out


def _activity(speaking: np.ndarray) -> np.ndarray:
    """How engaged in talking the actor is: jumps up at speech, then fades over ~0.4 s of pause."""
    decay = np.exp(-DT / 0.4)
    out = np.zeros(len(speaking))
    prev = 0.0
    for k, s in enumerate(speaking):
        prev = max(float(s), prev * decay)
        out[k] = prev
    # Symmetric light smoothing, so the head also starts moving a little before the first word.
    return np.convolve(np.pad(out, 3, mode="edge"), np.ones(7) / 7, mode="valid") if len(out) else out


def _speech_events(speech: Speech):
    """Stressed-syllable onsets, word onsets, and phrase starts (speech after a pause of 150 ms or more)."""
    stressed = [s for s, _, ph in speech.phonemes if is_stressed(ph) and not is_silence(ph)]
    words = [s for s, _, _ in speech.words]
    phrases, in_pause, pause_start = [], True, 0.0
    for s, e, ph in speech.phonemes:
        if is_silence(ph):
            if not in_pause:
                in_pause, pause_start = True, s
        elif in_pause:
            if not phrases or s - pause_start >= 0.15:
                phrases.append(s)
            in_pause = False
    return np.array(stressed), np.array(words), np.array(phrases)


def _blinks(rng, n: int, rate_per_min: float, phrases: np.ndarray) -> list[int]:
    """Blink onset frames: a renewal process with a refractory gap, some blinks drawn to phrase starts."""
    mean = 60.0 / rate_per_min
    shape = 3.0  # gamma intervals: irregular but not bursty
    times, t = [], float(rng.uniform(0.0, mean))
    while t < n * DT:
        times.append(t)
        t += BLINK_MIN_GAP + rng.gamma(shape, (mean - BLINK_MIN_GAP) / shape)
    times = np.array(times)
    # People tend to blink as a phrase starts: move about a third of the blinks to a nearby phrase start.
    if len(phrases) and len(times):
        for i in range(len(times)):
            j = int(np.argmin(np.abs(phrases - times[i])))
            if abs(phrases[j] - times[i]) < 0.6 and rng.random() < 0.35:
                times[i] = phrases[j] - 0.08
    frames, last = [], -1e9
    for f in sorted(int(round(t * FPS)) for t in times):
        if 0 <= f < n and (f - last) * DT >= BLINK_MIN_GAP:
            frames.append(f)
            last = f
    return frames


def _gaze_track(rng, n: int, main: tuple[float, float], activity: np.ndarray):
    """Fixations around the main direction joined by one-frame saccades; rare glances away, more in pauses."""
    yaw, pitch = np.zeros(n), np.zeros(n)
    k = 0
    while k < n:
        dur = max(2, int(round(rng.gamma(3.0, 0.28) * FPS)))  # about 0.85 s per fixation
        if rng.random() < 0.04 + 0.08 * (1.0 - activity[k]):
            dy, dp = rng.normal(0, 8.0), rng.normal(-2.0, 4.0)  # looking away, often a little down
            dur = max(3, dur // 2)
        else:
            dy, dp = rng.normal(0, 2.0), rng.normal(0, 1.3)
        yaw[k: k + dur], pitch[k: k + dur] = dy, dp
        k += dur
    # A saccade takes about one frame: average neighbours so each jump has one in-between frame.
    kernel = np.array([0.5, 0.5])
    yaw = np.convolve(np.pad(yaw, (1, 0), mode="edge"), kernel, mode="valid")
    pitch = np.convolve(np.pad(pitch, (1, 0), mode="edge"), kernel, mode="valid")
    yaw += rng.normal(0, 0.15, n)  # fixational tremor
    pitch += rng.normal(0, 0.15, n)
    fy, fp = FACTORS["gaze_yaw"], FACTORS["gaze_pitch"]
    return np.clip(main[0] + yaw, fy.low, fy.high), np.clip(main[1] + pitch, fp.low, fp.high)


# ---------------------------------------------------------------------------------------------------------
# The performance
# ---------------------------------------------------------------------------------------------------------
def emotion_prosody(emotion: str = "neutral", intensity: float = 1.0) -> dict:
    """How the voice carries an emotion: {'rate_scale', 'pitch_offset'} to apply before synthesis."""
    emotion, intensity = _check_emotion(emotion, intensity)
    p = PROSODY[emotion]
    return dict(rate_scale=1.0 + intensity * (p["rate_scale"] - 1.0), pitch_offset=intensity * p["pitch_offset"])


def expression_baseline(emotion: str = "neutral", intensity: float = 1.0) -> dict:
    """Resting smile, brows, squint, eyelid and jaw for an emotion at an intensity in [0, 1]."""
    emotion, intensity = _check_emotion(emotion, intensity)
    n, e = EXPRESSIONS["neutral"], EXPRESSIONS[emotion]
    return {k: n[k] + intensity * (e[k] - n[k]) for k in n}


def perform(speech: Speech, emotion: str = "neutral", intensity: float = 1.0, gaze=None, distance=None,
            seed: int = 0, style=None) -> Performance:
    """Per-frame tracks of every factor in FRAME_FACTOR_NAMES for an actor saying `speech`.

    emotion: one of EMOTIONS, at `intensity` in [0, 1]. gaze: (gaze_yaw_deg, gaze_pitch_deg) main direction,
    None for forward, or "random". distance: in the factor's range, None for the mean (1.0), or "random".
    seed: drives every random choice (same inputs and seed give identical arrays). style: None (an actor drawn
    from the seed), an int (an actor seed, fixed across clips), or a dict overriding STYLE_DEFAULTS.
    The mouth depends only on the speech and the emotion, never on the seed.
    """
    if not isinstance(speech, Speech):
        raise InputError(f"perform needs a Speech (from speak()), got {type(speech).__name__}")
    emotion, intensity = _check_emotion(emotion, intensity)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    # One independent stream per part, so changing, say, the blink model leaves the head motion unchanged.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(7)]
    r_style, r_clip, r_head, r_gesture, r_blink, r_gaze, r_face = streams
    style = _check_style(style, r_style)
    main_gaze = _check_gaze(gaze, r_clip)
    distance = _check_distance(distance, r_clip)

    n = speech.n_frames
    t = (np.arange(n) + 0.5) * DT
    vis = viseme_tracks(speech, n)
    loud = _loudness(speech, n)
    act = _activity(vis["speaking"])
    stressed, word_onsets, phrases = _speech_events(speech)
    mot = {k: 1.0 + intensity * (v - 1.0) if k != "head_pitch" else intensity * v
           for k, v in MOTION[emotion].items()}
    base = expression_baseline(emotion, intensity)
    energy = style["head_scale"] * mot["energy"]
    tempo = style["tempo"]
    gain = 0.15 + 0.85 * act  # stillness in pauses: the sway's driving noise fades when the talking stops

    def loud_at(times):
        return np.interp(times, t, loud) if len(times) else np.zeros(0)

    # --- Head pose -------------------------------------------------------------------------------------
    # Posture: a new resting pose at each phrase start (and now and then within a phrase), glided into.
    shift_times = list(phrases) + [w for w in word_onsets if r_head.random() < 0.06]
    posture = {k: np.zeros(n) for k in ("yaw", "pitch", "roll")}
    spreads = dict(yaw=4.0, pitch=2.0, roll=2.0 * style["tilt_gain"])
    targets = {k: style[f"{k}_bias"] + r_head.normal(0, spreads[k] * energy) for k in posture}
    for k in posture:
        posture[k][:] = targets[k]
    for ts in sorted(shift_times):
        f = int(ts * FPS)
        if 0 <= f < n:
            for k in posture:
                posture[k][f:] = style[f"{k}_bias"] + r_head.normal(0, spreads[k] * energy)
    posture = {k: _smooth2(v, 0.25 / tempo) if n else v for k, v in posture.items()}

    # Sway: slow, speech-gated Ornstein-Uhlenbeck noise on every pose factor.
    soft = 0.1 / tempo
    sway = dict(
        yaw=_ou(r_head, n, 1.6 / tempo, 4.0 * energy, gain, soft),
        pitch=_ou(r_head, n, 1.0 / tempo, 2.5 * energy, gain, soft),
        roll=_ou(r_head, n, 1.4 / tempo, 2.0 * energy, gain, soft),
        tx=_ou(r_head, n, 2.0 / tempo, 0.012 * energy, gain, soft),
        ty=_ou(r_head, n, 2.0 / tempo, 0.008 * energy, gain, soft),
    )

    # Gestures tied to the audio: nods on stressed syllables (louder, bigger), tilts and small turns on words.
    nod = r_gesture.random(len(stressed)) < 0.7
    nod_amp = -(1.5 + 3.0 * r_gesture.random(len(stressed))) * (0.4 + 0.6 * loud_at(stressed))
    nod_amp *= style["nod_gain"] * energy * nod
    # A nod dips and comes back: a narrow bump minus a wide one of equal area, so nodding adds no net tilt.
    narrow, wide = 0.11 / tempo, 0.4 / tempo
    nods = _bumps(n, stressed + 0.03, nod_amp, narrow) - _bumps(n, stressed + 0.03, nod_amp * narrow / wide, wide)
    tilt = r_gesture.random(len(word_onsets)) < 0.25
    tilts = _bumps(n, word_onsets + 0.05, r_gesture.normal(0, 1.5, len(word_onsets)) * tilt * style["tilt_gain"]
                   * energy, 0.2 / tempo)
    turn = r_gesture.random(len(stressed)) < 0.35
    turns = _bumps(n, stressed, r_gesture.normal(0, 2.5, len(stressed)) * turn * energy, 0.15 / tempo)

    pose = {
        "yaw": posture["yaw"] + sway["yaw"] + turns,
        "pitch": posture["pitch"] + sway["pitch"] + nods + mot["head_pitch"],
        "roll": posture["roll"] + sway["roll"] + tilts,
    }
    # The head translates with its rotation (the neck pivots below the head), plus its own drift.
    pose["tx"] = sway["tx"] + 0.0015 * pose["yaw"] - 0.001 * pose["roll"]
    pose["ty"] = sway["ty"] - 0.0012 * pose["pitch"]
    tracks = {k: _soft_limit(v, 0.9 * FACTORS[k].high) for k, v in pose.items()}
    tracks["distance"] = np.full(n, distance)

    # --- Mouth: from the phonemes only, scaled by loudness and emotion ---------------------------------
    jaw_gain = mot["jaw_gain"] * (0.85 + 0.3 * loud)
    closed = vis["lip_close"] >= 0.99
    tracks["jaw"] = np.where(closed, vis["jaw"], vis["jaw"] * jaw_gain + base["jaw"])
    tracks["lip_close"] = np.where(closed, vis["lip_close"], vis["lip_close"] * (1.0 - 2.0 * base["jaw"]))
    tracks["lip_round"] = vis["lip_round"] - 0.25 * max(base["smile"], 0.0)  # a smile spreads the lips

    # --- Face: emotion baseline plus slow drift and speech-linked brow beats ---------------------------
    ex = style["expressivity"]
    ones = np.ones(n)
    tracks["smile"] = base["smile"] + _ou(r_face, n, 2.5, 0.05 * ex, ones)
    brow_beat = (r_face.random(len(stressed)) < 0.25 * ex) * (0.12 + 0.2 * r_face.random(len(stressed)))
    brow_beat *= loud_at(stressed)
    tracks["brow_raise"] = base["brow_raise"] + _bumps(n, stressed, brow_beat, 0.15) + _ou(r_face, n, 2.0, 0.03 * ex,
                                                                                            ones)
    tracks["brow_furrow"] = base["brow_furrow"] + _ou(r_face, n, 2.0, 0.03 * ex, ones)
    tracks["squint"] = base["squint"] + 0.2 * np.maximum(tracks["smile"] - base["smile"], 0) + _ou(
        r_face, n, 2.0, 0.02 * ex, ones)

    # --- Eyes -------------------------------------------------------------------------------------------
    tracks["gaze_yaw"], tracks["gaze_pitch"] = _gaze_track(r_gaze, n, main_gaze, act)
    # The upper lid follows the eye when it looks down.
    lid = base["lid"] + 0.3 * np.clip(-tracks["gaze_pitch"] / 20.0, 0, 1)
    blink_frames = _blinks(r_blink, n, style["blink_rate"] * mot["blink"], phrases)
    blink = np.zeros(n)
    for f in blink_frames:
        seg = BLINK_SHAPE[: n - f]
        blink[f: f + len(seg)] = np.maximum(blink[f: f + len(seg)], seg)
    tracks["blink"] = np.maximum(lid, blink)
    peak = int(np.argmax(BLINK_SHAPE))
    blink_times = [(f + peak + 0.5) * DT for f in blink_frames if f + peak < n]

    tracks = check_tracks({k: np.asarray(v, np.float32) for k, v in tracks.items()}, clip=True)
    events = dict(blinks=[float(x) for x in blink_times], nods=[float(x) for x in (stressed + 0.03)[nod_amp != 0]],
                  phrases=[float(x) for x in phrases])
    return Performance(tracks=tracks, speech=speech, emotion=emotion, intensity=intensity, gaze=main_gaze,
                       distance=distance, seed=int(seed), style=style, events=events)


def perform_text(text: str, lang: str = "en", emotion: str = "neutral", intensity: float = 1.0, voice=None,
                 rate=None, pitch=None, gaze=None, distance=None, seed: int = 0, style=None) -> Performance:
    """Speak `text` with the emotion's prosody, then perform it: the voice and the face carry one emotion."""
    prosody = emotion_prosody(emotion, intensity)
    rate = DEFAULT_RATE if rate is None else _check_number("rate (words per minute)", rate, RATE_RANGE)
    pitch = DEFAULT_PITCH if pitch is None else _check_number("pitch", pitch, PITCH_RANGE)
    rate = float(np.clip(float(rate) * prosody["rate_scale"], *RATE_RANGE))
    pitch = float(np.clip(float(pitch) + prosody["pitch_offset"], *PITCH_RANGE))
    speech = speak(text, lang=lang, voice=voice, rate=rate, pitch=pitch)
    return perform(speech, emotion=emotion, intensity=intensity, gaze=gaze, distance=distance, seed=seed,
                   style=style)


__all__ = ["Performance", "perform", "perform_text", "emotion_prosody", "expression_baseline", "sample_style",
           "EXPRESSIONS", "MOTION", "PROSODY", "STYLE_DEFAULTS", "STYLE_RANGES", "BLINK_MIN_GAP"]
