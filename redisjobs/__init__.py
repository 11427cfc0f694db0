"""redisjobs: a Redis-backed distributed job framework for asyncio.

Producers use :class:`Client` (enqueue, get, wait, cancel, list, events); workers use
:class:`Worker`, which runs jobs through executors by kind. Jobs live in Redis streams with
consumer-group leases, fenced outcomes, retries with backoff, and live events.
"""

from .app import App
from .client import Client
from .composition import FlowRun, Step, chain, chord, flow, group, step
from .deps import ParentPolicy
from .errors import (
    CallRefused,
    ConnectionFailed,
    Declined,
    ExecutorError,
    InvalidJobId,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobTimeout,
    MissingExtra,
    PayloadError,
    PayloadTooLarge,
    QueueFull,
    QueueInUse,
    RateLimited,
    RedisJobsError,
    RedisOutOfMemory,
    Retry,
    SerializationError,
    UnknownDependency,
    UnknownExecutor,
    WaitTimeout,
)
from .events import Event
from .executors import ExecContext, Executor
from .executors.call import CallExecutor, function_ref
from .flowview import Tree, TreeNode
from .handles import SyncTaskJob, TaskJob
from .job import FailureReason, Job, JobStatus
from .jobrules import Keep, UniqueMode
from .listing import JobPage
from .manager import JobManager
from .schedule_spec import Schedule
from .task import AsyncTask, SyncTask, Task, TaskCall
from .worker import Worker

__version__ = "0.3.0"
"""The package's version: written here only (pyproject.toml reads it, through hatch)."""

__all__ = [
    "App",
    "AsyncTask",
    "CallExecutor",
    "CallRefused",
    "Client",
    "ConnectionFailed",
    "Declined",
    "Event",
    "ExecContext",
    "Executor",
    "ExecutorError",
    "FailureReason",
    "FlowRun",
    "InvalidJobId",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobManager",
    "JobNotFound",
    "JobPage",
    "JobStatus",
    "JobTimeout",
    "Keep",
    "MissingExtra",
    "ParentPolicy",
    "PayloadError",
    "PayloadTooLarge",
    "QueueFull",
    "QueueInUse",
    "RateLimited",
    "RedisJobsError",
    "RedisOutOfMemory",
    "Retry",
    "Schedule",
    "SerializationError",
    "Step",
    "SyncTask",
    "SyncTaskJob",
    "Task",
    "TaskCall",
    "TaskJob",
    "Tree",
    "TreeNode",
    "UniqueMode",
    "UnknownDependency",
    "UnknownExecutor",
    "WaitTimeout",
    "Worker",
    "__version__",
    "chain",
    "chord",
    "flow",
    "function_ref",
    "group",
    "step",
]
