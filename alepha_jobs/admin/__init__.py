"""Admin: the service shared by ``alepha-jobs`` and the HTTP API (SPEC §10)."""

from .service import Actor, AdminService, iso_duration, recent_counts

__all__ = ["Actor", "AdminService", "iso_duration", "recent_counts"]
