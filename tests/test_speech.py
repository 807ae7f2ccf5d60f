"""Speech synthesis, phoneme timing and visemes: the audio side of the talking-head world."""
import numpy as np
import pytest

from vasa_lite.errors import InputError
from vasa_lite.world import speech as S
from vasa_lite.world.params import FACTORS, FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

BILABIAL = ("p", "b", "m")


def base(ph):
    return S.strip_stress(ph).rstrip("ː")


def test_speak_basic():
    s = S.speak("Hello world, this is a test.")
    assert s.sample_rate == SAMPLE_RATE == 16000
    assert s.audio.dtype == np.float32 and s.audio.ndim == 1
    assert len(s.audio) == s.n_frames * SAMPLES_PER_FRAME  # audio and 25 fps frames exactly aligned
    assert s.frame_audio().shape == (s.n_frames, SAMPLES_PER_FRAME)
    assert np.sqrt(np.mean(s.audio ** 2)) > 0.01 and np.abs(s.audio).max() <= 1.0
    assert [w.strip(",.") for _, _, w in s.words] == ["Hello", "world", "this", "is", "a", "test"]
    starts = [a for a, _, _ in s.phonemes]
    assert starts == sorted(starts)
    assert all(0 <= a < b <= s.duration + 1e-6 for a, b, _ in s.phonemes)
    assert all(a <= b for a, b, _ in s.words)
    assert s.voice == S.VOICES["en"][0] and s.rate == S.DEFAULT_RATE


@pytest.mark.parametrize("lang", sorted(S.LANGUAGES))
def test_every_language_speaks(lang):
    text = S.random_sentence(np.random.default_rng(0), lang, 3, 5)
    s = S.speak(text, lang=lang, voice="f1")
    assert s.duration > 0.4 and np.sqrt(np.mean(s.audio ** 2)) > 0.005
    assert len(s.words) >= 1
    sounds = [ph for _, _, ph in s.phonemes if not S.is_silence(ph)]
    assert len(sounds) >= 4
    # every sound maps to a real mouth shape; vowels open the jaw
    tracks = S.viseme_tracks(s)
    assert tracks["jaw"].max() > 0.15 and tracks["jaw"].std() > 0.02 and tracks["speaking"].any()


def test_determinism():
    a = S.speak("The happy people bought a big map.", voice="m3", rate=150, pitch=40)
    b = S.speak("The happy people bought a big map.", voice="m3", rate=150, pitch=40)
    assert a.audio.tobytes() == b.audio.tobytes()
    assert a.phonemes == b.phonemes and a.words == b.words
    r1, r2 = S.random_speech(7), S.random_speech(7)
    assert r1.text == r2.text and r1.audio.tobytes() == r2.audio.tobytes()
    assert S.random_sentence(3, "de") == S.random_sentence(3, "de")


def test_voice_rate_pitch_change_the_sound():
    text = "Maybe we open the window."
    m, f = S.speak(text, voice="m1"), S.speak(text, voice="linda")
    assert m.voice.endswith("+m1") and f.voice == "en-us+linda"
    assert m.audio.tobytes() != f.audio.tobytes()
    slow, fast = S.speak(text, rate=100), S.speak(text, rate=300)
    assert slow.duration > 1.8 * fast.duration


def test_random_speech_samples_its_factors():
    langs = set()
    for seed in range(12):
        s = S.random_speech(seed, min_words=3, max_words=5)
        assert s.lang in S.LANGUAGES and s.voice in S.VOICES[s.lang]
        assert 130 <= s.rate <= 200 and 30 <= s.pitch <= 70
        langs.add(s.lang)
    assert len(langs) >= 4


def closure_onsets(speech, tracks, min_vowel=0.06):
    """(phoneme start, onset time of the lip_close >= 0.9 run) for bilabials after a long enough vowel."""
    lc = tracks["lip_close"]
    out = []
    for i, (a, b, ph) in enumerate(speech.phonemes):
        pa, pb, prev = speech.phonemes[i - 1] if i else (0, 0, "_")
        if base(ph) not in BILABIAL or S.viseme_of(prev) not in ("aa", "E", "I", "O", "U") or pb - pa < min_vowel:
            continue
        k = int(round(a * 200)) // 8  # the frame holding the phoneme start
        assert lc[k] >= 0.9, f"lips not closed at the start of {ph!r} at {a:.3f} s"
        while k > 0 and lc[k - 1] >= 0.9:
            k -= 1
        out.append((a, (k + 0.5) / FPS))
        # the lips were open during the vowel before
        assert lc[int((pa + pb) / 2 * FPS)] < 0.6
    return out


@pytest.mark.parametrize("text", ["Mama, papa bob.", "A bomb, a map, and a baby ape."])
def test_bilabial_closure_onset_matches_phoneme_time(text):
    s = S.speak(text)
    tracks = S.viseme_tracks(s)
    pairs = closure_onsets(s, tracks)
    assert len(pairs) >= 3
    for start, onset in pairs:
        assert abs(onset - start) <= 1.0 / FPS + 1e-9, (start, onset)
    # the jaw is nearly shut while the lips are pressed
    closed = tracks["lip_close"] >= 0.99
    assert tracks["jaw"][closed].max() <= 0.1


def test_bilabial_closure_is_silent_in_the_audio():
    s = S.speak("Papa bob, a happy baby.")
    env = np.sqrt(np.mean(s.audio[: len(s.audio) // 80 * 80].reshape(-1, 80).astype(np.float64) ** 2, axis=1))
    checked = 0
    for i, (a, b, ph) in enumerate(s.phonemes):
        if base(ph) not in ("p", "b") or i == 0 or S.is_silence(s.phonemes[i - 1][2]):
            continue
        k = int(round(a * 200))  # 5 ms envelope steps
        closure = env[k: k + 6].mean()  # first 30 ms of the stop
        around = max(env[max(0, k - 24): k].max(), env[int(b * 200): int(b * 200) + 24].max())
        assert closure < 0.3 * around, f"{ph!r} at {a:.3f} s: closure {closure:.4f} vs vowels {around:.4f}"
        checked += 1
    assert checked >= 4


def test_viseme_tracks_shapes_and_ranges():
    s = S.speak("Who knew you would see me eat cheese?")
    tr = S.viseme_tracks(s)
    assert set(tr) == {"jaw", "lip_round", "lip_close", "voiced", "speaking"}
    for k in ("jaw", "lip_round", "lip_close"):
        assert tr[k].dtype == np.float32 and len(tr[k]) == s.n_frames
        assert FACTORS[k].low <= tr[k].min() and tr[k].max() <= FACTORS[k].high
    assert tr["voiced"].dtype == bool and tr["speaking"].dtype == bool
    labels = S.phoneme_labels(s)
    ids = S.viseme_ids(s)
    assert len(labels) == len(ids) == s.n_frames
    assert ids.min() >= 0 and ids.max() < len(S.VISEME_CLASSES)
    rounded = [k for k, lab in enumerate(labels) if base(lab) in ("u", "uː")]
    spread = [k for k, lab in enumerate(labels) if base(lab) in ("i", "iː")]
    assert rounded and spread
    assert tr["lip_round"][rounded].mean() > 0.3 > -0.3 > tr["lip_round"][spread].mean()
    # longer clip: padding frames are rest and silence
    longer = S.viseme_tracks(s, s.n_frames + 25)
    assert not longer["speaking"][-10:].any() and longer["jaw"][-5:].max() < 0.1
    assert S.phoneme_labels(s, s.n_frames + 25)[-1] == S.SILENCE


def test_anticipatory_rounding():
    s = S.speak("eat two")
    tr = S.viseme_tracks(s)
    u = next(a for a, _, ph in s.phonemes if base(ph) == "u")
    i_mid = next((a + b) / 2 for a, b, ph in s.phonemes if base(ph) == "i")
    k_u = int(u * FPS)
    # lips start rounding before the /u/ begins (during the /t/)
    assert tr["lip_round"][k_u - 1] > tr["lip_round"][int(i_mid * FPS)] + 0.3


def test_viseme_of_ipa_and_mnemonics():
    assert S.viseme_of("ˈaː") == S.viseme_of("A:") == "aa"
    assert S.viseme_of("m") == S.viseme_of("b") == "PP"
    assert S.viseme_of("u:") == S.viseme_of("uː") == "U"
    assert S.viseme_of("tS") == S.viseme_of("tʃ") == "CH"
    assert S.viseme_of("@") == S.viseme_of("ə") == "E"
    assert S.viseme_of("_:") == S.viseme_of("") == "sil"


def test_pitch_contour_sings_notes():
    def f0(x):
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[len(x) - 1:]
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 70
        return SAMPLE_RATE / (lo + np.argmax(ac[lo:hi]))

    s = S.speak("la la la la", voice="f1", pitch_contour=[20, 40, 60, 80])
    assert len(s.words) == 4 and s.pitch_contour == (20, 40, 60, 80)
    notes = [f0(s.audio[int(((a + b) / 2 - 0.04) * SAMPLE_RATE): int(((a + b) / 2 + 0.04) * SAMPLE_RATE)])
             for a, b, _ in s.words]
    assert all(x < y for x, y in zip(notes, notes[1:])), notes


def test_pad_and_join_keep_alignment():
    a, b = S.speak("Hello."), S.speak("Bob.")
    p = S.pad(a, before=0.4, after=0.2)
    assert len(p.audio) == p.n_frames * SAMPLES_PER_FRAME == len(a.audio) + 0.6 * SAMPLE_RATE
    assert p.phonemes[1][0] == pytest.approx(a.phonemes[0][0] + 0.4)
    j = S.join([a, b], pause=1.0)
    assert j.n_frames == a.n_frames + b.n_frames + 25
    assert j.words[-1][0] == pytest.approx(b.words[0][0] + a.duration + 1.0)
    assert not S.viseme_tracks(j)["speaking"][a.n_frames + 2: a.n_frames + 20].any()


@pytest.mark.parametrize("kwargs, words", [
    (dict(text=""), "non-empty"),
    (dict(text="   \n"), "non-empty"),
    (dict(text=None), "non-empty"),
    (dict(text="hi", lang="xx"), "accepted"),
    (dict(text="hi", voice="robot"), "accepted"),
    (dict(text="hi", lang="es", voice="en-us+m1"), "accepted"),
    (dict(text="hi", rate=20), "[80, 450]"),
    (dict(text="hi", rate=1000), "[80, 450]"),
    (dict(text="hi", pitch=-5), "[0, 100]"),
    (dict(text="hi", pitch="high"), "[0, 100]"),
    (dict(text="la la", pitch_contour=[50]), "one pitch"),
])
def test_errors(kwargs, words):
    with pytest.raises(InputError) as info:
        S.speak(**kwargs)
    assert words in str(info.value)


def test_errors_name_accepted_values():
    with pytest.raises(InputError, match="'en'"):
        S.speak("hi", lang="klingon")
    with pytest.raises(InputError, match="f1"):
        S.speak("hi", voice="nobody")
    with pytest.raises(InputError):
        S.random_sentence(0, "xx")
    with pytest.raises(InputError):
        S.random_sentence(0, "en", 5, 2)


def test_same_speech_in_a_fresh_process():
    """Determinism across processes (not just within one): every voice gives the same bytes everywhere."""
    import hashlib
    import subprocess
    import sys

    code = ("import hashlib; from vasa_lite.world.speech import speak, VARIANTS; "
            "print(' '.join(hashlib.md5(speak('Papa, mama, hola.', lang='es', voice=v).audio.tobytes()).hexdigest()"
            " for v in VARIANTS))")
    here = " ".join(hashlib.md5(S.speak("Papa, mama, hola.", lang="es", voice=v).audio.tobytes()).hexdigest()
                    for v in S.VARIANTS)
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert there == here
