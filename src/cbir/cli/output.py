"""What the command line writes where: results on stdout, everything else on stderr, and a quiet
TensorFlow start-up."""

from __future__ import annotations

import os
import sys


class Output:
    """The real stdout for results, and stderr for everything else (`quiet` keeps warnings only)."""

    def __init__(self, stdout, quiet: bool = False):
        self.stdout, self.quiet = stdout, quiet

    def result(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with their C++ / absl start-up lines (CUDA, oneDNN, CPU
    features) silenced: file descriptor 2 points at /dev/null meanwhile. Later errors still show."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow

        tensorflow.config.list_physical_devices()  # the device probe logs "failed call to cuInit" without a GPU
        keras.config.disable_interactive_logging()  # Keras' download messages and bars go to logging
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
