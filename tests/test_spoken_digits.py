"""The cochlear front end (spikeforge.data.cochlea) and scripts/make_spoken_digits.py.

The generator tests need the espeak-ng program: outside CI they skip with the reason when
it is missing, under CI (``CI=true``, where ``.ci/run`` installs it) they fail.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys

import numpy as np
import pytest

from conftest import load_script
from services import unavailable
from spikeforge.data import cochlea, load_dataset
from spikeforge.data.shd import read_event_file
from spikeforge.errors import SpikeforgeError

FS = 22050


def tone(freq_hz: float, amplitude: float, seconds: float = 0.3, lead_s: float = 0.0):
    t = np.arange(int(seconds * FS)) / FS
    x = amplitude * np.sin(2 * np.pi * freq_hz * t)
    return np.concatenate([np.zeros(int(lead_s * FS)), x])


def erb_number(f_hz):
    return 21.4 * np.log10(4.37e-3 * np.asarray(f_hz) + 1.0)


@pytest.fixture(scope="module")
def script():
    yield load_script("make_spoken_digits")
    sys.modules.pop("make_spoken_digits", None)


@pytest.fixture
def espeak():
    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng is not installed (Debian package espeak-ng)")


# -- front end ------------------------------------------------------------------------
def test_erb_space_spans_the_range_evenly_in_erb_number():
    cf = cochlea.erb_space(50, 80.0, 8000.0)
    assert cf[0] == pytest.approx(80.0) and cf[-1] == pytest.approx(8000.0)
    steps = np.diff(erb_number(cf))
    assert np.allclose(steps, steps[0]) and steps[0] > 0


def test_filterbank_gain_is_one_at_the_centre_frequency():
    params = cochlea.CochleaParams(n_channels=64)
    cf = cochlea.erb_space(64, params.f_min_hz, params.f_max_hz)
    channel = 40
    analytic, dt, _ = cochlea.basilar_membrane(tone(cf[channel], 0.1), FS, params)
    middle = slice(int(0.1 / dt), int(0.25 / dt))
    envelope = np.abs(analytic[:, middle]).mean(axis=1)
    assert envelope[channel] == pytest.approx(0.1, rel=0.03)
    assert envelope.argmax() == channel
    assert envelope[0] < 1e-3 and envelope[-1] < 1e-3  # 4+ octaves away
    # the real part is the filter output: a sinusoid at cf of the same amplitude
    assert np.abs(analytic[channel, middle].real).max() == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("freq_hz", [300.0, 1000.0, 3000.0])
def test_pure_tone_excites_the_channels_near_its_frequency_most(freq_hz):
    params = cochlea.CochleaParams()
    _, units = cochlea.encode(tone(freq_hz, 0.03), FS, params, seed=1)
    counts = np.convolve(np.bincount(units, minlength=700), np.ones(15) / 15, "same")
    cf = cochlea.erb_space(700, params.f_min_hz, params.f_max_hz)
    peak = cf[counts.argmax()]
    assert abs(erb_number(peak) - erb_number(freq_hz)) < 1.0, (freq_hz, peak)
    far = np.abs(erb_number(cf) - erb_number(freq_hz)) > 8.0
    assert counts[far].max() < 0.1 * counts.max()


def test_spike_count_grows_with_level_and_silence_is_silent():
    counts = [cochlea.encode(tone(1000.0, a), FS, seed=0)[0].size
              for a in (0.01, 0.03, 0.1, 0.3)]
    assert counts[0] < counts[1] < counts[2] < counts[3], counts
    assert counts[0] > 0
    assert cochlea.encode(np.zeros(FS // 4), FS, seed=0)[0].size == 0


def test_adaptation_makes_the_onset_the_strongest_part():
    times, _ = cochlea.encode(tone(1000.0, 0.05, seconds=0.4, lead_s=0.1), FS, seed=0)
    onset = np.sum((times >= 0.1) & (times < 0.13))
    later = np.sum((times >= 0.35) & (times < 0.38))
    assert onset > 1.5 * later > 0


def test_same_seed_same_spikes_and_output_is_sorted():
    x = tone(500.0, 0.05) + tone(2500.0, 0.02)
    t1, u1 = cochlea.encode(x, FS, seed=7)
    t2, u2 = cochlea.encode(x, FS, seed=7)
    t3, _ = cochlea.encode(x, FS, seed=8)
    assert np.array_equal(t1, t2) and np.array_equal(u1, u2)
    assert not (t1.size == t3.size and np.array_equal(t1, t3))
    assert t1.dtype == np.float32 and u1.dtype == np.uint16
    assert np.all(np.diff(t1) >= 0) and u1.max() < 700 and t1.max() < 0.35


def test_bad_sound_and_parameters_raise_one_line_errors():
    with pytest.raises(SpikeforgeError, match="finite"):
        cochlea.encode(np.array([0.0, np.nan]), FS)
    with pytest.raises(SpikeforgeError, match="Nyquist"):
        cochlea.encode(tone(100.0, 0.1), 8000.0)
    with pytest.raises(SpikeforgeError, match="bushy_weight"):
        cochlea.encode(tone(100.0, 0.1), FS, cochlea.CochleaParams(bushy_weight=0.0))


# -- generator --------------------------------------------------------------------------
def test_each_label_is_spoken_as_its_word_by_its_speakers_voices(script, monkeypatch):
    spoken = []

    def fake_espeak(voice, rate_wpm, pitch, text):
        spoken.append((voice, text))
        return np.sin(np.arange(4000) / 5.0) * 0.3, FS

    monkeypatch.setattr(script, "espeak", fake_espeak)
    speaker = script.make_speakers(1, 1, seed=3)[1]
    for label in range(20):
        script.utterance(script.Job(label, speaker, label, 3, 1.0, 8))
    assert [text for _, text in spoken] == list(script.KEYS)
    assert {v for v, _ in spoken[:10]} == {f"{speaker.english}+{speaker.variant}"}
    assert {v for v, _ in spoken[10:]} == {f"de+{speaker.variant}"}
    assert len(set(script.KEYS)) == 20


def test_utterances_fit_the_window_and_vary(script, monkeypatch):
    speaker = script.make_speakers(2, 0, seed=0)[0]
    clean = script.Variation(snr_db=(80.0, 80.0))  # the onset is then easy to find
    sine = np.sin(2 * np.pi * 1000.0 * np.arange(11025) / FS) * 0.2  # 0.5 s
    monkeypatch.setattr(script, "espeak", lambda *a: (sine, FS))
    waves = [script.utterance(script.Job(i, speaker, 0, 0, 1.0, 8, clean))[0]
             for i in range(8)]
    assert all(w.size == FS for w in waves)
    leads = [int(np.argmax(np.abs(w) > 0.5 * np.abs(w).max())) for w in waves]
    assert len(set(leads)) == 8 and 0 <= min(leads) <= max(leads) <= 0.3 * FS + 30
    assert max(leads) - min(leads) > 0.1 * FS  # onsets spread over the window
    levels = [np.sqrt(np.mean(w[lead : lead + 11025] ** 2))
              for w, lead in zip(waves, leads, strict=True)]
    assert len({round(v, 4) for v in levels}) == 8  # level jitter
    monkeypatch.setattr(script, "espeak", lambda *a: (np.resize(sine, 30000), FS))  # 1.36 s
    long, _, spoken_s = script.utterance(script.Job(0, speaker, 0, 0, 1.0, 8))
    assert long.size == FS and spoken_s > 1.0  # cut to the window


def test_noise_is_at_the_drawn_snr_and_coloured_by_the_speaker(script, monkeypatch):
    monkeypatch.setattr(script, "espeak", lambda *a: (np.zeros(4000), FS))
    speaker = script.make_speakers(1, 0, seed=0)[0]
    flat = dataclasses.replace(speaker, tilt_db_per_octave=0.0, highpass_hz=1.0,
                               lowpass_hz=1e6)
    variation = script.Variation(snr_db=(10.0, 10.0), tilt_jitter_db_per_octave=0.0,
                                 level_jitter_db=0.0)
    x, _, _ = script.utterance(script.Job(0, flat, 0, 0, 1.0, 8, variation))
    level = script.LEVEL_RMS * 10 ** (flat.level_db / 20)  # silent speech: noise alone
    assert np.sqrt(np.mean(x**2)) == pytest.approx(level * 10 ** (-10 / 20), rel=0.05)
    rng = np.random.default_rng(0)
    for colour, low_over_high in ((0.0, (0.5, 2.0)), (1.0, (20.0, np.inf))):
        noise = script.background(rng, FS, colour)
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
        power = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(FS, 1 / FS)
        ratio = power[(freqs > 100) & (freqs < 500)].mean() / power[freqs > 4000].mean()
        assert low_over_high[0] < ratio < low_over_high[1], (colour, ratio)


def test_microphone_tilt_and_band_edges(script):
    t = np.arange(FS) / FS

    def gain(freq_hz, **mic):
        y = script.microphone(np.sin(2 * np.pi * freq_hz * t), FS, **mic)
        return np.sqrt(2 * np.mean(y**2))

    flat = {"tilt_db_per_octave": 0.0, "highpass_hz": 1.0, "lowpass_hz": 1e6}
    assert gain(1000.0, **flat) == pytest.approx(1.0, rel=1e-3)
    tilted = {**flat, "tilt_db_per_octave": 6.0}
    assert gain(2000.0, **tilted) / gain(1000.0, **tilted) == pytest.approx(
        10 ** (6 / 20), rel=1e-3)
    assert gain(3000.0, **{**flat, "lowpass_hz": 3000.0}) == pytest.approx(2**-0.5, rel=1e-3)
    assert gain(200.0, **{**flat, "highpass_hz": 200.0}) == pytest.approx(2**-0.5, rel=1e-3)
    assert gain(50.0, **{**flat, "highpass_hz": 400.0}) < 0.02


def test_vocal_tract_scaling_moves_every_frequency(script):
    t = np.arange(FS) / FS
    x = np.sin(2 * np.pi * 1000.0 * t) + 0.5 * np.sin(2 * np.pi * 3000.0 * t)
    for factor in (0.87, 1.13):
        y = script.scale_frequencies(x, factor)
        assert y.size == round(FS / factor)
        spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
        freqs = np.fft.rfftfreq(y.size, 1 / FS)
        low, high = (freqs[np.argmax(np.where(abs(freqs - f * factor) < 200, spectrum, 0))]
                     for f in (1000.0, 3000.0))
        assert low == pytest.approx(1000.0 * factor, abs=2.0)
        assert high == pytest.approx(3000.0 * factor, abs=2.0)
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.02)


def test_speakers_are_distinct_and_seeded(script):
    speakers = script.make_speakers(10, 3, seed=0)
    assert speakers == script.make_speakers(10, 3, seed=0)
    identities = {(s.english, s.variant, s.pitch, s.rate_wpm) for s in speakers}
    assert len(identities) == 13
    assert [s.split for s in speakers] == ["train"] * 10 + ["test"] * 3


def test_test_speakers_have_accents_and_voices_absent_from_training(script):
    assert not set(script.ACCENTS) & set(script.TEST_ACCENTS)
    assert not set(script.VARIANTS) & set(script.TEST_VARIANTS)
    speakers = script.make_speakers(12, 4, seed=1)
    train = [s for s in speakers if s.split == "train"]
    test = [s for s in speakers if s.split == "test"]
    assert {s.english for s in train} <= set(script.ACCENTS)
    assert {s.english for s in test} == set(script.TEST_ACCENTS)  # 4 speakers, 4 accents
    assert {s.variant for s in test} <= set(script.TEST_VARIANTS)
    assert len({s.variant for s in train}) == 12
    v = script.Variation()
    for s in speakers:
        assert v.formant_scale[0] <= s.formant_scale <= v.formant_scale[1]
        assert v.rate_wpm[0] <= s.rate_wpm <= v.rate_wpm[1]
        assert v.lowpass_hz[0] <= s.lowpass_hz <= v.lowpass_hz[1]


def test_missing_espeak_and_bad_counts_are_one_line_errors(script, tmp_path, monkeypatch,
                                                           capsys):
    assert script.main(["--out", str(tmp_path / "a"), "--repeats", "0"]) == 2
    assert "error: --repeats must be >= 1" in capsys.readouterr().err
    monkeypatch.setattr(script.shutil, "which", lambda name: None)
    assert script.main(["--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "install the Debian package espeak-ng" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tiny_set_loads_with_speaker_disjoint_splits_and_labels(script, espeak, tmp_path):
    out = tmp_path / "spoken"
    summary = script.generate(out, train_speakers=2, test_speakers=1, repeats=1, channels=16,
                              seed=5)
    assert sorted(p.name for p in out.iterdir()) == ["shd_test.h5", "shd_train.h5",
                                                     "spoken_digits.json"]
    train = read_event_file(out / "shd_train.h5", n_channels=16)
    test = read_event_file(out / "shd_test.h5", n_channels=16)
    assert train.keys == list(script.KEYS) and len(train.keys) == 20
    assert np.array_equal(np.bincount(train.labels, minlength=20), np.full(20, 2))
    assert np.array_equal(np.bincount(test.labels, minlength=20), np.ones(20))
    assert set(train.speakers) == {0, 1} and set(test.speakers) == {2}
    for ef in (train, test):
        lengths = np.diff(ef.ptr)
        assert lengths.min() > 0 and ef.units.max() < 16
        assert ef.times_ms.max() < 1000.0
    assert summary["splits"]["test"]["speakers"] == [2]
    splits = load_dataset("shd", 1.0, out, download=False, n_channels=16,
                          max_time_ms=1000.0)
    assert (splits.test.n_inputs, splits.test.n_classes, len(splits.test)) == (16, 20, 20)
    assert len(splits.train) + len(splits.val) == 40
    speaker = script.make_speakers(2, 1, seed=5)[0]
    jobs = [script.Job(i, speaker, label, 5, 1.0, 16) for i, label in ((0, 3), (1, 17))]
    for job in jobs:  # the same job gives the same spikes in any process
        first, second = script.make_sample(job), script.make_sample(job)
        assert np.array_equal(first[1], second[1]) and np.array_equal(first[2], second[2])
