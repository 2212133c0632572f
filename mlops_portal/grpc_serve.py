"""The gRPC process: the Open Inference Protocol's GRPCInferenceService (tritonclient.grpc and other
KServe V2 gRPC clients), beside the web process's HTTP `/v2`.

    python -m mlops_portal.grpc_serve --host 127.0.0.1 --port 8001

Port GRPC_PORT (8001, as Triton), host GRPC_HOST else WEB_HOST (127.0.0.1), messages up to
GRPC_MAX_MESSAGE_BYTES (default the HTTP body limit, REQUEST_BODY_MAX_BYTES), GRPC_THREADS RPC
threads. Like a web worker it loads models on first use, follows routing changes with the serving
state's watcher and acknowledges them (apps.deployments.serving.state), and keeps a prediction-log
writer; on SIGTERM/SIGINT it stops taking calls, gives open ones `--graceful` seconds, and then the
writer stores what it holds (PREDICTION_LOG_SHUTDOWN_S) before the process exits.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading


def main(argv=None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
    import django

    django.setup()
    from django.conf import settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("GRPC_HOST") or os.environ.get("WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRPC_PORT", "8001")))
    parser.add_argument("--threads", type=int, default=settings.GRPC_THREADS, help="RPC threads (GRPC_THREADS)")
    parser.add_argument("--graceful", type=float, default=10, help="seconds open calls get on SIGTERM")
    args = parser.parse_args(argv)

    from apps.deployments.serving.grpc_service import build_server
    from apps.monitoring.services.logbuffer import prediction_logs_close

    server, service = build_server(threads=args.threads, max_message_bytes=settings.GRPC_MAX_MESSAGE_BYTES)
    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        print(f"grpc: cannot listen on {address}: {exc}", file=sys.stderr, flush=True)
        return 1
    # As in the web workers (serve.py): what start-up imported lives as long as the process, so keep
    # it out of the collector's full scans.
    gc.collect()
    gc.freeze()

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    server.start()
    print(
        f"grpc: GRPCInferenceService on {address} ({args.threads} threads, messages up to "
        f"{settings.GRPC_MAX_MESSAGE_BYTES:,} bytes)",
        file=sys.stderr,
        flush=True,
    )
    stopping.wait()
    server.stop(args.graceful).wait()
    service.close()
    lost = prediction_logs_close()
    if lost:
        print(f"grpc: {lost} prediction log lines could not be stored", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
