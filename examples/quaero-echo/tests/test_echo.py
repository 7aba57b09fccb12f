"""The echo plugin's own tests, written with Quaero's test harness (``quaero.testing``)."""

import quaero_echo
from quaero.testing import Testbed

ECHO = """
name: greetings
tags: [examples]
steps:
  - name: say
    action: echo
    config: {messages: [hello, world], shout: true}
"""


def test_each_message_becomes_a_document(tmp_path):
    with Testbed(tmp_path, plugins=[("echo", quaero_echo)]) as bed:
        run = bed.run(ECHO)
        assert run.status == "completed", run.error
        assert sorted(doc.title for doc in run.documents) == ["HELLO", "WORLD"]
        assert all(doc.tags == ["examples"] for doc in run.documents)  # the definition's tags
        assert run.step("say").result_count == 2
        assert "echoing 'HELLO'" in run.log_text()


def test_running_again_updates_the_same_documents(tmp_path):
    with Testbed(tmp_path, plugins=[("echo", quaero_echo)]) as bed:
        bed.run(ECHO)
        again = bed.run(ECHO)
        assert again.status == "completed"
        assert bed.documents.count() == 2  # stable references: no duplicates


def test_a_typo_in_the_config_names_the_key(tmp_path):
    import pytest

    from quaero.api import DefinitionError

    with Testbed(tmp_path, plugins=[("echo", quaero_echo)]) as bed:
        with pytest.raises(DefinitionError, match="unknown key 'mesages'"):
            bed.run("name: typo\nsteps:\n  - {name: say, action: echo, config: {mesages: [hi]}}")
