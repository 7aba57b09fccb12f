"""The ``local`` embedding model: WordLlama's static token embeddings, read offline from the wordllama wheel.

A text's vector is the mean of its tokens' rows in the l2_supercat matrix (256 floats a token, truncated to
``dimensions``: WordLlama is trained so that a prefix of each row is itself an embedding), scaled to length
1. No network: the weights and the tokenizer are the files inside the installed wordllama package, and
``disable_download`` stops it from looking in ``~/.cache`` or asking the Hugging Face hub.

Measured on one core (of 2 shared, busy ones), 128 dimensions: loading takes 0.3-0.6 s and adds about
50 MB (the matrix is 32,000 tokens x 128 floats, 16 MB; the rest is the tokenizer and the libraries),
about 80 MB after embedding batches of 256; 700-character chunks embed at 1,100-1,750 a second. The tokenizer
pads a batch to its longest text, so :data:`INNER_BATCH` texts go through it at a time.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from quaero.api import ConfigError, Embedder, JobError
from quaero.api.embeddings import Purpose

CONFIG, FILE_DIMENSIONS = "l2_supercat", 256  # the only weights the wheel ships
DIMENSIONS = (64, 128, 256)
INNER_BATCH = 64  # texts per tokenizer call: padding to the longest costs more in bigger batches


class LocalEmbedder(Embedder):
    """WordLlama l2_supercat, ``dimensions`` floats a vector; loaded on the first :meth:`embed`, once per
    instance, under a lock (every thread of the process shares it)."""

    max_batch = 256

    def __init__(self, dimensions: int = 128) -> None:
        if dimensions not in DIMENSIONS:
            raise ConfigError(f"the local embedding model has {', '.join(map(str, DIMENSIONS))} dimensions, "
                              f"not {dimensions}: set [plugins.embed] dimensions to one of them")
        self._dimensions = dimensions
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def model(self) -> str:
        return f"wordllama-{wordllama_version()}/{CONFIG}_{FILE_DIMENSIONS}/{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> Sequence[Sequence[float]]:
        """Unit vectors as a float32 numpy array, one row a text (zeros for a text without tokens, the empty
        one). ``purpose`` changes nothing: a static model embeds queries and documents alike."""
        texts = [text if isinstance(text, str) else str(text) for text in texts]
        if not texts:
            return cast(Sequence[Sequence[float]], np.zeros((0, self._dimensions), dtype=np.float32))
        model = self.load()
        try:
            vectors = model.embed(texts, norm=False, batch_size=INNER_BATCH)
        except Exception as exc:  # the tokenizer's and numpy's errors, said as a job's
            raise JobError(f"the local embedding model failed: {type(exc).__name__}: {exc}") from exc
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return cast(Sequence[Sequence[float]], vectors)  # an array: the core takes it as it is

    def load(self) -> Any:
        """The loaded model (read from the wordllama package the first time)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = load_wordllama(self._dimensions)
        return self._model

    def close(self) -> None:
        self._model = None

    def __repr__(self) -> str:
        return f"LocalEmbedder({self.model!r})"


def load_wordllama(dimensions: int) -> Any:
    """WordLlama's l2_supercat model truncated to ``dimensions``, from the files inside the wordllama
    package (:class:`ConfigError` saying what to reinstall when they are missing)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama  # type: ignore[import-untyped]
    finally:
        # wordllama calls logging.basicConfig(level=INFO) when imported: undo it, the host configures logging.
        root.handlers[:] = handlers
        root.setLevel(level)
    folder = Path(wordllama.__file__).parent
    weights = folder / "weights" / f"{CONFIG}_{FILE_DIMENSIONS}.safetensors"
    tokenizer = folder / "tokenizers" / f"{CONFIG}_tokenizer_config.json"
    missing = [str(path) for path in (weights, tokenizer) if not path.is_file()]
    if missing:
        raise ConfigError(f"the local embedding model needs the WordLlama weights that ship with the wordllama "
                          f"package; {' and '.join(missing)} missing: reinstall wordllama {wordllama_version()}")
    # disable_download: the files above are read and nothing is fetched (the default would look in
    # ~/.cache and then download from the Hugging Face hub).
    return wordllama.WordLlama.load(config=CONFIG, cache_dir=folder, dim=FILE_DIMENSIONS,
                                    trunc_dim=dimensions if dimensions != FILE_DIMENSIONS else None,
                                    disable_download=True)


def wordllama_version() -> str:
    """The installed wordllama's version (its weights change with it), read without importing it."""
    try:
        return importlib.metadata.version("wordllama")
    except importlib.metadata.PackageNotFoundError:
        return "missing"
