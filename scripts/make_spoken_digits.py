#!/usr/bin/env python
"""Build a spoken-digit benchmark in the SHD format offline: espeak-ng speech -> cochlea -> spikes.

Twenty classes as in the Spiking Heidelberg Digits (Cramer et al. 2020): the English
digits "zero".."nine" (labels 0-9) and the German "null".."neun" (labels 10-19), spoken
by synthetic speakers and turned into spike trains by ``spikeforge.data.cochlea`` (a
gammatone / hair-cell / bushy-cell front end, 700 channels by default).

A *speaker* is a fixed identity: an English voice of espeak-ng (a native accent, or
Afrikaans / Dutch letter-to-sound rules for a foreign one; German uses the ``de`` voice),
one voice variant (+m1.., +f1.., +croak, +klatt.., shared by both languages), a base
pitch (espeak-ng ``-p`` 5-95), a base speaking rate (``-s`` 110-220 words per minute), a
base level (+-5 dB), a vocal-tract scale (the speech is resampled so that every
frequency, formants and pitch, is multiplied by 0.85-1.18, as between speakers of
different size), a microphone (spectral tilt +-3 dB per octave around 1 kHz, 2nd-order
high-pass at 50-400 Hz and low-pass at 4-9 kHz) and a background-noise colour (white to
pink). Test speakers take their accents (Scottish, Caribbean, New York English) and
variants from pools that no training speaker uses. Every utterance varies around its
speaker: rate x U[0.8, 1.25] (time stretch), pitch +-10, level +-4 dB, vocal-tract scale
x U[0.96, 1.04], tilt +-1 dB per octave, background noise at 10-30 dB SNR, and its onset
anywhere in the first 0-300 ms (speech in SHD is not aligned either); each sample lasts
at most ``--max-duration`` (1 s). The ranges are the fields of :class:`Variation`.

The training speakers and the test speakers are disjoint (``--train-speakers``,
``--test-speakers``): the test file measures accuracy on unseen voices. Every speaker
says every word ``--repeats`` times. Output in ``--out DIR``::

    shd_train.h5, shd_test.h5   spikes/times (vlen float32, s), spikes/units (vlen
                                uint16), labels (uint16), extra/speaker (uint16),
                                extra/keys (the 20 class names)
    spoken_digits.json          the settings, the speaker table and spike statistics

so ``spikeforge train --data shd --data-dir DIR`` reads it as it reads SHD. Everything
is seeded (``--seed``): the same command writes the same spikes. Files are written only
after every sample is made, each to a temporary name first and then renamed.

Needs the espeak-ng program (Debian package ``espeak-ng``).

    python scripts/make_spoken_digits.py --out /work/devdata/spoken_digits
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spikeforge.atomic import write_text_atomic
from spikeforge.data.cochlea import CochleaParams, encode
from spikeforge.data.synthetic_shd import write_shd_file
from spikeforge.errors import SpikeforgeError

ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
KEYS = ENGLISH + GERMAN
ACCENTS = ("en-gb", "en-us", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "af", "nl")
"""espeak-ng voices that read the English words of training speakers (native accents, and
Afrikaans and Dutch letter-to-sound rules for foreign accents)."""
TEST_ACCENTS = ("en-gb-scotland", "en-029", "en-us-nyc")
"""Voices that read the English words of test speakers only: English accents absent from
training."""
VARIANTS = ("m1", "m2", "m6", "m4", "m5", "m7", "f1", "f2", "f3", "f5", "croak", "klatt",
            "klatt2", "klatt3", "linda", "steph", "andy", "grandpa", "aunty")
"""Voice variants (glottal source, formant offsets) of training speakers."""
TEST_VARIANTS = ("m8", "m3", "f4", "klatt4", "edward", "belinda")
"""Voice variants of test speakers only."""
LEVEL_RMS = 0.05
"""Nominal RMS of an utterance's speech (waveform units, 1.0 = full scale)."""
FILES = ("shd_train.h5", "shd_test.h5", "spoken_digits.json")


@dataclass(frozen=True)
class Variation:
    """Ranges of the random variation (uniform unless stated; per speaker, then per
    utterance around its speaker). Units in the names; scales are frequency factors."""

    pitch: tuple[int, int] = (5, 95)
    """Speaker base pitch, espeak-ng ``-p`` 0-99."""
    pitch_jitter: int = 10
    """Utterance pitch offset, +- this."""
    rate_wpm: tuple[int, int] = (110, 220)
    """Speaker base speaking rate, words per minute."""
    rate_jitter: tuple[float, float] = (0.8, 1.25)
    """Utterance rate factor (time stretch)."""
    formant_scale: tuple[float, float] = (0.85, 1.18)
    """Speaker vocal-tract scale: every frequency multiplied by this."""
    formant_jitter: float = 0.04
    """Utterance vocal-tract factor, 1 +- this."""
    level_db: float = 5.0
    """Speaker level, +- this (dB)."""
    level_jitter_db: float = 4.0
    """Utterance level, +- this (dB)."""
    tilt_db_per_octave: float = 3.0
    """Speaker microphone spectral tilt around 1 kHz, +- this (dB per octave)."""
    tilt_jitter_db_per_octave: float = 1.0
    """Utterance tilt offset, +- this (dB per octave)."""
    highpass_hz: tuple[float, float] = (50.0, 400.0)
    """Speaker microphone 2nd-order high-pass corner (log-uniform), Hz."""
    lowpass_hz: tuple[float, float] = (4000.0, 9000.0)
    """Speaker microphone 2nd-order low-pass corner (log-uniform), Hz."""
    snr_db: tuple[float, float] = (10.0, 30.0)
    """Utterance background-noise SNR (speech RMS over noise RMS), dB."""
    lead_s: tuple[float, float] = (0.0, 0.3)
    """Utterance leading silence, s (less when the speech would not fit the window)."""


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: espeak-ng voices, base pitch (0-99), rate (wpm), level (dB),
    vocal-tract scale (frequency factor), microphone (tilt dB/octave, high-pass and
    low-pass corners Hz) and background noise colour (0 white .. 1 pink)."""

    id: int
    english: str
    variant: str
    pitch: int
    rate_wpm: int
    level_db: float
    formant_scale: float
    tilt_db_per_octave: float
    highpass_hz: float
    lowpass_hz: float
    noise_colour: float
    split: str


@dataclass(frozen=True)
class Job:
    """One utterance to make: ``index`` is its position in the whole data set."""

    index: int
    speaker: Speaker
    label: int
    seed: int
    max_duration_s: float
    n_channels: int
    variation: Variation = Variation()


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def make_speakers(n_train: int, n_test: int, seed: int,
                  variation: Variation = Variation()) -> list[Speaker]:
    """Distinct speaker identities (seeded); the last ``n_test`` are the test speakers.

    Training speakers take their English voice from ``ACCENTS`` and their variant from
    ``VARIANTS``; test speakers from ``TEST_ACCENTS`` and ``TEST_VARIANTS``, so unseen
    speakers also have unseen accents and voice qualities."""
    rng = np.random.default_rng([seed, 101])
    v = variation
    pools = {"train": (ACCENTS, VARIANTS, n_train),
             "test": (TEST_ACCENTS, TEST_VARIANTS, n_test)}
    voices = {split: (np.resize(rng.permutation(accents), n),
                      rng.permutation(np.resize(rng.permutation(variants), n)))
              for split, (accents, variants, n) in pools.items()}
    speakers = []
    for i in range(n_train + n_test):
        split, k = ("train", i) if i < n_train else ("test", i - n_train)
        speakers.append(Speaker(
            id=i, english=str(voices[split][0][k]), variant=str(voices[split][1][k]),
            pitch=int(rng.integers(v.pitch[0], v.pitch[1] + 1)),
            rate_wpm=int(rng.integers(v.rate_wpm[0], v.rate_wpm[1] + 1)),
            level_db=float(np.round(rng.uniform(-v.level_db, v.level_db), 2)),
            formant_scale=float(np.round(rng.uniform(*v.formant_scale), 3)),
            tilt_db_per_octave=float(np.round(rng.uniform(-v.tilt_db_per_octave,
                                                          v.tilt_db_per_octave), 2)),
            highpass_hz=round(_log_uniform(rng, v.highpass_hz), 1),
            lowpass_hz=round(_log_uniform(rng, v.lowpass_hz), 1),
            noise_colour=float(np.round(rng.uniform(0.0, 1.0), 2)),
            split=split))
    return speakers


def espeak(voice: str, rate_wpm: int, pitch: int, text: str) -> tuple[np.ndarray, int]:
    """Speech from espeak-ng: (waveform float64 [S] in [-1, 1], sample rate Hz)."""
    command = ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout",
               text]
    done = subprocess.run(command, capture_output=True, timeout=60)
    if done.returncode != 0 or len(done.stdout) <= 44:
        why = done.stderr.decode("utf-8", "replace").strip() or "no audio"
        raise SpikeforgeError(f"espeak-ng -v {voice} failed for {text!r}: {why}")
    with wave.open(io.BytesIO(done.stdout)) as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise SpikeforgeError(f"espeak-ng -v {voice} did not write 16-bit mono audio")
        rate = handle.getframerate()
        frames = handle.readframes(handle.getnframes())
    samples = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2")
    return samples.astype(np.float64) / 32768.0, rate


def trim_silence(x: np.ndarray, fs: int, floor: float = 0.01) -> np.ndarray:
    """``x`` without leading and trailing 5 ms frames quieter than ``floor`` x its peak."""
    frame = max(1, int(0.005 * fs))
    n = x.size // frame
    if n == 0:
        return x
    loud = np.flatnonzero(np.abs(x[: n * frame]).reshape(n, frame).max(axis=1)
                          > floor * np.abs(x).max())
    if loud.size == 0:
        return x
    return x[loud[0] * frame : (loud[-1] + 1) * frame]


def scale_frequencies(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` resampled (FFT) to ``len(x) / factor`` samples: at the same sample rate every
    frequency is multiplied by ``factor`` and the duration divided by it."""
    n_out = max(2, int(round(x.size / factor)))
    spectrum = np.fft.rfft(x)
    keep = min(spectrum.size, n_out // 2 + 1)
    return np.fft.irfft(spectrum[:keep], n_out) * (n_out / x.size)


def microphone(x: np.ndarray, fs: int, tilt_db_per_octave: float, highpass_hz: float,
               lowpass_hz: float) -> np.ndarray:
    """``x`` through a microphone/channel response (FFT, zero phase): a spectral tilt of
    ``tilt_db_per_octave`` dB per octave around 1 kHz times 2nd-order Butterworth
    high-pass and low-pass magnitudes at the corners (Hz)."""
    f = np.fft.rfftfreq(x.size, 1.0 / fs)
    f_safe = np.maximum(f, 1.0)
    gain = 10 ** (tilt_db_per_octave * np.log2(f_safe / 1000.0) / 20)
    gain = gain / np.sqrt(1 + (highpass_hz / f_safe) ** 4) / np.sqrt(1 + (f / lowpass_hz) ** 4)
    gain[0] = 0.0
    return np.fft.irfft(np.fft.rfft(x) * gain, x.size)


def background(rng: np.random.Generator, n: int, colour: float) -> np.ndarray:
    """Unit-RMS noise [n]: a mix of white (``colour`` 0) and pink 1/f (``colour`` 1)."""
    white = rng.normal(0.0, 1.0, n)
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    pink = np.fft.irfft(spectrum, n)
    pink /= max(float(np.sqrt(np.mean(pink**2))), 1e-12)
    noise = np.sqrt(1.0 - colour) * white + np.sqrt(colour) * pink
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def utterance(job: Job) -> tuple[np.ndarray, int, float]:
    """The waveform of one utterance (speaker jitter, level, position, noise,
    microphone): (float64 [S], sample rate Hz, seconds of speech before any cut)."""
    rng = np.random.default_rng([job.seed, job.index, 1])
    sp, v = job.speaker, job.variation
    rate = int(round(sp.rate_wpm * rng.uniform(*v.rate_jitter)))
    pitch = int(np.clip(sp.pitch + rng.integers(-v.pitch_jitter, v.pitch_jitter + 1), 0, 99))
    if job.label < 10:
        voice, word = f"{sp.english}+{sp.variant}", ENGLISH[job.label]
    else:
        voice, word = f"de+{sp.variant}", GERMAN[job.label - 10]
    speech, fs = espeak(voice, max(80, rate), pitch, word)
    speech = scale_frequencies(trim_silence(speech, fs), sp.formant_scale * rng.uniform(
        1.0 - v.formant_jitter, 1.0 + v.formant_jitter))
    spoken_s = speech.size / fs
    level = LEVEL_RMS * 10 ** ((sp.level_db + rng.uniform(-v.level_jitter_db,
                                                          v.level_jitter_db)) / 20)
    speech = speech * (level / max(float(np.sqrt(np.mean(speech**2))), 1e-12))
    total = int(job.max_duration_s * fs)
    lead = int(rng.uniform(*v.lead_s) * fs)
    lead = max(0, min(lead, total - speech.size))
    x = np.zeros(total)
    piece = speech[: total - lead]
    x[lead : lead + piece.size] = piece
    snr_db = rng.uniform(*v.snr_db)
    x += level * 10 ** (-snr_db / 20) * background(rng, total, sp.noise_colour)
    tilt = sp.tilt_db_per_octave + rng.uniform(-v.tilt_jitter_db_per_octave,
                                               v.tilt_jitter_db_per_octave)
    return microphone(x, fs, tilt, sp.highpass_hz, sp.lowpass_hz), fs, spoken_s


def make_sample(job: Job) -> tuple[int, np.ndarray, np.ndarray, float]:
    """(index, spike times s float32, units uint16, seconds of speech) of one job."""
    x, fs, spoken_s = utterance(job)
    params = CochleaParams(n_channels=job.n_channels)
    times, units = encode(x, fs, params, seed=np.random.SeedSequence([job.seed, job.index, 2]))
    keep = times < job.max_duration_s
    order = np.lexsort((units[keep], times[keep]))
    return job.index, times[keep][order], units[keep][order], spoken_s


def _check(args: argparse.Namespace) -> None:
    for name in ("train_speakers", "test_speakers", "repeats", "channels", "workers"):
        if getattr(args, name) < 1:
            raise SpikeforgeError(f"--{name.replace('_', '-')} must be >= 1, got "
                                  f"{getattr(args, name)}")
    if args.channels > 65535:
        raise SpikeforgeError(f"--channels must be at most 65535, got {args.channels}")
    if not 0.3 <= args.max_duration <= 10.0:
        raise SpikeforgeError(f"--max-duration must be in 0.3..10 s, got {args.max_duration}")
    if args.out.exists() and not args.out.is_dir():
        raise SpikeforgeError(f"--out {args.out} is a file; choose a folder")
    if shutil.which("espeak-ng") is None:
        raise SpikeforgeError("espeak-ng is not installed (not on PATH); install the Debian "
                              "package espeak-ng (apt-get install espeak-ng)")


def _progress(done: int, total: int, start: float, quiet: bool) -> None:
    if quiet or (done % max(1, total // 20) and done != total):
        return
    rate = done / max(time.perf_counter() - start, 1e-9)
    eta = (total - done) / rate if rate else 0.0
    print(f"  {done}/{total} samples, {rate:.1f}/s, ETA {eta:.0f} s", file=sys.stderr,
          flush=True)


def _write_split(path: Path, split: str, jobs: list[Job], results: list,
                 order_rng: np.random.Generator, max_duration: float) -> dict:
    """Write the samples of ``split`` (seeded order) to ``path``; returns its statistics."""
    chosen = [j for j in jobs if j.speaker.split == split]
    chosen = [chosen[i] for i in order_rng.permutation(len(chosen))]
    times = [results[j.index][1] for j in chosen]
    units = [results[j.index][2] for j in chosen]
    labels = np.array([j.label for j in chosen], dtype=np.int64)
    ids = np.array([j.speaker.id for j in chosen], dtype=np.int64)
    counts = np.array([t.size for t in times])
    spoken = np.array([results[j.index][3] for j in chosen])
    write_shd_file(path, times, units, labels, ids, KEYS)
    return {"file": path.name, "samples": len(chosen), "speakers": sorted(set(ids.tolist())),
            "spikes_per_sample_mean": round(float(counts.mean()), 1),
            "spikes_per_sample_min": int(counts.min()),
            "spikes_per_sample_max": int(counts.max()),
            "speech_s_mean": round(float(spoken.mean()), 3),
            "cut_samples": int(np.sum(spoken > max_duration - 0.02))}


def generate(out: Path, train_speakers: int = 10, test_speakers: int = 2, repeats: int = 10,
             channels: int = 700, seed: int = 0, max_duration: float = 1.0, workers: int = 1,
             quiet: bool = True, variation: Variation = Variation()) -> dict:
    """Make the data set into ``out`` (see the module docstring); returns the summary
    written to ``spoken_digits.json``."""
    start = time.perf_counter()
    speakers = make_speakers(train_speakers, test_speakers, seed, variation)
    jobs = [Job(i, sp, label, seed, max_duration, channels, variation) for i, (sp, label, _) in
            enumerate((sp, label, r) for sp in speakers for label in range(len(KEYS))
                      for r in range(repeats))]
    results: list = [None] * len(jobs)
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for done, result in enumerate(pool.imap_unordered(make_sample, jobs, 8), 1):
                results[result[0]] = result
                _progress(done, len(jobs), start, quiet)
    else:
        for done, job in enumerate(jobs, 1):
            results[job.index] = make_sample(job)
            _progress(done, len(jobs), start, quiet)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"format": "SHD HDF5 (spikeforge.data.shd)", "keys": list(KEYS),
               "settings": {"train_speakers": train_speakers, "test_speakers": test_speakers,
                            "repeats": repeats, "channels": channels, "seed": seed,
                            "max_duration_s": max_duration, "level_rms": LEVEL_RMS,
                            "variation": asdict(variation)},
               "cochlea": asdict(CochleaParams(n_channels=channels)),
               "speakers": [asdict(sp) for sp in speakers], "splits": {}}
    order_rng = np.random.default_rng([seed, 202])
    written: list[Path] = []
    try:
        for split, name in (("train", "shd_train.h5"), ("test", "shd_test.h5")):
            summary["splits"][split] = _write_split(out / name, split, jobs, results,
                                                    order_rng, max_duration)
            written.append(out / name)
        summary["generation_s"] = round(time.perf_counter() - start, 1)
        write_text_atomic(out / "spoken_digits.json",
                          json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    except BaseException:
        for path in written:  # no half-written set: a train file without its test file
            path.unlink(missing_ok=True)
        raise
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Default size: 10 x 20 x 10 = 2,000 training and 2 x 20 x 10 = 400 test "
               "samples.")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True,
                        help="output folder (created)")
    parser.add_argument("--train-speakers", type=int, metavar="N", default=10,
                        help="speakers in shd_train.h5 (default 10)")
    parser.add_argument("--test-speakers", type=int, metavar="N", default=2,
                        help="unseen speakers in shd_test.h5 (default 2)")
    parser.add_argument("--repeats", type=int, metavar="N", default=10,
                        help="utterances of every word per speaker (default 10)")
    parser.add_argument("--channels", type=int, metavar="N", default=700,
                        help="cochlear channels = spike units (default 700)")
    parser.add_argument("--max-duration", type=float, metavar="X", default=1.0,
                        help="length of every sample, s (default 1.0)")
    parser.add_argument("--seed", type=int, metavar="N", default=0,
                        help="seed of everything (default 0)")
    parser.add_argument("--workers", type=int, metavar="N", default=min(2, os.cpu_count() or 1),
                        help="processes (default min(2, CPU count))")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    try:
        _check(args)
        summary = generate(args.out, args.train_speakers, args.test_speakers, args.repeats,
                           args.channels, args.seed, args.max_duration, args.workers,
                           args.quiet)
    except SpikeforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split in summary["splits"].values():
        print(f"{args.out / split['file']}: {split['samples']} samples, speakers "
              f"{split['speakers']}, {split['spikes_per_sample_mean']:.0f} spikes per sample")
    print(f"{summary['generation_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
