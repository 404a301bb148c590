#!/usr/bin/env python
"""Build a spoken-digit benchmark in the SHD format offline: espeak-ng speech -> cochlea -> spikes.

Twenty classes as in the Spiking Heidelberg Digits (Cramer et al. 2020): the English
digits "zero".."nine" (labels 0-9) and the German "null".."neun" (labels 10-19), spoken
by synthetic speakers and turned into spike trains by ``spikeforge.data.cochlea`` (a
gammatone / hair-cell / bushy-cell front end, 700 channels by default).

A *speaker* is a fixed identity: an English accent voice of espeak-ng (German uses the
``de`` voice), one voice variant (+m1..+m8, +f1..+f5, +croak, +klatt..., shared by both
languages), a base pitch (espeak-ng ``-p``), a base speaking rate (``-s``, words per
minute), a base level and a vocal-tract scale: the speech is resampled so that every
frequency (formants and pitch) is multiplied by ``formant_scale`` in U[0.85, 1.15] (a
shorter or longer vocal tract, as between speakers of different size). Every utterance
varies around its speaker: rate x U[0.85, 1.15], pitch +- 8, level +- 4 dB,
vocal-tract scale x U[0.97, 1.03], white noise at 15-35 dB SNR, 20-200 ms of leading
silence; each sample lasts at most ``--max-duration`` (1 s).

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
ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "croak", "klatt", "klatt2", "klatt3", "klatt4", "linda", "steph", "andy",
            "grandpa", "aunty")
LEVEL_RMS = 0.05
"""Nominal RMS of an utterance's speech (waveform units, 1.0 = full scale)."""
FILES = ("shd_train.h5", "shd_test.h5", "spoken_digits.json")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: espeak-ng voices, base pitch (0-99), rate (wpm), level (dB),
    vocal-tract scale (frequency factor)."""

    id: int
    english: str
    variant: str
    pitch: int
    rate_wpm: int
    level_db: float
    formant_scale: float
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


def make_speakers(n_train: int, n_test: int, seed: int) -> list[Speaker]:
    """Distinct speaker identities (seeded); the last ``n_test`` are the test speakers."""
    rng = np.random.default_rng([seed, 101])
    n = n_train + n_test
    variants = rng.permutation(np.resize(rng.permutation(VARIANTS), n))
    accents = np.resize(rng.permutation(ACCENTS), n)
    speakers = []
    for i in range(n):
        speakers.append(Speaker(
            id=i, english=str(accents[i]), variant=str(variants[i]),
            pitch=int(rng.integers(20, 81)), rate_wpm=int(rng.integers(130, 186)),
            level_db=float(np.round(rng.uniform(-3.0, 3.0), 2)),
            formant_scale=float(np.round(rng.uniform(0.85, 1.15), 3)),
            split="train" if i < n_train else "test"))
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


def utterance(job: Job) -> tuple[np.ndarray, int, float]:
    """The waveform of one utterance (speaker jitter, level, noise, silence):
    (float64 [S], sample rate Hz, seconds of speech before any cut)."""
    rng = np.random.default_rng([job.seed, job.index, 1])
    sp = job.speaker
    rate = int(round(sp.rate_wpm * rng.uniform(0.85, 1.15)))
    pitch = int(np.clip(sp.pitch + rng.integers(-8, 9), 0, 99))
    if job.label < 10:
        voice, word = f"{sp.english}+{sp.variant}", ENGLISH[job.label]
    else:
        voice, word = f"de+{sp.variant}", GERMAN[job.label - 10]
    speech, fs = espeak(voice, rate, pitch, word)
    speech = scale_frequencies(trim_silence(speech, fs),
                               sp.formant_scale * rng.uniform(0.97, 1.03))
    spoken_s = speech.size / fs
    level = LEVEL_RMS * 10 ** ((sp.level_db + rng.uniform(-4.0, 4.0)) / 20)
    speech = speech * (level / max(float(np.sqrt(np.mean(speech**2))), 1e-12))
    total = int(job.max_duration_s * fs)
    lead = int(rng.uniform(0.02, 0.2) * fs)
    lead = max(0, min(lead, total - speech.size))
    x = np.zeros(total)
    piece = speech[: total - lead]
    x[lead : lead + piece.size] = piece
    snr_db = rng.uniform(15.0, 35.0)
    x += rng.normal(0.0, level * 10 ** (-snr_db / 20), total)
    return x, fs, spoken_s


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
             quiet: bool = True) -> dict:
    """Make the data set into ``out`` (see the module docstring); returns the summary
    written to ``spoken_digits.json``."""
    start = time.perf_counter()
    speakers = make_speakers(train_speakers, test_speakers, seed)
    jobs = [Job(i, sp, label, seed, max_duration, channels) for i, (sp, label, _) in
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
                            "max_duration_s": max_duration, "level_rms": LEVEL_RMS},
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
