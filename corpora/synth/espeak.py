"""espeak-ng speech synthesis through ctypes, from the `espeakng-loader` wheel (no system packages).

One synthesiser per process: espeak-ng keeps global state, so `EspeakSynth` is a process-wide singleton and
calls are serialised. Word start times come from espeak's own WORD events, so TextGrids built from them are
the true boundaries of the synthesised audio.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_EVENT_TYPE and flag values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Prosody:
    """espeak-ng's own units: rate in words/minute (80-450), pitch and range 0-100, volume 0-200."""

    rate: int = 175
    pitch: int = 50
    range: int = 50
    volume: int = 100


@dataclass
class Synthesis:
    audio: np.ndarray  # float32 mono in [-1, 1] at `sample_rate`
    sample_rate: int
    word_starts: list[tuple[int, int, float]]  # (char offset, char length, start seconds) per spoken word
    phone_starts: list[tuple[str, float]]  # (espeak phoneme mnemonic, start seconds)


class EspeakSynth:
    _instance: "EspeakSynth | None" = None
    _lock = threading.Lock()

    def __new__(cls):
        with cls._lock:
            if cls._instance is None:
                inst = super().__new__(cls)
                inst._init()
                cls._instance = inst
        return cls._instance

    def _init(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - requirements.txt installs it
            raise RuntimeError("speech synthesis needs the PyPI package espeakng-loader (see requirements.txt)") from e
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        # espeak wants the folder that *contains* espeak-ng-data
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INITIALIZE_PHONEME_EVENTS)
        if sr <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {sr}) with data in {data_parent.decode()}")
        self.sample_rate = int(sr)
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, float]] = []
        self._phones: list[tuple[str, float]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)
        self._call_lock = threading.Lock()

    def _on_audio(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._words.append((ev.text_position - 1, ev.length, ev.audio_position / 1000.0))
            elif ev.type == _EVENT_PHONEME:
                self._phones.append((ev.id.string.decode("ascii", "replace"), ev.audio_position / 1000.0))
            i += 1
        return 0

    def synth(self, text: str, voice: str = "en-us", prosody: Prosody = Prosody()) -> Synthesis:
        """Speak `text` with `voice` (e.g. 'en-us+f3') and return float32 audio plus word start times."""
        with self._call_lock:
            lib = self._lib
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            for name in ("rate", "pitch", "range", "volume"):
                lib.espeak_SetParameter(_PARAM[name], int(getattr(prosody, name)), 0)
            self._chunks, self._words, self._phones = [], [], []
            buf = text.encode("utf-8") + b"\0"
            err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err} on {text!r}")
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return Synthesis(pcm.astype(np.float32) / 32768.0, self.sample_rate, list(self._words), list(self._phones))
