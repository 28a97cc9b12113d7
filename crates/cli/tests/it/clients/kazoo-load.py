"""kazoo (the Python ZooKeeper client) as a writing load on a zkpilot ensemble.

One session writes a new sequential-numbered node every 20 ms and remembers which creates were
acknowledged; on "stop" (stdin) it reads the children back after a `sync` and reports every
acknowledged node that is missing. It also holds an ephemeral node and watches its own session,
so an expired session (what a careless restart causes) shows up as `lost` and as a changed
session id, not only as missing writes. Output: one JSON object per line, `{"ready": true}` once
writing, the summary after "stop".

Usage: python kazoo-load.py CONNECT PREFIX
"""

import json
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.retry import KazooRetry


def main() -> None:
    connect, prefix = sys.argv[1], sys.argv[2]
    states = {"suspended": 0, "lost": 0, "connected": 0}
    # Reconnect forever, quickly: the load must keep trying through every restart.
    zk = KazooClient(hosts=connect, timeout=10.0, connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1))

    def on_state(state):
        states[{KazooState.SUSPENDED: "suspended", KazooState.LOST: "lost"}.get(state, "connected")] += 1

    zk.add_listener(on_state)
    zk.start(timeout=60)
    session = zk.client_id[0]
    zk.ensure_path(prefix)
    mine = f"{prefix}-ephemeral-{session:x}"
    zk.create(mine, b"", ephemeral=True)

    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)

    acked, failed, kinds, i = [], 0, {}, 0
    while not stop.is_set():
        try:
            # No command retry: a create that fails with connection loss may or may not have
            # been applied, so it is counted as failed and never as acknowledged.
            zk.create(f"{prefix}/n-{i:08d}", str(i).encode())
            acked.append(i)
        except NodeExistsError:
            # Nothing retries a create here, so a collision is unexplained: a failure of its own
            # kind, never an acknowledgement.
            failed += 1
            kinds["NodeExists"] = kinds.get("NodeExists", 0) + 1
        except KazooException as e:
            failed += 1
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
            time.sleep(0.1)
        i += 1
        time.sleep(0.02)

    deadline = time.time() + 60
    while True:
        try:
            zk.sync(prefix)
            present = {int(c[2:]) for c in zk.get_children(prefix) if c.startswith("n-")}
            stat = zk.exists(mine)
            break
        except KazooException:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    missing = [n for n in acked if n not in present]
    print(
        json.dumps(
            {
                "done": True,
                "acked": len(acked),
                "failed": failed,
                "failure_kinds": kinds,
                "missing": len(missing),
                "first_missing": missing[:10],
                "states": states,
                "same_session": zk.client_id[0] == session,
                "ephemeral_owned": stat is not None and stat.ephemeralOwner == session,
            }
        ),
        flush=True,
    )
    zk.stop()
    zk.close()


if __name__ == "__main__":
    main()
