"""The ``local`` embedding model: offline from the wordllama wheel, close texts closer, its identity, threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import wordllama  # type: ignore[import-untyped]
from pydantic import ValidationError

import quaero_plugins.embed.local as local
from quaero.api import ConfigError, Embedder
from quaero.testing import Testbed
from quaero_plugins.embed.local import LocalEmbedder
from quaero_plugins.embed.settings import EmbedSettings

# Loads the model with every connection refused, then says what it got.
OFFLINE = """
import json, socket, sys

def refuse(self, *args, **kwargs):
    raise OSError("the test forbids connections")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
from quaero_plugins.embed.local import LocalEmbedder

embedder = LocalEmbedder(int(sys.argv[1]))
vectors = embedder.embed(["deadlock between transactions", "baking bread"])
print(json.dumps({"model": embedder.model, "shape": list(vectors.shape), "dtype": str(vectors.dtype)}))
"""

DEADLOCK = "deadlock between transactions"
LOCKS = "two sessions waiting for each other's locks"
BREAD = "baking bread"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.mark.parametrize("dimensions", [64, 256])
def test_the_model_loads_with_the_network_refused_and_an_empty_home(tmp_path, dimensions):
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "XDG_"))}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", OFFLINE, str(dimensions)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said == {"model": f"wordllama-{local.wordllama_version()}/l2_supercat_256/{dimensions}",
                    "shape": [2, dimensions], "dtype": "float32"}
    assert list(home.rglob("*")) == []  # no cache written, nothing looked up there


def test_close_texts_score_higher_than_unrelated_ones(embedder):
    deadlock, locks, bread = embedder.embed([DEADLOCK, LOCKS, BREAD])
    assert deadlock @ locks > deadlock @ bread + 0.1
    assert deadlock @ locks > locks @ bread
    query = embedder.embed(["why do my database transactions hang"], purpose="query")[0]
    assert query @ deadlock > query @ bread


def test_vectors_are_unit_float32_rows_in_order(embedder):
    texts = [f"document number {i} about {'locks' if i % 2 else 'bread'}" for i in range(300)]
    vectors = embedder.embed(texts)
    assert isinstance(embedder, Embedder) and embedder.max_batch >= 256
    assert vectors.shape == (300, 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([embedder.embed([text]) for text in texts[:5]])
    assert np.allclose(vectors[:5], one_by_one, atol=1e-5)  # a batch's padding changes nothing
    assert embedder.embed([]).shape == (0, 128)
    assert not np.isnan(embedder.embed([""])).any()


def test_the_identity_names_the_dimensions_and_the_weights():
    models = {dims: LocalEmbedder(dims) for dims in (64, 128, 256)}
    assert len({model.model for model in models.values()}) == 3
    assert all(model.dimensions == dims and model.model.endswith(f"/{dims}") for dims, model in models.items())
    assert models[128].model == f"wordllama-{local.wordllama_version()}/l2_supercat_256/128"
    assert models[64]._model is None  # naming the model loads nothing
    with pytest.raises(ConfigError, match="64, 128, 256"):
        LocalEmbedder(100)


def test_threads_share_one_load(monkeypatch):
    loads = []
    real = local.load_wordllama
    started = threading.Barrier(4)

    def counting(dimensions):
        loads.append(dimensions)
        return real(dimensions)

    monkeypatch.setattr(local, "load_wordllama", counting)
    embedder = LocalEmbedder(64)
    results: list[np.ndarray] = []

    def work():
        started.wait()
        results.append(embedder.embed([DEADLOCK, BREAD] * 50))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [64] and len(results) == 4
    assert all(np.allclose(result, results[0]) for result in results)


def test_missing_weights_are_a_config_error_naming_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(wordllama, "__file__", str(tmp_path / "wordllama" / "__init__.py"))
    with pytest.raises(ConfigError, match=r"l2_supercat_256\.safetensors.*reinstall wordllama"):
        LocalEmbedder().embed(["text"])


def test_the_plugin_registers_local_and_reads_dimensions(tmp_path):
    with Testbed(tmp_path, load=["embed"], settings={"embed": {"dimensions": 256}}) as testbed:
        plugin, provider = testbed.runtime.registry.embedders["local"]
        assert plugin == "embed" and testbed.plugin_error("embed") is None
        made = provider.create(testbed.runtime.contexts.plugin_context("embed"))
        assert isinstance(made, LocalEmbedder) and made.dimensions == 256
    with pytest.raises(ValidationError, match="dimensions"):
        EmbedSettings(dimensions=100)
    assert EmbedSettings().dimensions == 128
