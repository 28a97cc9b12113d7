"""moto's server, answering one request at a time.

moto checks S3's conditional writes (If-None-Match: *, If-Match) and then writes, as two steps
under a threaded HTTP server, so two racing conditional puts can both succeed. Real S3 makes
the check and the write one atomic step ("Conditional writes", S3 User Guide), and zkpilot's
leases and slot claims rely on exactly that. Serialising the requests gives moto the same
per-key atomicity. The server stays threaded so connections are accepted while a request is
answered; a request's body is read inside the lock, so a slow upload holds the others back,
which loopback tests do not notice.

Usage: python moto_serial.py HOST PORT
"""

import os
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    # moto builds some URLs (presigned, queue URLs) from this, as its own launcher does.
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serial(environ, start_response):
        with one_at_a_time:
            # Drain the response inside the lock (moto may compute it lazily) and close it, as
            # WSGI asks of whoever consumes an app's iterable.
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
