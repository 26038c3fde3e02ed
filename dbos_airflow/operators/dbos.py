"""Operators that enqueue DBOS workflows and send them messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbos_orchestrator.exceptions import DBOSOptionsError
from dbos_orchestrator.forms import as_json, as_text
from dbos_orchestrator.operations.preflight import check_on_unknown

from dbos_airflow.contract.ids import check_id_from, work_id
from dbos_airflow.contract.ownership import with_owner
from dbos_airflow.contract.partitions import check_from_run, queue_partition_key
from dbos_airflow.links import remember_workflow
from dbos_airflow.operators.base import DBOSBaseOperator, dbos_template_fields
from dbos_airflow.operators.lifecycle import DBOSLifecycleOperator
from dbos_airflow.operators.lineage import with_lineage
from dbos_airflow.operators.manage import workflow_ids_arg

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from dbos_orchestrator.options import EnqueueOptions

TEXT_OPTIONS = frozenset(
    {
        "workflow_name",
        "queue_name",
        "workflow_class_name",
        "app_version",
        "queue_partition_key",
        "workflow_id",
        "deduplication_id",
    }
)


def derived_work_id(context: Context, id_from: str, completion_key: Any, what: str) -> str:
    """The derived id of an operator's work by ``id_from`` (:func:`~dbos_airflow.contract.ids.work_id`);
    a ``completion_key`` given with ``id_from="run"`` is refused rather than ignored."""
    key = as_text(completion_key) or None
    if key is not None and id_from != "completion":
        raise DBOSOptionsError(f"completion_key={key!r} is used only with id_from='completion' (id_from={id_from!r})")
    return work_id(context, id_from=id_from, key=key, what=what)


class DBOSBaseEnqueueOperator(DBOSBaseOperator):
    """
    What every enqueue operator shares: the workflow, its queue and the enqueue options.

    :param workflow_name: registered name of the workflow: the function's name, or for a class
        workflow the method's name (with ``workflow_class_name``) or ``Class.method``.
    :param queue_name: DBOS queue the application's workers poll.
    :param workflow_class_name: class of a class-based workflow (``@DBOS.dbos_class``).
    :param app_version: only workers of this application version run it.
    :param priority: queue priority, 1 (first) .. 2**31-1.
    :param workflow_timeout: seconds after dequeue before DBOS cancels the workflow.
    :param delay_seconds: seconds before the workflow becomes eligible to run.
    :param queue_partition_key: partition of a partitioned queue (templated). Not given (or empty once
        rendered) in a partitioned DAG run: the run's partition key (``context["partition_key"]``), unless
        the workflow has a ``deduplication_id`` (docs/operations.md, "Partitioned DAG runs and partitioned queues").
    :param partition_key_from_run: ``False``: never use the DAG run's partition key as the
        workflow's ``queue_partition_key`` (default ``True``).
    :param serialization: ``portable`` (JSON, default) or ``pickle``, for the arguments.
    :param on_unknown_queue: before enqueueing, a ``queue_name`` no worker registered is ``warn``-ed
        about in the task log, naming the registered queues (default), ``fail``-s the task before
        anything is written, or is ``ignore``-d. Where the database cannot know (no queue registered
        at all) the log says so and nothing fails (docs/operations.md, "Fail fast").
    :param on_unknown_version: the same for an ``app_version`` no worker registered.
    :param authenticated_user: the user DBOS restores when the workflow runs (``DBOS.authenticated_user``,
        ``@DBOS.required_roles``); default: the user who triggered the DAG run, when Airflow knows it.
    :param authenticated_roles: the roles DBOS restores with it (a list, or JSON text).
    :param attributes: user attributes stored on the workflow (a dict, or JSON text), merged with the
        owner record; the owner key (``airflow``) cannot be set by a user.
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields(
        "workflow_name",
        "queue_name",
        "workflow_class_name",
        "app_version",
        "queue_partition_key",
        "authenticated_user",
        "authenticated_roles",
        "attributes",
    )

    def __init__(
        self,
        *,
        workflow_name: str,
        queue_name: str,
        workflow_class_name: str | None = None,
        app_version: str | None = None,
        priority: int | None = None,
        workflow_timeout: float | None = None,
        delay_seconds: float | None = None,
        queue_partition_key: str | None = None,
        partition_key_from_run: bool = True,
        on_unknown_queue: str = "warn",
        on_unknown_version: str = "warn",
        authenticated_user: str | None = None,
        authenticated_roles: list[str] | str | None = None,
        attributes: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_unknown_queue = check_on_unknown("on_unknown_queue", on_unknown_queue)
        self.on_unknown_version = check_on_unknown("on_unknown_version", on_unknown_version)
        self.authenticated_user = authenticated_user
        self.authenticated_roles = authenticated_roles
        self.attributes = attributes
        self.workflow_name = workflow_name
        self.queue_name = queue_name
        self.workflow_class_name = workflow_class_name
        self.app_version = app_version
        self.priority = priority
        self.workflow_timeout = workflow_timeout
        self.delay_seconds = delay_seconds
        self.queue_partition_key = queue_partition_key
        self.partition_key_from_run = check_from_run(partition_key_from_run)

    def check_target(self) -> list[str]:
        """Warn about (or refuse) a queue or ``app_version`` no worker registered, before anything is written."""
        return self.hook.service().check_enqueue_target(
            as_text(self.queue_name),
            as_text(self.app_version) or None,
            on_unknown_queue=self.on_unknown_queue,
            on_unknown_version=self.on_unknown_version,
        )

    def _identity(self, context: Context) -> dict[str, Any]:
        """``authenticated_user`` (default: the DAG run's triggering user), ``authenticated_roles`` and
        user ``attributes`` as enqueue options (the owner record is merged in by ``with_owner``)."""
        dag_run = context.get("dag_run")
        user = as_text(self.authenticated_user) or getattr(dag_run, "triggering_user_name", None) or None
        roles = self.authenticated_roles
        if isinstance(roles, str):
            roles = as_json("authenticated_roles", roles, list) if roles.strip() else None
        attributes = self.attributes
        if isinstance(attributes, str):
            attributes = as_json("attributes", attributes, dict) if attributes.strip() else None
        return {"authenticated_user": user, "authenticated_roles": roles, "attributes": attributes or None}

    def _options(self, context: Context, **per_workflow: Any) -> EnqueueOptions:
        """The enqueue options: the operator's, the workflow's own (``per_workflow``), and the DAG run's
        partition key as ``queue_partition_key`` by :func:`~dbos_airflow.contract.partitions.queue_partition_key`."""
        partition_key = queue_partition_key(
            context,
            given=self.queue_partition_key,
            from_run=self.partition_key_from_run,
            deduplication_id=per_workflow.get("deduplication_id"),
            log=self.log,
        )
        options: dict[str, Any] = {
            "workflow_name": self.workflow_name,
            "queue_name": self.queue_name,
            "workflow_class_name": self.workflow_class_name,
            "app_version": self.app_version,
            "priority": self.priority,
            "workflow_timeout": self.workflow_timeout,
            "delay_seconds": self.delay_seconds,
            "queue_partition_key": partition_key,
            **per_workflow,
        }
        # With render_template_as_native_obj a form's "2" or "123" arrives as an int.
        return {k: as_text(v) if k in TEXT_OPTIONS else v for k, v in options.items() if v is not None}  # type: ignore[return-value]


class DBOSEnqueueOperator(DBOSLifecycleOperator, DBOSBaseEnqueueOperator):
    """
    Enqueue a DBOS workflow and, optionally, wait for it.

    The workflow id defaults to ``dag_id:run_id:task_id:map_index``, so a retry, a clear or a
    second worker running the same try attaches to the workflow already enqueued instead of
    starting another. In a DAG run triggered by DBOS completion events
    (:class:`~dbos_airflow.triggers.completed.DBOSWorkflowCompletedTrigger`), ``id_from="completion"``
    derives it from the triggering completion instead: ``dag_id:task_id:<completion_key>``, so a
    completion Airflow delivered twice (in this run or another) re-attaches to the same workflow
    (docs/events.md, "Exactly-once work downstream"). The id is pushed to XCom (key
    ``workflow_id``) before any waiting and is the return value; when the task waits and the
    workflow succeeds, its output is pushed as key ``result``.

    :param workflow_args: positional arguments (a JSON list).
    :param workflow_kwargs: keyword arguments (a JSON object).
    :param workflow_id: explicit workflow id (templated); overrides the derived one.
    :param id_from: what the derived id comes from: ``run`` (the task instance, default) or
        ``completion`` (the DBOS completion that triggered the run; see ``completion_key``). The
        task fails, without retries, when the run was not triggered by DBOS completion events.
    :param completion_key: with ``id_from="completion"``, the ``completion_key`` of the triggering
        completion this task instance works for (templated); needed when several completions
        triggered the run: map the task over
        :func:`~dbos_airflow.triggers.completed.triggering_completions`. It must be one of them.
    :param deduplication_id: at most one active workflow per queue with this id.
    :param duplication_policy: what happens when another active workflow holds ``deduplication_id``:
        ``reject`` (DBOS' default: the task fails) or ``return-existing``: the task attaches to that
        workflow and waits for it ("one refresh per key; a second run waits on the first"); it never
        cancels a workflow it attached to.
    :param wait_for_completion: wait until the workflow ends and fail the task if it fails.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status checks when waiting in a worker.
    :param timeout: seconds to wait before failing the task (None: wait as long as it takes);
        templated, like ``wait_for_completion``, so a trigger form can set both.
    :param cancel_on_kill: cancel the workflow (best effort, idempotent) when a person stops the
        task (mark failed or success, clear, delete the run; waiting in a worker or deferred),
        when its ``execution_timeout`` passes, or when its own wait times out (``timeout``).
        Airflow replacing a try is not a kill and cancels nothing: a scheduler restarted after a
        crash resetting the try, a lost heartbeat with a retry left, a worker shutting down, a
        trigger moved to another triggerer; the next try or triggerer re-attaches. The task instance's state
        when ``on_kill`` runs tells them apart; when it cannot be read, nothing is cancelled.
        A deferred task cleared while its next try is already scheduled re-attaches instead of
        cancelling. ``False`` leaves the workflow running in every case.
    :param retry_mode: when a later try finds the workflow ended in ERROR, CANCELLED or
        MAX_RECOVERY_ATTEMPTS_EXCEEDED: ``resume`` re-runs it keeping the steps that completed,
        ``restart`` re-runs it from the first step, ``fail`` fails without re-running. A
        workflow that succeeded is never re-run.

    The workflow, queue, class, app_version, priority, workflow_timeout, delay_seconds,
    queue_partition_key, partition_key_from_run, serialization and dbos_conn_id parameters are those of
    :class:`DBOSBaseEnqueueOperator`.
    """

    template_fields: Sequence[str] = (
        *DBOSBaseEnqueueOperator.template_fields,
        "workflow_args",
        "workflow_kwargs",
        "workflow_id",
        "completion_key",
        "deduplication_id",
        "duplication_policy",
        "wait_for_completion",
        "timeout",
    )
    template_fields_renderers = {"workflow_args": "json", "workflow_kwargs": "json"}

    def __init__(
        self,
        *,
        workflow_args: Sequence[Any] | str = (),
        workflow_kwargs: dict[str, Any] | str | None = None,
        workflow_id: str | None = None,
        id_from: str = "run",
        completion_key: str | None = None,
        deduplication_id: str | None = None,
        duplication_policy: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.duplication_policy = duplication_policy
        self._attached_id: str | None = None
        self.workflow_args = workflow_args
        self.workflow_kwargs = workflow_kwargs
        self.workflow_id = workflow_id
        self.id_from = check_id_from(id_from)
        self.completion_key = completion_key
        self.deduplication_id = deduplication_id

    def _enqueue_or_reattach(self, workflow_id: str) -> None:
        args = as_json("workflow_args", self.workflow_args, list)
        kwargs = as_json("workflow_kwargs", self.workflow_kwargs or {}, dict)
        options = self._options(
            self._context,
            workflow_id=workflow_id,
            deduplication_id=self.deduplication_id,
            duplication_policy=as_text(self.duplication_policy) or None,
            **self._identity(self._context),
        )
        options = with_owner(options, self._ti, self.dbos_conn_id)  # docs/ui.md, Permissions
        options = with_lineage(options, self._ti)  # docs/observability.md, OpenLineage
        self._attached_id, _ = self.hook.enqueue_attaching(
            options, args, kwargs, serialization=self.serialization, retry_mode=self.retry_mode, check=self.check_target
        )

    def execute_dbos(self, context: Context) -> str:
        self._render_wait_settings()
        workflow_id = self._own_workflow_id(context)
        self._workflow_id = workflow_id
        self._ti, self._context = context["ti"], context
        self._enqueue_or_reattach(workflow_id)
        if self._attached_id and self._attached_id != workflow_id:  # another run's workflow: never ours to cancel
            workflow_id, self.cancel_on_kill = self._attached_id, False
        remember_workflow(context, self.dbos_conn_id, workflow_id)
        return self.wait_for_workflow(context, workflow_id)

    def _own_workflow_id(self, context: Context) -> str:
        return as_text(self.workflow_id) or derived_work_id(context, self.id_from, self.completion_key, "workflow id")

    def awaited_workflow_id(self, context: Context) -> str:
        own = self._own_workflow_id(context)
        if as_text(self.duplication_policy) == "return-existing":
            # After a deferral: the workflow this try waited on, as execute_dbos pushed it (maybe another run's).
            ti = context["ti"]
            pushed = ti.xcom_pull(task_ids=ti.task_id, key="workflow_id", map_indexes=ti.map_index)
            return str(pushed) if isinstance(pushed, str) and pushed else own
        return own


class DBOSSendOperator(DBOSBaseOperator):
    """
    Send a message to a DBOS workflow (received with ``DBOS.recv(topic)``).

    The idempotency key defaults to ``dag_id:run_id:task_id:map_index`` (no try number), so a
    retried or cleared task delivers the message exactly once. With ``id_from="completion"`` (a
    run triggered by DBOS completion events) it is ``dag_id:task_id:<completion_key>``, so the
    message for a completion Airflow delivered twice is sent once: DBOS drops the repeated send
    (docs/events.md, "Exactly-once work downstream"). Returns the key.

    :param destination_id: id of the receiving workflow, or a list of ids (or such a list rendered by
        a template): then every destination gets the message in one transaction (DBOS' ``send_bulk``),
        each under its own key ``<key>:<destination>``, so a retry delivers it once per destination.
    :param message: the message (JSON-able with the default portable serialization).
    :param topic: topic the workflow receives on (None: the default topic).
    :param idempotency_key: explicit idempotency key (templated); overrides the derived one.
    :param id_from: what the derived key comes from: ``run`` (the task instance, default) or
        ``completion`` (the DBOS completion that triggered the run), as for
        :class:`DBOSEnqueueOperator`.
    :param completion_key: with ``id_from="completion"``, the triggering completion this task
        instance sends for (templated); needed when several completions triggered the run.
    :param serialization: ``portable`` (JSON, default) or ``pickle``, for the message.
    :param dbos_conn_id: the ``dbos`` connection.
    """

    template_fields: Sequence[str] = dbos_template_fields(
        "destination_id", "message", "topic", "idempotency_key", "completion_key"
    )
    template_fields_renderers = {"message": "json"}

    def __init__(
        self,
        *,
        destination_id: str | list[str],
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
        id_from: str = "run",
        completion_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination_id = destination_id
        self.message = message
        self.topic = topic
        self.idempotency_key = idempotency_key
        self.id_from = check_id_from(id_from)
        self.completion_key = completion_key

    def execute_dbos(self, context: Context) -> str:
        key = as_text(self.idempotency_key) or derived_work_id(
            context, self.id_from, self.completion_key, "idempotency key"
        )
        destinations = workflow_ids_arg(self.destination_id)
        if not isinstance(self.destination_id, str) or self.destination_id.strip().startswith("["):
            return self._send_bulk(context, destinations, key)
        remember_workflow(context, self.dbos_conn_id, destinations[0])
        self.hook.send(destinations[0], self.message, self.topic, key, serialization=self.serialization)
        self.log.info(
            "Sent message to DBOS workflow %s (topic %s, idempotency key %s)", self.destination_id, self.topic, key
        )
        return key

    def _send_bulk(self, context: Context, destinations: list[str], key: str) -> str:
        from dbos_orchestrator.serialization import choose_format

        remember_workflow(context, self.dbos_conn_id)
        fmt = choose_format(self.serialization, self.hook.settings.serialization_type)
        self.hook.service().send_bulk(
            destinations, self.message, topic=self.topic, idempotency_key=key, serialization_type=fmt
        )
        self.log.info(
            "Sent message to %d DBOS workflows in one transaction (idempotency key %s:<id>)", len(destinations), key
        )
        return key
