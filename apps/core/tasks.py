from celery import shared_task


@shared_task(name="core.ping")
def ping(value: str = "pong") -> dict:
    """A trivial round trip through the broker, used by tests and readiness tooling."""
    import os
    import socket

    return {"value": value, "hostname": socket.gethostname(), "pid": os.getpid()}
