"""A spoken-word set made offline with Debian's espeak-ng (`data=speech`, written on first use).

`make_speech(root)` speaks every word of WORDS in every voice of VOICES at each speed (words per minute) and pitch
(0-99): `root/<voice>/<word>_s<speed>_p<pitch>.wav` (22,050 Hz mono, as espeak-ng writes it). A voice is an accent
plus a voice variant, so held-out voices are unheard speakers. Written into `<root>.partial` and renamed when
complete, so an interrupted run never leaves a set that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aelab.core.errors import DataError

log = logging.getLogger(__name__)

WORDS = ("zero one two three four five six seven eight nine ten hundred yes no stop go left right up down on off "
         "open close start finish north south east west red green blue black white yellow water river mountain "
         "window kitchen garden morning evening thunder silver orange purple happy quickly seventeen forty "
         "computer language music number question answer weather yesterday tomorrow").split()
VOICES = ("en+m1", "en+f2", "en-us+m3", "en-us+f4", "en-gb-scotland+m2", "en-gb-x-rp+f1", "en-029+m4",
          "en-us-nyc+f3", "en-gb-x-gbclan+m5", "en+Annie", "en-us+Michael", "en+Linda")
SPEEDS = (140, 180)
PITCHES = (35, 65)


def speak(executable: str, voice: str, word: str, speed: int, pitch: int, path: Path) -> None:
    done = subprocess.run([executable, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), word],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or not path.is_file():
        raise DataError(f"espeak-ng failed on {word!r} with voice {voice}: {done.stderr.strip() or done.returncode}")


def make_speech(root: Path, words: tuple[str, ...] = WORDS, voices: tuple[str, ...] = VOICES,
                speeds: tuple[int, ...] = SPEEDS, pitches: tuple[int, ...] = PITCHES) -> Path:
    """Write the spoken-word set into `root` (one sub-folder per voice); DataError when espeak-ng is missing."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise DataError("data=speech is made with espeak-ng, which is not installed: apt-get install espeak-ng "
                        "(make setup does it as root)")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    jobs = []
    for voice in voices:
        (partial / voice).mkdir(parents=True)
        jobs += [(voice, w, s, p, partial / voice / f"{w}_s{s}_p{p}.wav") for w in words for s in speeds for p in pitches]
    log.info("speaking %d words x %d voices x %d speeds x %d pitches with espeak-ng into %s", len(words), len(voices),
             len(speeds), len(pitches), root)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda job: speak(executable, *job), jobs))
    partial.rename(root)
    return root


MAKERS = {"speech": make_speech}  # data.make: what writes a missing data.path
