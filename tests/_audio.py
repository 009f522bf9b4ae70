"""Measuring sound in tests: samples through PyAV, windowed levels, a tone's level, speech
spans, a voice's pitch, integrated loudness (ffmpeg's ebur128) and subtitle streams.

Pure Python over PyAV's decoded samples (no numpy): the test renders are seconds long.
"""

from __future__ import annotations

import array
import math
import re
import subprocess
from pathlib import Path

from storyc.media.ffmpeg import ffmpeg_exe

SILENT_DB = -120.0


def read_samples(path: Path | str, rate: int = 16000) -> array.array:
    """The first audio stream of `path`, mixed to mono float samples at `rate`."""
    import av

    out = array.array("f")
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                out.frombytes(bytes(converted.planes[0])[: converted.samples * 4])
        for converted in resampler.resample(None):
            out.frombytes(bytes(converted.planes[0])[: converted.samples * 4])
    return out


def _db(power: float) -> float:
    return 10 * math.log10(power) if power > 1e-12 else SILENT_DB


def rms_db(samples: array.array, rate: int, start_s: float, end_s: float) -> float:
    """RMS level (dBFS) of samples[start_s:end_s]."""
    a, b = max(0, int(start_s * rate)), min(len(samples), int(end_s * rate))
    if b <= a:
        return SILENT_DB
    return _db(sum(x * x for x in samples[a:b]) / (b - a))


def windowed_rms_db(samples: array.array, rate: int, window_s: float = 0.05) -> list[float]:
    """RMS level (dBFS) of consecutive windows of `window_s`."""
    n = max(1, int(window_s * rate))
    return [_db(sum(x * x for x in samples[i : i + n]) / n) for i in range(0, len(samples) - n + 1, n)]


def tone_db(samples: array.array, rate: int, freq: float, start_s: float, end_s: float) -> float:
    """Level (dBFS of a full-scale sine) of the `freq` component in [start_s, end_s] (Goertzel)."""
    a, b = max(0, int(start_s * rate)), min(len(samples), int(end_s * rate))
    n = b - a
    if n <= 0:
        return SILENT_DB
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples[a:b]:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    amplitude = 2 * math.sqrt(max(power, 0.0)) / n
    return 20 * math.log10(amplitude) if amplitude > 1e-9 else SILENT_DB


def _biquad(samples: array.array, b0: float, b1: float, b2: float, a1: float, a2: float) -> array.array:
    out = array.array("f", bytes(4 * len(samples)))
    x1 = x2 = y1 = y2 = 0.0
    for i, x in enumerate(samples):
        y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        out[i] = y
        x2, x1, y2, y1 = x1, x, y1, y
    return out


def speech_band(samples: array.array, rate: int, low_hz: float = 400.0, high_hz: float = 4000.0) -> array.array:
    """`samples` through a high-pass at `low_hz` and a low-pass at `high_hz` (RBJ biquads,
    Q = 0.707): the speech band, without a low native tone or a high music tone."""
    q = 1 / math.sqrt(2)

    def coefficients(freq: float, high_pass: bool) -> tuple[float, ...]:
        w = 2 * math.pi * freq / rate
        alpha, cos_w = math.sin(w) / (2 * q), math.cos(w)
        a0 = 1 + alpha
        if high_pass:
            b = ((1 + cos_w) / 2, -(1 + cos_w), (1 + cos_w) / 2)
        else:
            b = ((1 - cos_w) / 2, 1 - cos_w, (1 - cos_w) / 2)
        return (b[0] / a0, b[1] / a0, b[2] / a0, -2 * cos_w / a0, (1 - alpha) / a0)

    filtered = samples
    for _ in range(2):  # 4th order each side: a tone an octave out of band drops by ~24 dB
        filtered = _biquad(filtered, *coefficients(low_hz, True))
        filtered = _biquad(filtered, *coefficients(high_hz, False))
    return filtered


def speech_spans(
    samples: array.array, rate: int, threshold_db: float, window_s: float = 0.02, bridge_s: float = 0.3
) -> list[tuple[float, float]]:
    """Spans (start, end seconds) where the level exceeds `threshold_db`; gaps shorter than
    `bridge_s` (pauses between words) are bridged."""
    levels = windowed_rms_db(samples, rate, window_s)
    spans: list[list[float]] = []
    for i, level in enumerate(levels):
        if level < threshold_db:
            continue
        start, end = i * window_s, (i + 1) * window_s
        if spans and start - spans[-1][1] <= bridge_s:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(round(a, 3), round(b, 3)) for a, b in spans]


def pitch_hz(samples: array.array, rate: int, low_hz: float = 60.0, high_hz: float = 400.0) -> float:
    """Median fundamental frequency of the loud frames (autocorrelation), in Hz."""
    frame = int(0.04 * rate)
    min_lag, max_lag = int(rate / high_hz), int(rate / low_hz)
    loudest = max((abs(x) for x in samples), default=0.0)
    estimates: list[float] = []
    for start in range(0, len(samples) - frame - max_lag, frame):
        chunk = samples[start : start + frame + max_lag]
        if max(abs(x) for x in chunk[:frame]) < 0.3 * loudest:
            continue
        energy = sum(x * x for x in chunk[:frame])
        best_lag, best = 0, 0.0
        for lag in range(min_lag, max_lag):
            corr = sum(chunk[i] * chunk[i + lag] for i in range(frame))
            if corr > best:
                best_lag, best = lag, corr
        if best_lag and best > 0.5 * energy:
            estimates.append(rate / best_lag)
    if not estimates:
        return 0.0
    estimates.sort()
    return estimates[len(estimates) // 2]


_INTEGRATED = re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-inf)\s*LUFS", re.S)


def integrated_loudness(path: Path | str) -> float:
    """Integrated loudness (LUFS) of the first audio stream, by ffmpeg's ebur128 filter."""
    proc = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-af",
            "ebur128",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = _INTEGRATED.findall(proc.stderr)
    assert found, proc.stderr[-2000:]
    return float(found[-1])


def subtitle_streams(path: Path | str) -> list[tuple[str, str | None]]:
    """(codec, language) of every subtitle stream in `path`."""
    import av

    with av.open(str(path)) as container:
        return [(s.codec_context.name, s.metadata.get("language")) for s in container.streams.subtitles]


def subtitle_cues(path: Path | str) -> list[tuple[float, str]]:
    """(start in seconds, text) of every cue of the first subtitle stream (mov_text: each
    packet is a 2-byte big-endian length, then the text; an empty one ends a cue)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        shown = []
        for packet in container.demux(stream):
            payload = bytes(packet)
            size = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
            if size:
                shown.append((float(packet.pts * stream.time_base), payload[2 : 2 + size].decode("utf-8")))
    return shown


def frame_at(path: Path | str, seconds: float):
    """The decoded video frame shown at `seconds`, as a PIL RGB image."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        shown = None
        for frame in container.decode(stream):
            if frame.time is not None and frame.time > seconds + 1e-6:
                break
            shown = frame
        assert shown is not None, f"no frame at {seconds} s"
        return shown.to_image().convert("RGB")
