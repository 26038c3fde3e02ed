"""The ``DBOSWorkflow`` block: a DBOS workflow in Prefect's job shape (``trigger()`` -> a run)."""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.abstract import JobBlock, JobRun
from pydantic import Field

from prefect_dbos import operations
from prefect_dbos.database import DOCS_URL, LOGO_URL, DBOSSystemDatabase


class DBOSWorkflowRun(JobRun):
    """One run of a :class:`DBOSWorkflow`: wait for it, then fetch its decoded output.

    :param block: the workflow block that triggered it.
    :param workflow_id: the DBOS workflow id.
    """

    def __init__(self, block: DBOSWorkflow, workflow_id: str) -> None:
        self.block = block
        self.workflow_id = workflow_id
        self._result: Any = None
        self._done = False

    async def wait_for_completion(self) -> None:  # type: ignore[override]
        """Wait until the workflow ends (``wait_timeout``); fail with its status and own error."""
        self._result = await operations.wait(
            self.block.system_database,
            self.workflow_id,
            logger=self.logger,
            timeout=self.block.wait_timeout,
            cancel_on_timeout=self.block.cancel_on_timeout,
        )
        self._done = True

    async def fetch_result(self) -> Any:
        """The workflow's output, decoded safely (waits first if needed)."""
        if not self._done:
            await self.wait_for_completion()
        return self._result


class DBOSWorkflow(JobBlock):
    """
    A DBOS workflow on a queue, with its arguments and enqueue options.

    ``trigger()`` enqueues it under an id derived from the flow run and the call (a retried task
    or flow re-attaches) and returns a :class:`DBOSWorkflowRun`.

    Example:
        Enqueue a saved workflow and wait for its output:
        ```python
        from prefect import flow
        from prefect_dbos import DBOSWorkflow

        workflow = DBOSWorkflow.load("BLOCK_NAME")

        @flow
        async def checkout():
            run = await workflow.trigger()
            await run.wait_for_completion()
            return await run.fetch_result()
        ```
    """

    _block_type_name = "DBOS Workflow"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCS_URL  # type: ignore[assignment]
    _description = "A DBOS workflow on a queue: trigger it from a flow and wait for its output."

    system_database: DBOSSystemDatabase = Field(description="The DBOS application's system database.")
    queue_name: str = Field(description="DBOS queue the application's workers poll.")
    workflow_name: str = Field(description="Registered name of the workflow (or Class.method).")
    workflow_class_name: str | None = Field(default=None, description="Class of a class-based workflow.")
    workflow_args: list[Any] = Field(default_factory=list, description="Positional arguments of the workflow.")
    workflow_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the workflow.")
    app_version: str | None = Field(default=None, description="Only workers of this application version run it.")
    priority: int | None = Field(default=None, ge=1, description="Queue priority, 1 (first) and up.")
    workflow_timeout: float | None = Field(
        default=None, gt=0, description="Seconds after dequeue before DBOS cancels the workflow."
    )
    queue_partition_key: str | None = Field(default=None, description="Partition of a partitioned queue.")
    attributes: dict[str, Any] | None = Field(
        default=None,
        description="Your attributes stored on the workflow (JSON values; the prefect.* keys are the run's record).",
    )
    on_unknown_queue: Literal["warn", "fail", "ignore"] = Field(
        default="warn",
        description="A queue no worker registered: warn in the log (naming the registered ones), fail before "
        "enqueueing, or ignore.",
    )
    on_unknown_version: Literal["warn", "fail", "ignore"] = Field(
        default="warn", description="An app_version no worker registered: warn, fail before enqueueing, or ignore."
    )
    wait_timeout: float | None = Field(
        default=None, gt=0, description="Seconds wait_for_completion waits (empty: as long as it takes)."
    )
    cancel_on_timeout: bool = Field(default=True, description="Cancel the workflow when the wait times out.")
    retry_mode: Literal["resume", "restart", "fail"] = Field(
        default="resume",
        description="A retry finding the workflow failed: resume (keep completed steps), restart, or fail.",
    )

    def enqueue_options(self) -> dict[str, Any]:
        """The block's enqueue options (those set)."""
        return {
            "app_version": self.app_version,
            "priority": self.priority,
            "workflow_timeout": self.workflow_timeout,
            "queue_partition_key": self.queue_partition_key,
            "attributes": self.attributes,
            "on_unknown_queue": self.on_unknown_queue,
            "on_unknown_version": self.on_unknown_version,
        }

    async def trigger(self, *, workflow_id: str | None = None, key: str | None = None) -> DBOSWorkflowRun:
        """Enqueue the workflow once per call of the flow run (or re-attach); return its run.

        :param workflow_id: explicit id (wins over the derived one).
        :param key: the call's own key within the flow run.
        """
        wid = await operations.enqueue(
            self.system_database,
            self.queue_name,
            self.workflow_name,
            self.workflow_args,
            self.workflow_kwargs,
            logger=self.logger,
            workflow_class_name=self.workflow_class_name,
            workflow_id=workflow_id,
            key=key,
            retry_mode=self.retry_mode,
            options=self.enqueue_options(),
        )
        return DBOSWorkflowRun(self, wid)
