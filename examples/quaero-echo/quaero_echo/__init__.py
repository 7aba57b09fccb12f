"""A minimal Quaero plugin: the ``echo`` action saves each of its messages as a document."""

from quaero import Action, ChildSpec, DocumentInput, JobWorker, StepManager, StepOptions, hookimpl


class EchoOptions(StepOptions):
    """The step's ``config``: unknown keys are rejected with the step and key named."""

    messages: list[str]
    shout: bool = False


class EchoManager(StepManager):
    """Creates the step's parent job and one child job per message."""

    manager_type = "echo"

    def create_parent_job(self, ctx, step, job_def, parent_job_id):
        parent = ctx.create_step_job(step, job_def, parent_job_id)
        children = [ChildSpec("echo_message", f"echo {i}", {"text": text}) for i, text in enumerate(step.options.messages)]
        ctx.spawner.spawn_children(parent, children)
        return parent.id


class EchoWorker(JobWorker):
    """Saves one message as a document."""

    worker_type = "echo_message"
    max_retries = 2

    def execute(self, ctx, job):
        text = job.config["text"]
        if ctx.options.shout:
            text = text.upper()
        ctx.log("info", f"echoing {text!r}")
        ctx.save_document(DocumentInput(source_type="echo", source_ref=f"echo:{job.id}", title=text, markdown=text))


@hookimpl
def register_actions(register):
    register(Action(name="echo", manager=EchoManager(), workers=[EchoWorker()], options=EchoOptions,
                    description="Save each message as a document."))
