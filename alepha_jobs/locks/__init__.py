"""Lock stores for cron coordination (SPEC §6.2): memory, database, file, Redis."""

from .base import LockStore, owner_of
from .database import DatabaseLockStore
from .file import FileLockStore
from .memory import MemoryLockStore
from .redis import RedisLockStore

__all__ = [
    "DatabaseLockStore",
    "FileLockStore",
    "LockStore",
    "MemoryLockStore",
    "RedisLockStore",
    "owner_of",
]
