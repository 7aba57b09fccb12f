"""A minimal Quaero plugin: the ``echo`` action saves each of its messages as a document."""

from quaero.api import Action, ChildSpec, DocumentInput, JobWorker, StepManager, StepOptions, hookimpl

QUAERO_API = "1.0"  # the plugin API this plugin is written against


class EchoOptions(StepOptions):
    """The step's ``config``: unknown keys are rejected with the step and key named."""

    messages: list[str]
    shout: bool = False


class EchoManager(StepManager):
    """Creates one child job per message."""

    manager_type = "echo"

    def start_step(self, ctx):
        ctx.spawn_many([ChildSpec("echo_message", f"echo {i}", {"text": text}, item_ref=f"message {i}")
                        for i, text in enumerate(ctx.options.messages)])


class EchoWorker(JobWorker):
    """Saves one message as a document."""

    worker_type = "echo_message"
    max_retries = 2

    def execute(self, ctx, job):
        text = job.config["text"]
        if ctx.options.shout:
            text = text.upper()
        ctx.log("info", f"echoing {text!r}")
        # A reference made of what the document is, not of the job that saved it: re-runs update it.
        ctx.save_document(DocumentInput(source_type="echo", source_ref=f"echo:{ctx.definition.id}:{job.config['text']}",
                                        title=text, markdown=text))


@hookimpl
def register_actions(register):
    register(Action(name="echo", manager=EchoManager(), workers=[EchoWorker()], options=EchoOptions,
                    description="Save each message as a document."))
