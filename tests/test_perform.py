"""The actor's performance: every factor per frame, tied to the speech, random where a real actor varies."""
import numpy as np
import pytest

from vasa_lite.errors import InputError
from vasa_lite.world import perform as P
from vasa_lite.world import speech as S
from vasa_lite.world.params import EMOTIONS, FACTORS, FPS, FRAME_FACTOR_NAMES, check_tracks

POSE = ("yaw", "pitch", "roll")
MOUTH = ("jaw", "lip_round", "lip_close")


@pytest.fixture(scope="module")
def long_speech():
    """About a minute of speech: sentences with 1.5 s pauses between them."""
    parts = [S.random_speech(i, "en", min_words=6, max_words=10, n_sentences=2) for i in range(8)]
    speech = S.join(parts, pause=1.5)
    assert 45 < speech.duration < 90
    return speech


@pytest.fixture(scope="module")
def short_speech():
    return S.speak("Maybe we should open the window, the morning is beautiful.")


def test_every_track_present_in_range_and_aligned(short_speech):
    perf = P.perform(short_speech, seed=1)
    assert set(perf.tracks) == set(FRAME_FACTOR_NAMES)
    assert perf.n_frames == short_speech.n_frames
    for name, track in perf.tracks.items():
        f = FACTORS[name]
        assert track.dtype == np.float32 and track.shape == (perf.n_frames,)
        assert f.low <= track.min() and track.max() <= f.high, name
    check_tracks(perf.tracks)  # no clipping needed
    arr = perf.as_array()
    assert arr.shape == (perf.n_frames, len(FRAME_FACTOR_NAMES)) and arr.dtype == np.float32
    assert np.array_equal(perf.as_array(("jaw", "yaw"))[:, 1], perf.tracks["yaw"])
    assert perf.conditions() == dict(gaze=(0.0, 0.0), distance=1.0, emotion="neutral", intensity=1.0)


def test_determinism(short_speech):
    a = P.perform(short_speech, emotion="happy", intensity=0.7, seed=5)
    b = P.perform(short_speech, emotion="happy", intensity=0.7, seed=5)
    assert a.as_array().tobytes() == b.as_array().tobytes()
    assert a.style == b.style and a.events == b.events
    c = P.perform_text("Hello there.", emotion="sad", seed=2)
    d = P.perform_text("Hello there.", emotion="sad", seed=2)
    assert c.as_array().tobytes() == d.as_array().tobytes()
    assert c.speech.audio.tobytes() == d.speech.audio.tobytes()


def test_seeds_give_different_head_motion_but_the_same_mouth(long_speech):
    perfs = [P.perform(long_speech, seed=s) for s in range(4)]
    for i in range(len(perfs)):
        for j in range(i + 1, len(perfs)):
            a, b = perfs[i].tracks, perfs[j].tracks
            assert np.corrcoef(a["yaw"], b["yaw"])[0, 1] < 0.9
            assert np.sqrt(np.mean((a["yaw"] - b["yaw"]) ** 2)) > 1.5
            assert np.sqrt(np.mean((a["pitch"] - b["pitch"]) ** 2)) > 0.5
            for k in MOUTH:  # lip sync comes from the audio, not from the seed
                assert np.array_equal(a[k], b[k]), k


def test_head_motion_is_plausible(long_speech):
    for seed in range(6):
        perf = P.perform(long_speech, seed=seed)
        t = perf.tracks
        # typical angles well inside the ranges; the liveliness is near real video (VASA-1's table: 0.3-0.5)
        assert np.percentile(np.abs(t["yaw"]), 95) < 20
        assert np.percentile(np.abs(t["pitch"]), 95) < 15
        assert np.percentile(np.abs(t["roll"]), 95) < 10
        assert 0.15 < perf.delta_p() < 1.0
        assert np.abs(np.diff(t["yaw"])).max() < 3.0  # no jumps


def test_head_nods_follow_stressed_syllables(long_speech):
    perf = P.perform(long_speech, seed=0, style=dict(nod_gain=1.5))
    pitch = perf.tracks["pitch"].astype(np.float64)
    k = (np.asarray(perf.events["nods"]) * FPS).astype(int)
    k = k[(k > 10) & (k < len(pitch) - 10)]
    assert len(k) > 20
    dips = pitch[k] - 0.5 * (pitch[k - 10] + pitch[k + 10])
    assert dips.mean() < -0.5


def test_blinks(long_speech):
    for seed in range(5):
        perf = P.perform(long_speech, seed=seed)
        times = perf.blink_times()
        assert 10 <= perf.blink_rate() <= 25, perf.blink_rate()
        assert np.diff(times).min() >= P.BLINK_MIN_GAP - 1e-9
        blink = perf.tracks["blink"]
        assert np.all(blink[(times * FPS).astype(int)] == 1.0)  # eyes shut at each blink
        closed = blink > 0.5
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, closed.astype(int), 0])))[::2]
        assert runs.max() <= 4  # a blink is short: a few frames closed


def test_stillness_in_pauses(long_speech):
    speaking = S.viseme_tracks(long_speech)["speaking"]
    # frames at least 0.6 s into a pause
    quiet = np.convolve(speaking.astype(float), np.ones(31), mode="same") == 0
    assert quiet.sum() > 50
    for seed in range(4):
        pose = P.perform(long_speech, seed=seed).as_array(POSE)
        motion = np.abs(np.diff(pose, axis=0)).sum(axis=1)
        assert motion[quiet[1:]].mean() < 0.5 * motion[speaking[1:]].mean()


def test_emotions_shift_the_expression(long_speech):
    means = {e: {k: float(v.mean()) for k, v in P.perform(long_speech, emotion=e, seed=3).tracks.items()}
             for e in EMOTIONS}
    assert means["happy"]["smile"] > means["neutral"]["smile"] + 0.3 > means["sad"]["smile"] + 0.6
    assert means["happy"]["squint"] > means["neutral"]["squint"]
    assert means["angry"]["brow_furrow"] > means["neutral"]["brow_furrow"] + 0.4
    assert means["angry"]["smile"] < means["neutral"]["smile"]
    assert means["sad"]["blink"] > means["neutral"]["blink"] + 0.1  # drooping lids
    assert means["sad"]["pitch"] < means["neutral"]["pitch"]  # head down
    assert means["surprised"]["brow_raise"] > means["neutral"]["brow_raise"] + 0.4
    assert means["surprised"]["jaw"] > means["neutral"]["jaw"]
    lively = {e: P.perform(long_speech, emotion=e, seed=3).delta_p() for e in ("sad", "neutral", "angry")}
    assert lively["sad"] < lively["neutral"] < lively["angry"]


def test_intensity_scales_the_emotion(short_speech):
    neutral = P.perform(short_speech, seed=0)
    zero = P.perform(short_speech, emotion="happy", intensity=0.0, seed=0)
    half = P.perform(short_speech, emotion="happy", intensity=0.5, seed=0)
    full = P.perform(short_speech, emotion="happy", intensity=1.0, seed=0)
    assert np.allclose(zero.as_array(), neutral.as_array())
    smiles = [p.tracks["smile"].mean() for p in (zero, half, full)]
    assert smiles[0] < smiles[1] < smiles[2]


def test_gaze_follows_the_requested_direction(long_speech):
    perf = P.perform(long_speech, gaze=(12.0, -6.0), seed=4)
    assert perf.gaze == (12.0, -6.0)
    assert abs(perf.tracks["gaze_yaw"].mean() - 12.0) < 1.5
    assert abs(perf.tracks["gaze_pitch"].mean() + 6.0) < 1.5
    assert perf.tracks["gaze_yaw"].std() > 0.5  # saccades, not a stare
    forward = P.perform(long_speech, seed=4)
    assert abs(forward.tracks["gaze_yaw"].mean()) < 1.5 and abs(forward.tracks["gaze_pitch"].mean()) < 1.5
    rnd = P.perform(long_speech, gaze="random", seed=4)
    assert FACTORS["gaze_yaw"].low <= rnd.gaze[0] <= FACTORS["gaze_yaw"].high


def test_gaze_is_independent_of_the_head(short_speech):
    calm = P.perform(short_speech, seed=2, style=dict(head_scale=0.3))
    busy = P.perform(short_speech, seed=2, style=dict(head_scale=1.8))
    assert not np.allclose(calm.tracks["yaw"], busy.tracks["yaw"])
    assert np.array_equal(calm.tracks["gaze_yaw"], busy.tracks["gaze_yaw"])
    assert np.array_equal(calm.tracks["gaze_pitch"], busy.tracks["gaze_pitch"])


def test_distance_is_one_value_per_clip(short_speech):
    assert np.all(P.perform(short_speech).tracks["distance"] == 1.0)
    assert np.allclose(P.perform(short_speech, distance=0.9).tracks["distance"], 0.9)
    rnd = P.perform(short_speech, distance="random", seed=3)
    assert FACTORS["distance"].low <= rnd.distance <= FACTORS["distance"].high
    assert np.allclose(rnd.tracks["distance"], rnd.distance)


def test_styles(short_speech):
    a = P.perform(short_speech, seed=0, style=11)
    b = P.perform(short_speech, seed=1, style=11)
    assert a.style == b.style == P.sample_style(np.random.default_rng(11))  # one actor, two takes
    still = P.perform(short_speech, seed=0, style=dict(head_scale=0.0, nod_gain=0.0, tilt_gain=0.0))
    assert still.delta_p() < 0.05 < a.delta_p()
    assert set(P.perform(short_speech, seed=9).style) == set(P.STYLE_DEFAULTS)


def test_emotion_prosody():
    assert P.emotion_prosody("neutral") == dict(rate_scale=1.0, pitch_offset=0.0)
    sad, happy = P.emotion_prosody("sad"), P.emotion_prosody("happy")
    assert sad["rate_scale"] < 1.0 and sad["pitch_offset"] < 0
    assert happy["pitch_offset"] > 0
    assert P.emotion_prosody("surprised", 0.0) == dict(rate_scale=1.0, pitch_offset=0.0)
    text = "We will remember this wonderful summer together."
    assert P.perform_text(text, emotion="sad").speech.duration > P.perform_text(text).speech.duration
    assert P.perform_text(text, emotion="happy").speech.pitch > P.perform_text(text).speech.pitch


@pytest.mark.parametrize("kwargs, words", [
    (dict(emotion="bored"), "accepted: ['neutral'"),
    (dict(emotion="HAPPY"), "accepted"),
    (dict(intensity=1.5), "[0, 1]"),
    (dict(intensity=-0.1), "[0, 1]"),
    (dict(intensity="max"), "[0, 1]"),
    (dict(gaze=(45.0, 0.0)), "[-30.0, 30.0]"),
    (dict(gaze=(0.0, -25.0)), "[-20.0, 20.0]"),
    (dict(gaze="left"), "(gaze_yaw_deg, gaze_pitch_deg)"),
    (dict(gaze=(1.0, 2.0, 3.0)), "(gaze_yaw_deg, gaze_pitch_deg)"),
    (dict(distance=2.0), "[0.8, 1.25]"),
    (dict(seed=-1), "non-negative"),
    (dict(style=dict(wobble=1.0)), "accepted"),
    (dict(style=dict(head_scale=9.0)), "[0.0, 2.0]"),
    (dict(style="calm"), "style must be"),
])
def test_errors(short_speech, kwargs, words):
    with pytest.raises(InputError) as info:
        P.perform(short_speech, **kwargs)
    assert words in str(info.value)


def test_errors_outside_perform():
    with pytest.raises(InputError, match="Speech"):
        P.perform("hello")
    with pytest.raises(InputError, match="accepted"):
        P.emotion_prosody("bored")
    with pytest.raises(InputError, match="accepted"):
        P.perform_text("hello", lang="xx")
    with pytest.raises(InputError, match=r"\[80, 450\]"):
        P.perform_text("hello", rate=1000)
