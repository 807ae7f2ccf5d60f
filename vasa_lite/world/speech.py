"""Real synthesized speech with phoneme timing, and the mouth shapes (visemes) it implies.

The talking-head world speaks through eSpeak NG (the `espeakng-loader` wheel ships the library and its
data, so nothing is downloaded). eSpeak reports every phoneme and word with its time in the audio, which
gives exact ground truth for lip sync: the jaw, lip rounding and lip closure of every frame follow from
the phonemes, with coarticulation (the lips anticipate the next sound) as real speakers do.

    speech = speak("Papa bought a big map.", lang="en")
    speech.audio            # float32, 16 kHz, exactly speech.n_frames * 640 samples
    speech.phonemes         # [(start_s, end_s, "p"), ...]
    tracks = viseme_tracks(speech)   # {"jaw", "lip_round", "lip_close", "voiced", "speaking"} per frame
"""
from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from vasa_lite.errors import InputError
from vasa_lite.world.params import FACTORS, FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

# Supported languages: course code -> eSpeak NG voice name.
LANGUAGES = {
    "en": "en-us",
    "es": "es",
    "fr": "fr",
    "de": "de",
    "it": "it",
    "pt": "pt-br",
    "nl": "nl",
    "pl": "pl",
    "sv": "sv",
    "cs": "cs",
    "cmn": "cmn",
}
# eSpeak voice variants (formant sets): different speakers of the same language. Variants with breath noise
# (f2-f5) differ from process to process, so only variants that give the same bytes everywhere are used.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "Andrea", "Annie", "aunty", "belinda", "linda")
VOICES = {lang: tuple(f"{base}+{v}" for v in VARIANTS) for lang, base in LANGUAGES.items()}

RATE_RANGE = (80, 450)  # words per minute, eSpeak's own limits
PITCH_RANGE = (0, 100)  # eSpeak's base pitch scale, 50 = the voice's normal
DEFAULT_RATE = 165
DEFAULT_PITCH = 50
ESPEAK_RATE = 22050

SILENCE = "_"


@dataclass(eq=False)  # holds arrays: compare audio and timing explicitly
class Speech:
    """One utterance: 16 kHz audio whose length is a whole number of 25 fps frames, plus its timing.

    phonemes and words are (start_s, end_s, label) in seconds from the start of `audio`. Phoneme labels
    are IPA as eSpeak writes them, stress marks included ("ˈa" is a stressed vowel); "_" is a pause.
    """

    audio: np.ndarray
    sample_rate: int
    text: str
    lang: str
    voice: str
    rate: int
    pitch: int
    phonemes: list = field(default_factory=list)
    words: list = field(default_factory=list)
    pitch_contour: tuple | None = None

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def n_frames(self) -> int:
        return len(self.audio) // SAMPLES_PER_FRAME

    def frame_audio(self) -> np.ndarray:
        """The audio cut into frames: [n_frames, 640], row k is what plays during video frame k."""
        return self.audio[: self.n_frames * SAMPLES_PER_FRAME].reshape(self.n_frames, SAMPLES_PER_FRAME)

    def save(self, path) -> None:
        """Write the audio as a 16 kHz WAV file."""
        import soundfile as sf

        sf.write(str(path), self.audio, self.sample_rate)

    def __repr__(self) -> str:
        return (f"Speech(lang={self.lang!r}, voice={self.voice!r}, {self.duration:.2f} s, {self.n_frames} frames, "
                f"{len(self.words)} words, {len(self.phonemes)} phonemes, text={self.text[:40]!r})")


# ---------------------------------------------------------------------------------------------------------
# eSpeak NG through ctypes. Field order and types follow speak_lib.h (espeak_EVENT, API revision 12).
# ---------------------------------------------------------------------------------------------------------
_EVENT_WORD, _EVENT_PHONEME = 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 0x0001, 0x0002
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),  # word length in characters (WORD events)
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis call
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()  # eSpeak is one global synthesizer: one call at a time
_engine: dict = {}  # the private library copy, and the buffers of the call in progress


def _on_synth(wav, n_samples, events):
    buf = _engine["buffers"]
    if wav and n_samples > 0:
        buf["audio"].append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
    i = 0
    while events[i].type != 0:
        e = events[i]
        if e.type == _EVENT_PHONEME:
            name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace")
            buf["events"].append(("phoneme", e.text_position, 0, e.audio_position, name))
        elif e.type == _EVENT_WORD:
            buf["events"].append(("word", e.text_position, e.length, e.audio_position, ""))
        i += 1
    return 0


def _remove_copy(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # a forked worker must not delete its parent's copy
        shutil.rmtree(folder, ignore_errors=True)


def _library_copy() -> tuple[str, str]:
    """A private copy of libespeak-ng (made once per process) and the path of eSpeak's data."""
    if "path" not in _engine:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise InputError("speech needs the 'espeakng-loader' package: pip install espeakng-loader") from exc
        src = espeakng_loader.get_library_path()
        folder = tempfile.mkdtemp(prefix="vasa-lite-espeak-")
        path = os.path.join(folder, "vasa-" + os.path.basename(src))
        shutil.copyfile(src, path)
        atexit.register(_remove_copy, folder, os.getpid())
        _engine.update(path=path, data=espeakng_loader.get_data_path(), callback=_CALLBACK_TYPE(_on_synth))
    return _engine["path"], _engine["data"]


def _synth_raw(text: str, voice: str, rate: int, pitch: int, pitch_range: int = 50):
    """One eSpeak call: int16 audio at 22050 Hz and the (kind, text_pos, length, ms, name) events.

    eSpeak's wave generator keeps hidden state between calls in C statics (the pitch-flutter phase, the gain
    control), so the same text would come out slightly different each time. Loading a private copy of the
    library fresh for every call (about 10 ms) starts each synthesis from the same state: same call, same bytes.
    """
    import _ctypes

    with _lock:
        path, data = _library_copy()
        lib = ctypes.CDLL(path)
        try:
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
            rate_hz = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), options)
            if rate_hz != ESPEAK_RATE:
                raise RuntimeError(f"eSpeak NG failed to initialize (returned {rate_hz})")
            lib.espeak_SetSynthCallback(_engine["callback"])
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise InputError(f"eSpeak has no voice {voice!r}")
            lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
            _engine["buffers"] = buf = {"audio": [], "events": []}
            encoded = text.encode("utf-8")
            lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Terminate()
        finally:
            close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")
            close(lib._handle)
        audio = np.concatenate(buf["audio"]) if buf["audio"] else np.zeros(0, np.int16)
        return audio, list(buf["events"])


# ---------------------------------------------------------------------------------------------------------
# speak()
# ---------------------------------------------------------------------------------------------------------
def _resolve_voice(lang: str, voice) -> str:
    if lang not in LANGUAGES:
        raise InputError(f"unknown language {lang!r}; accepted: {sorted(LANGUAGES)}")
    if voice is None:
        return VOICES[lang][0]
    if voice in VARIANTS:
        return f"{LANGUAGES[lang]}+{voice}"
    if voice in VOICES[lang]:
        return voice
    raise InputError(f"unknown voice {voice!r} for language {lang!r}; accepted: a variant from {list(VARIANTS)} "
                     f"or a full name from {list(VOICES[lang])}")


def _check_number(name: str, value, bounds) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [{bounds[0]}, {bounds[1]}], got {value!r}") from None
    if not np.isfinite(v) or not bounds[0] <= v <= bounds[1]:
        raise InputError(f"{name} {value!r} out of range; accepted: [{bounds[0]}, {bounds[1]}]")
    return int(round(v))


def speak(text: str, lang: str = "en", voice: str | None = None, rate: float | None = None,
          pitch: float | None = None, pitch_contour=None) -> Speech:
    """Synthesize `text` and return a Speech with 16 kHz audio and phoneme/word timing.

    voice: a variant from VARIANTS ("m1", "f2", ...) or a full name from VOICES[lang]; None gives the first.
    rate: words per minute in RATE_RANGE; pitch: base pitch in PITCH_RANGE (50 is the voice's normal).
    pitch_contour: optional, one pitch (PITCH_RANGE) per whitespace-separated word; each word is then sung
    on that flat note, a crude melody for singing.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"text must be a non-empty string with something to say, got {text!r}")
    full_voice = _resolve_voice(lang, voice)
    rate = DEFAULT_RATE if rate is None else _check_number("rate (words per minute)", rate, RATE_RANGE)
    pitch = DEFAULT_PITCH if pitch is None else _check_number("pitch", pitch, PITCH_RANGE)
    text = " ".join(text.split())

    if pitch_contour is None:
        raw, events = _synth_raw(text, full_voice, rate, pitch)
        contour = None
    else:
        words = list(re.finditer(r"\S+", text))
        contour = tuple(_check_number("pitch_contour value", p, PITCH_RANGE) for p in np.ravel(pitch_contour))
        if len(contour) != len(words):
            raise InputError(f"pitch_contour has {len(contour)} values but the text has {len(words)} words; "
                             f"give one pitch in {list(PITCH_RANGE)} per word")
        chunks, events, offset = [], [], 0
        for m, p in zip(words, contour):
            # A narrow pitch range keeps each word on its note.
            a, ev = _synth_raw(m.group(), full_voice, rate, p, pitch_range=5)
            ms = 1000.0 * offset / ESPEAK_RATE
            events += [(k, pos + m.start(), n, t + ms, name) for k, pos, n, t, name in ev]
            chunks.append(a)
            offset += len(a)
        raw = np.concatenate(chunks)

    if raw.size == 0 or not np.any(raw):
        raise InputError(f"eSpeak produced no sound for {text!r} in language {lang!r}; give words to speak")
    audio = _to_16k(raw)
    n_frames = -(-len(audio) // SAMPLES_PER_FRAME)
    audio = np.pad(audio, (0, n_frames * SAMPLES_PER_FRAME - len(audio)))
    phonemes, words = _timing(events, text, raw_duration=len(raw) / ESPEAK_RATE)
    phonemes = _closure_onsets(phonemes, audio)
    words = _word_spans(words, phonemes)
    return Speech(audio=audio, sample_rate=SAMPLE_RATE, text=text, lang=lang, voice=full_voice, rate=rate,
                  pitch=pitch, phonemes=[(s, e, ph) for s, e, ph, _ in phonemes], words=words,
                  pitch_contour=contour)


def _to_16k(raw: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    # 16000 / 22050 = 320 / 441; the polyphase filter is linear-phase, so event times stay where they were.
    x = raw.astype(np.float64) / 32768.0
    return np.clip(resample_poly(x, 320, 441), -1.0, 1.0).astype(np.float32)


def _timing(events, text: str, raw_duration: float):
    """Turn eSpeak events into phoneme intervals (with their word index) and word events."""
    word_events = [(pos, n, t / 1000.0) for kind, pos, n, t, _ in events if kind == "word"]
    spans = [(pos, pos + n) for pos, n, _ in word_events]

    def word_of(pos):
        for i, (a, b) in enumerate(spans):
            if a <= pos < b:
                return i
        return None

    word_times = np.array([t for _, _, t in word_events])

    def word_at(t):
        # A word event comes just before its first phoneme, so a sound belongs to the last word begun.
        i = int(np.searchsorted(word_times, t + 1e-4, side="right")) - 1
        return i if i >= 0 else None

    marks = []
    for kind, pos, _, t, name in events:
        if kind != "phoneme" or name.startswith("("):  # "(en)" marks a language switch, not a sound
            continue
        marks.append([t / 1000.0, name, word_of(pos)])
    unnamed = [not name for _, name, _ in marks]
    for i, (t, name, w) in enumerate(marks):
        if name:
            continue
        # Pauses have no IPA name, and neither has a glottal onset inside a word. A pause comes as a pair of
        # unnamed events or lasts a while; a short, lone unnamed event inside a word is a glottal stop.
        end = marks[i + 1][0] if i + 1 < len(marks) else raw_duration
        paired = any(0 <= j < len(marks) and unnamed[j] for j in (i - 1, i + 1))
        if w is None or paired or end - t >= 0.06:
            marks[i][1] = SILENCE
        else:
            marks[i][1] = "ʔ"
    for m in marks:
        m[2] = None if m[1] == SILENCE else word_at(m[0])
    phonemes = []
    for i, (t, name, w) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else raw_duration
        end = min(end, raw_duration)
        if end - t <= 1e-4:
            continue
        if name == SILENCE and phonemes and phonemes[-1][2] == SILENCE:
            phonemes[-1][1] = end  # eSpeak writes a clause pause as two pause phonemes: keep one
        else:
            phonemes.append([t, end, name, w])
    words = [(text[pos - 1: pos - 1 + n], t) for pos, n, t in word_events]
    return phonemes, words


_STOPS = set("pbtdkgɡcɟqɢʈɖ")


def _closure_onsets(phonemes, audio: np.ndarray):
    """Move the start of each stop back to where its closure silence begins.

    eSpeak times a voiceless stop at its release burst and gives the silent closure before it to the
    preceding phoneme; the lips (for p) are already shut during that silence, so the ground truth starts there.
    """
    hop = SAMPLE_RATE // 200  # 5 ms envelope
    n = len(audio) // hop
    env = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    loud = env[env > np.percentile(env, 30)] if n else env
    thresh = 0.12 * float(np.median(loud)) if loud.size else 0.0
    for i in range(1, len(phonemes)):
        start, _, name, _ = phonemes[i]
        base = _base_symbols(name)
        if not base or base[0] not in _STOPS:
            continue
        k = int(round(start * 200))
        lowest = max(int(np.ceil((phonemes[i - 1][0] + 0.01) * 200)), k - 14)  # at most 70 ms back
        j = k
        while j - 1 >= lowest and j - 1 < n and env[j - 1] < thresh:
            j -= 1
        if j < k - 1:  # a real closure silence, not one quiet 5 ms window
            phonemes[i][0] = j / 200.0
            phonemes[i - 1][1] = j / 200.0
    return phonemes


def _word_spans(words, phonemes):
    """Word intervals from their phonemes: from the first phoneme's start to the last one's end."""
    out = []
    for i, (word, t) in enumerate(words):
        own = [(s, e) for s, e, _, w in phonemes if w == i]
        if own:
            out.append((own[0][0], own[-1][1], word))
        else:
            out.append((t, t, word))
    return out


def _shifted(speech: Speech, dt: float):
    return ([(a + dt, b + dt, x) for a, b, x in speech.phonemes], [(a + dt, b + dt, x) for a, b, x in speech.words])


def pad(speech: Speech, before: float = 0.0, after: float = 0.0) -> Speech:
    """Silence before and after the speech, rounded to whole frames so audio and frames stay aligned."""
    if not (np.isfinite(before) and np.isfinite(after) and before >= 0 and after >= 0):
        raise InputError(f"pad needs before >= 0 and after >= 0 seconds, got {before!r}, {after!r}")
    nb, na = (int(round(x * FPS)) * SAMPLES_PER_FRAME for x in (before, after))
    phonemes, words = _shifted(speech, nb / SAMPLE_RATE)
    if nb:
        phonemes.insert(0, (0.0, nb / SAMPLE_RATE, SILENCE))
    if na:
        phonemes.append((phonemes[-1][1] if phonemes else 0.0, (nb + len(speech.audio) + na) / SAMPLE_RATE, SILENCE))
    audio = np.concatenate([np.zeros(nb, np.float32), speech.audio, np.zeros(na, np.float32)])
    return Speech(audio, speech.sample_rate, speech.text, speech.lang, speech.voice, speech.rate, speech.pitch,
                  phonemes, words, speech.pitch_contour)


def join(speeches, pause: float = 0.5) -> Speech:
    """One Speech from several, with `pause` seconds of silence (whole frames) between them.

    Long pauses matter for the performance: the head settles when the actor stops talking.
    """
    speeches = list(speeches)
    if not speeches or not all(isinstance(s, Speech) for s in speeches):
        raise InputError("join needs a non-empty list of Speech objects")
    gap = int(round(max(0.0, float(pause)) * FPS)) * SAMPLES_PER_FRAME
    audio, phonemes, words, offset = [], [], [], 0
    for i, s in enumerate(speeches):
        if i and gap:
            audio.append(np.zeros(gap, np.float32))
            phonemes.append((offset / SAMPLE_RATE, (offset + gap) / SAMPLE_RATE, SILENCE))
            offset += gap
        p, w = _shifted(s, offset / SAMPLE_RATE)
        phonemes += p
        words += w
        audio.append(s.audio)
        offset += len(s.audio)
    first = speeches[0]
    return Speech(np.concatenate(audio), first.sample_rate, " ".join(s.text for s in speeches), first.lang,
                  first.voice, first.rate, first.pitch, phonemes, words, None)


# ---------------------------------------------------------------------------------------------------------
# Random sentences: small lists of real words, so eSpeak pronounces real phoneme sequences.
# ---------------------------------------------------------------------------------------------------------
WORDS = {
    "en": "the a and with very my your we they is was people baby morning water mother father paper music happy "
          "summer window beautiful problem simple moment number open maybe table apple blue green big small house "
          "city river mountain friend family story world time day night book picture dinner market bring make move "
          "play speak think remember believe wonderful quiet together yellow orange sometimes important",
    "es": "el la y con muy mi nosotros persona mañana agua madre padre bebé música feliz verano ventana problema "
          "momento número abrir mesa manzana azul verde grande pequeño casa ciudad río montaña amigo familia "
          "historia mundo tiempo día noche libro playa comer beber hablar pensar bonito siempre importante",
    "fr": "le la et avec très mon nous personne matin eau mère père bébé musique heureux été fenêtre problème "
          "moment nombre ouvrir table pomme bleu vert grand petit maison ville rivière montagne ami famille "
          "histoire monde temps jour nuit livre plage manger boire parler penser beau toujours important",
    "de": "der die und mit sehr mein wir Mensch Morgen Wasser Mutter Vater Baby Musik glücklich Sommer Fenster "
          "Problem Moment Nummer öffnen Tisch Apfel blau grün groß klein Haus Stadt Fluss Berg Freund Familie "
          "Geschichte Welt Zeit Tag Nacht Buch Strand essen trinken sprechen denken schön immer wichtig",
    "it": "il la e con molto mio noi persona mattina acqua madre padre bambino musica felice estate finestra "
          "problema momento numero aprire tavolo mela blu verde grande piccolo casa città fiume montagna amico "
          "famiglia storia mondo tempo giorno notte libro spiaggia mangiare bere parlare pensare bello sempre",
    "pt": "o a e com muito meu nós pessoa manhã água mãe pai bebê música feliz verão janela problema momento "
          "número abrir mesa maçã azul verde grande pequeno casa cidade rio montanha amigo família história "
          "mundo tempo dia noite livro praia comer beber falar pensar bonito sempre importante",
    "nl": "de het en met heel mijn wij mens morgen water moeder vader baby muziek blij zomer raam probleem "
          "moment nummer openen tafel appel blauw groen groot klein huis stad rivier berg vriend familie "
          "verhaal wereld tijd dag nacht boek strand eten drinken spreken denken mooi altijd belangrijk",
    "pl": "i z bardzo mój my to jest człowiek poranek woda matka ojciec dziecko muzyka szczęśliwy lato okno "
          "problem moment numer otworzyć stół jabłko niebieski zielony duży mały dom miasto rzeka góra "
          "przyjaciel rodzina historia świat czas dzień noc książka plaża jeść pić mówić myśleć piękny zawsze",
    "sv": "och med mycket min vi är en människa morgon vatten mamma pappa bebis musik glad sommar fönster "
          "problem ögonblick nummer öppna bord äpple blå grön stor liten hus stad flod berg vän familj historia "
          "värld tid dag natt bok strand äta dricka prata tänka vacker alltid viktig",
    "cs": "a s velmi můj my je to člověk ráno voda matka otec miminko hudba šťastný léto okno problém moment "
          "číslo otevřít stůl jablko modrý zelený velký malý dům město řeka hora přítel rodina příběh svět čas "
          "den noc kniha pláž jíst pít mluvit myslet krásný vždy důležitý",
    "cmn": "我们 你好 妈妈 爸爸 朋友 学生 老师 中国 今天 明天 时间 音乐 喜欢 美丽 北京 工作 吃饭 喝水 说话 快乐 "
           "天气 早上 晚上 电影 漂亮 高兴 猫 狗 山 水 花 很 是 在 和 有 看 走",
}
WORDS = {lang: tuple(words.split()) for lang, words in WORDS.items()}


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def random_sentence(rng=None, lang: str = "en", min_words: int = 4, max_words: int = 10) -> str:
    """A random sentence of real words (not grammatical), with an occasional comma and question."""
    if lang not in WORDS:
        raise InputError(f"unknown language {lang!r}; accepted: {sorted(WORDS)}")
    if not (isinstance(min_words, (int, np.integer)) and isinstance(max_words, (int, np.integer))
            and 1 <= min_words <= max_words):
        raise InputError(f"need integers 1 <= min_words <= max_words, got {min_words!r}, {max_words!r}")
    rng = _rng(rng)
    n = int(rng.integers(min_words, max_words + 1))
    words = [WORDS[lang][i] for i in rng.integers(0, len(WORDS[lang]), n)]
    if n >= 5 and rng.random() < 0.4:  # a comma makes a phrase boundary and a short pause
        k = int(rng.integers(2, n - 1))
        words[k - 1] += ","
    end = "?" if rng.random() < 0.15 else "."
    if lang == "cmn":
        return "".join(w.rstrip(",") + ("，" if w.endswith(",") else "") for w in words) + ("？" if end == "?" else "。")
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words) + end


def random_speech(rng=None, lang: str | None = None, min_words: int = 4, max_words: int = 10,
                  n_sentences: int = 1, rate_range=(130, 200), pitch_range=(30, 70)) -> Speech:
    """Random sentences spoken by a random voice of a random (or given) language, rate and pitch."""
    rng = _rng(rng)
    if lang is None:
        lang = sorted(LANGUAGES)[int(rng.integers(len(LANGUAGES)))]
    if lang not in LANGUAGES:
        raise InputError(f"unknown language {lang!r}; accepted: {sorted(LANGUAGES)}")
    text = " ".join(random_sentence(rng, lang, min_words, max_words) for _ in range(max(1, int(n_sentences))))
    voice = VARIANTS[int(rng.integers(len(VARIANTS)))]
    rate = int(rng.integers(rate_range[0], rate_range[1] + 1))
    pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
    return speak(text, lang=lang, voice=voice, rate=rate, pitch=pitch)


# ---------------------------------------------------------------------------------------------------------
# Visemes: phonemes -> jaw, lip_round, lip_close, with coarticulation.
# ---------------------------------------------------------------------------------------------------------
# Classes in the spirit of the common 15-viseme set: silence, 9 consonant groups, 5 vowel groups.
VISEME_CLASSES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")

# Vowels: (viseme, jaw, lip_round). Lips are never closed on a vowel.
_VOWELS = {
    "i": ("I", 0.18, -0.8), "ɪ": ("I", 0.25, -0.5), "y": ("U", 0.18, 0.8), "ʏ": ("U", 0.25, 0.6),
    "ɨ": ("I", 0.2, -0.3), "ᵻ": ("I", 0.25, -0.3), "ʉ": ("U", 0.2, 0.6), "ɯ": ("I", 0.2, -0.4), "u": ("U", 0.2, 0.9),
    "ʊ": ("U", 0.28, 0.6), "e": ("E", 0.38, -0.55), "ø": ("O", 0.35, 0.6), "ɘ": ("E", 0.35, -0.1),
    "ɵ": ("O", 0.35, 0.3), "ɤ": ("E", 0.35, -0.2), "o": ("O", 0.42, 0.75), "ə": ("E", 0.35, 0.0),
    "ɚ": ("RR", 0.3, 0.25), "ɝ": ("RR", 0.35, 0.25), "ɛ": ("E", 0.5, -0.4), "œ": ("O", 0.48, 0.5),
    "ɜ": ("E", 0.42, 0.0), "ɞ": ("O", 0.45, 0.3), "ʌ": ("aa", 0.55, -0.05), "ɔ": ("O", 0.55, 0.55),
    "æ": ("aa", 0.68, -0.35), "ɐ": ("aa", 0.55, 0.0), "a": ("aa", 0.75, -0.1), "ɶ": ("aa", 0.65, 0.35),
    "ɑ": ("aa", 0.78, 0.05), "ɒ": ("O", 0.7, 0.35),
}
# Consonants: (viseme, jaw, lip_round, lip_close, kind); kind picks the dominance below.
_CONSONANTS = {}
for _syms, _spec in [
    ("pbmʙɓ", ("PP", 0.04, 0.0, 1.0, "bilabial")),
    ("ɸβ", ("PP", 0.1, 0.1, 0.6, "labiodental")),
    ("fvɱ", ("FF", 0.1, -0.1, 0.55, "labiodental")),
    ("ʋ", ("FF", 0.15, 0.0, 0.35, "labiodental")),
    ("θð", ("TH", 0.15, -0.1, 0.05, "other")),
    ("tdʈɖɾɽ", ("DD", 0.16, -0.1, 0.0, "other")),
    ("nɳɲŋɴ", ("nn", 0.15, 0.0, 0.0, "other")),
    ("lɫɭʎʟɬɮ", ("nn", 0.2, 0.0, 0.0, "other")),
    ("szʦʣ", ("SS", 0.1, -0.3, 0.0, "other")),
    ("ʃʒ", ("CH", 0.12, 0.45, 0.0, "rounded")),
    ("ɕʑʂʐ", ("CH", 0.12, 0.2, 0.0, "other")),
    ("cɟçʝ", ("kk", 0.18, -0.3, 0.0, "other")),
    ("kgɡqɢxɣχʁħʕ", ("kk", 0.25, 0.0, 0.0, "other")),
    ("rʀɻ", ("RR", 0.18, 0.1, 0.0, "other")),
    ("ɹ", ("RR", 0.2, 0.4, 0.0, "rounded")),
    ("j", ("I", 0.15, -0.5, 0.0, "other")),
    ("wʍ", ("U", 0.15, 0.9, 0.25, "rounded")),
    ("ɥ", ("U", 0.15, 0.8, 0.2, "rounded")),
    ("hɦʔ", ("kk", 0.3, 0.0, 0.0, "weak")),
]:
    for _s in _syms:
        _CONSONANTS[_s] = _spec
_VOICELESS = set("ptkcqʈfθsʃɕʂçxχħhʔɸʍɬʦ")
# How strongly a sound imposes its shape on its neighbours, per (jaw, lip_round, lip_close).
_DOMINANCE = {
    "vowel": (1.0, 1.0, 1.0), "bilabial": (2.0, 0.3, 1.5), "labiodental": (0.8, 0.3, 1.5),
    "rounded": (0.3, 1.2, 0.4), "other": (0.35, 0.12, 0.4), "weak": (0.05, 0.05, 0.05), "silence": (0.8, 0.8, 0.8),
}
REST = {"jaw": 0.03, "lip_round": 0.0, "lip_close": 0.15}  # mouth relaxed and lightly closed
_SHAPE_KEYS = ("jaw", "lip_round", "lip_close")
# eSpeak's ASCII phoneme mnemonics, for callers that pass them instead of IPA.
_ASCII = {"@": "ə", "3": "ɜ", "0": "ɒ", "A": "ɑ", "E": "ɛ", "I": "ɪ", "O": "ɔ", "U": "ʊ", "V": "ʌ", "S": "ʃ",
          "Z": "ʒ", "T": "θ", "D": "ð", "N": "ŋ", "Y": "ø", "W": "œ", "R": "r", "L": "l", "C": "ç", "X": "x",
          "Q": "ɒ", "g": "ɡ", "B": "β", "J": "ɲ", "?": "ʔ"}
_IGNORED = set("ˈˌːˑʲʰʷˠˤ-'\",:#;!=~^|%&*+/.<>")


def _base_symbols(name: str) -> list[str]:
    """The base letters of a phoneme name: stress, length and diacritics dropped, ASCII mnemonics mapped."""
    if not name or name.strip("_:!") == "":
        return []
    mnemonic = name.isascii()  # IPA names are never pure ASCII except plain letters, which map to themselves
    out = []
    for ch in name:
        if mnemonic:
            ch = _ASCII.get(ch, ch)
        if ch in _IGNORED or unicodedata.combining(ch) or unicodedata.category(ch).startswith(("Lm", "Sk", "N")):
            continue
        out.append(ch)
    return out


def is_silence(name: str) -> bool:
    return not _base_symbols(name)


def strip_stress(name: str) -> str:
    """The phoneme without stress marks ("ˈa" -> "a"), "_" for a pause."""
    s = name.replace("ˈ", "").replace("ˌ", "")
    return s if _base_symbols(s) else SILENCE


def is_stressed(name: str) -> bool:
    return "ˈ" in name or "'" in name


def _segments(name: str):
    """Sub-segments of one phoneme as (fraction, viseme, jaw, round, close, kind, voiced).

    A diphthong ("aʊ") moves from its first vowel to its second, so it becomes one segment per vowel. A
    consonant cluster label ("tʃ", "sx") takes its most visible member: bilabial, then labiodental, then rounded.
    """
    syms = _base_symbols(name)
    if not syms:
        return [(1.0, "sil", REST["jaw"], REST["lip_round"], REST["lip_close"], "silence", False)]
    vowels = [s for s in syms if s in _VOWELS]
    voiceless = any(unicodedata.name(c, "").endswith("RING BELOW") for c in name)
    if vowels:
        return [(1.0 / len(vowels), *_VOWELS[v], 0.0, "vowel", True) for v in vowels]
    known = [s for s in syms if s in _CONSONANTS]
    if not known:  # an unknown letter: a neutral, weakly held consonant
        return [(1.0, "DD", 0.2, 0.0, 0.0, "weak", True)]
    order = {"bilabial": 0, "labiodental": 1, "rounded": 2}
    best = min(reversed(known), key=lambda s: order.get(_CONSONANTS[s][4], 3))
    vis, jaw, rnd, close, kind = _CONSONANTS[best]
    voiced = not (voiceless or best in _VOICELESS)
    return [(1.0, vis, jaw, rnd, close, kind, voiced)]


def viseme_of(phoneme: str) -> str:
    """The viseme class (from VISEME_CLASSES) of one phoneme name, IPA or eSpeak ASCII mnemonic."""
    return _segments(phoneme)[0][1]


_FINE = 200  # Hz: the coarticulation model runs on a 5 ms grid, then averages into 40 ms frames


def _fine_targets(speech: Speech, n_fine: int):
    """Per 5 ms step: target shapes, dominances, viseme id, voiced, speaking, and bilabial closure mask."""
    tgt = {k: np.full(n_fine, REST[k], np.float64) for k in _SHAPE_KEYS}
    dom = {k: np.full(n_fine, _DOMINANCE["silence"][i], np.float64) for i, k in enumerate(_SHAPE_KEYS)}
    vis = np.zeros(n_fine, np.int64)
    voiced = np.zeros(n_fine, bool)
    speaking = np.zeros(n_fine, bool)
    closure = np.zeros(n_fine, bool)
    for start, end, name in speech.phonemes:
        t = start
        for frac, v, jaw, rnd, close, kind, is_voiced in _segments(name):
            t1 = t + frac * (end - start)
            a, b = int(round(t * _FINE)), max(int(round(t1 * _FINE)), int(round(t * _FINE)) + 1)
            a, b = min(a, n_fine), min(b, n_fine)
            for i, (k, value) in enumerate(zip(_SHAPE_KEYS, (jaw, rnd, close))):
                tgt[k][a:b] = value
                dom[k][a:b] = _DOMINANCE[kind][i]
            vis[a:b] = VISEME_CLASSES.index(v)
            voiced[a:b] = is_voiced
            speaking[a:b] = kind != "silence"
            if kind == "bilabial":
                # Stops hold the closure until the release, about 60% into the interval; m holds it throughout.
                hold = 1.0 if _base_symbols(name)[-1] in "mɱ" else 0.6
                closure[a: a + max(1, int(round(hold * (b - a))))] = True
            t = t1
    return tgt, dom, vis, voiced, speaking, closure


# Look-ahead and look-behind time constants (s) per shape: rounding is planned far ahead, lip closure is fast.
_TIME_CONSTANTS = {"jaw": (0.06, 0.03), "lip_round": (0.1, 0.04), "lip_close": (0.04, 0.02)}


def _coarticulate(target: np.ndarray, dominance: np.ndarray, ahead: float = 0.06, behind: float = 0.03):
    """Dominance-weighted smoothing with an asymmetric kernel (Cohen-Massaro style).

    Output at t averages targets at t+tau weighted by exp(-|tau|/ahead) for future tau and exp(-|tau|/behind)
    for past tau; the longer look-ahead makes the mouth anticipate the next sound.
    """
    taus = np.arange(-int(0.25 * _FINE), int(0.25 * _FINE) + 1) / _FINE
    w = np.where(taus >= 0, np.exp(-taus / ahead), np.exp(taus / behind))
    # np.convolve flips the kernel; flipping it first gives a correlation, y[t] = sum_tau w[tau] x[t + tau].
    pad = len(taus) // 2
    x = np.pad(target * dominance, pad, mode="edge")
    d = np.pad(dominance, pad, mode="edge")
    num = np.convolve(x, w[::-1], mode="valid")
    den = np.convolve(d, w[::-1], mode="valid")
    return num / np.maximum(den, 1e-9)


def viseme_tracks(speech: Speech, n_frames: int | None = None) -> dict[str, np.ndarray]:
    """Per-frame mouth tracks at 25 fps: jaw, lip_round, lip_close (float32, in range), voiced, speaking (bool).

    Frame k covers audio samples [640 k, 640 (k+1)). Shapes come from phoneme targets smoothed with
    anticipation; each bilabial closure is then enforced (lips shut, jaw nearly closed) from its phoneme start.
    """
    n_frames = speech.n_frames if n_frames is None else int(n_frames)
    if n_frames < 0:
        raise InputError(f"n_frames must be >= 0, got {n_frames}")
    step = _FINE // FPS  # 8 fine steps per frame
    n_fine = n_frames * step
    if n_frames == 0:
        return {**{k: np.zeros(0, np.float32) for k in _SHAPE_KEYS}, "voiced": np.zeros(0, bool),
                "speaking": np.zeros(0, bool)}
    tgt, dom, _, voiced, speaking, closure = _fine_targets(speech, n_fine)
    shapes = {k: _coarticulate(tgt[k], dom[k], *_TIME_CONSTANTS[k]) for k in _SHAPE_KEYS}
    shapes["lip_close"] = np.where(closure, 1.0, shapes["lip_close"])
    shapes["jaw"] = np.where(closure, np.minimum(shapes["jaw"], 0.06), shapes["jaw"])
    out = {}
    shut = closure.reshape(n_frames, step).any(axis=1)
    for k in _SHAPE_KEYS:
        frames = shapes[k].reshape(n_frames, step)
        value = frames.mean(axis=1)
        # A closure shorter than a frame still shows in that frame: the frame shows the moment of closure.
        if k == "lip_close":
            value = frames.max(axis=1)
        elif k == "jaw":
            value = np.where(shut, frames.min(axis=1), value)
        f = FACTORS[k]
        out[k] = np.clip(value, f.low, f.high).astype(np.float32)
    out["voiced"] = voiced.reshape(n_frames, step).mean(axis=1) >= 0.5
    out["speaking"] = speaking.reshape(n_frames, step).any(axis=1)
    return out


def _at_frame_centres(speech: Speech, n_frames: int | None):
    n_frames = speech.n_frames if n_frames is None else int(n_frames)
    return n_frames, (np.arange(n_frames) + 0.5) / FPS


def phoneme_labels(speech: Speech, n_frames: int | None = None) -> list[str]:
    """The phoneme sounding at each frame's centre, stress marks dropped; "_" for pauses and beyond the end."""
    n_frames, centres = _at_frame_centres(speech, n_frames)
    labels = [SILENCE] * n_frames
    starts = np.array([s for s, _, _ in speech.phonemes])
    for k, t in enumerate(centres):
        i = int(np.searchsorted(starts, t, side="right")) - 1
        if i >= 0 and t < speech.phonemes[i][1]:
            labels[k] = strip_stress(speech.phonemes[i][2])
    return labels


def viseme_ids(speech: Speech, n_frames: int | None = None) -> np.ndarray:
    """Index into VISEME_CLASSES of the mouth shape class at each frame's centre (int64, 0 = silence)."""
    n_frames, centres = _at_frame_centres(speech, n_frames)
    n_fine = int(np.ceil(max(speech.duration, n_frames / FPS) * _FINE)) + 1
    _, _, vis, _, _, _ = _fine_targets(speech, n_fine)
    return vis[np.minimum((centres * _FINE).astype(int), n_fine - 1)]


def bilabial_closures(speech: Speech, tracks: dict | None = None, closed: float = 0.9) -> list[tuple[float, float]]:
    """(phoneme start, closure onset) in seconds for each p/b/m that follows a vowel: the lip-sync ground truth
    check. The onset is the start of the lip_close >= `closed` run that holds the phoneme's first frame."""
    tracks = tracks or viseme_tracks(speech)
    lc = tracks["lip_close"]
    out = []
    for i, (start, _end, ph) in enumerate(speech.phonemes):
        prev = speech.phonemes[i - 1][2] if i else SILENCE
        if viseme_of(ph) != "PP" or viseme_of(prev) not in ("aa", "E", "I", "O", "U"):
            continue
        k = min(int(start * FPS), len(lc) - 1)
        if lc[k] < closed:
            out.append((start, float("inf")))  # never closed: reported as an infinite error
            continue
        while k > 0 and lc[k - 1] >= closed:
            k -= 1
        out.append((start, (k + 0.5) / FPS))
    return out


__all__ = [
    "LANGUAGES", "VARIANTS", "VOICES", "RATE_RANGE", "PITCH_RANGE", "WORDS", "VISEME_CLASSES", "REST", "SILENCE",
    "Speech", "speak", "pad", "join", "random_sentence", "random_speech", "viseme_tracks", "phoneme_labels",
    "viseme_ids", "viseme_of", "bilabial_closures", "strip_stress", "is_stressed", "is_silence",
]
