package zkpilot;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryForever;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.data.Stat;

/**
 * A Curator client of a zkpilot ensemble, driven by a test over stdin/stdout.
 *
 * <p>Started with a connection string (the ensemble's original one), it opens N sessions; each
 * creates an ephemeral node and keeps a one-shot data watch set on a ping node, which one more
 * session changes every 500 ms. Curator's EnsembleTracker (always on since CURATOR-266) follows
 * /zookeeper/config, so the sessions must survive every original server being replaced.
 *
 * <p>stdin "stop": write a last ping, wait until the watch of every session fired on it, check
 * every ephemeral is still owned by its session, print one JSON line with the counts, exit.
 */
public final class CuratorProbe {
    static final String ROOT = "/curator-probe";
    /** Sessions whose watch did not fire on the last change (-1 until stop). */
    static int lastWatchMissing = -1;

    static final class Session {
        final int id;
        final CuratorFramework client;
        final AtomicLong suspended = new AtomicLong();
        final AtomicLong reconnected = new AtomicLong();
        final AtomicLong lost = new AtomicLong();
        final AtomicLong expired = new AtomicLong();
        final AtomicLong watchesSet = new AtomicLong();
        final AtomicLong watchesFired = new AtomicLong();
        final AtomicLong watchErrors = new AtomicLong();
        volatile long sessionId;
        /** What the read that armed the current watch returned. */
        volatile String armedOn = "";
        // Re-arming runs off ZooKeeper's event thread, which must not block on a retried call.
        final java.util.concurrent.ExecutorService rearm = java.util.concurrent.Executors.newSingleThreadExecutor();

        Session(int id, String connect, int sessionTimeoutMs) {
            this.id = id;
            this.client = CuratorFrameworkFactory.builder()
                    .connectString(connect)
                    .sessionTimeoutMs(sessionTimeoutMs)
                    .connectionTimeoutMs(5000)
                    .retryPolicy(new RetryForever(200))
                    .build();
            client.getConnectionStateListenable().addListener((c, state) -> {
                if (state == ConnectionState.SUSPENDED) suspended.incrementAndGet();
                if (state == ConnectionState.RECONNECTED) reconnected.incrementAndGet();
                if (state == ConnectionState.LOST) lost.incrementAndGet();
            });
            client.getCuratorListenable().addListener((c, event) -> {
                WatchedEvent w = event.getWatchedEvent();
                if (w != null && w.getState() == Watcher.Event.KeeperState.Expired) expired.incrementAndGet();
            });
        }

        void start() throws Exception {
            client.start();
            if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) throw new IllegalStateException("session " + id + " never connected");
            client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(ROOT + "/e/" + id, new byte[0]);
            sessionId = client.getZookeeperClient().getZooKeeper().getSessionId();
            arm();
        }

        /** Sets the next one-shot watch; a fired watch sets the next one. */
        void arm() {
            for (;;) {
                try {
                    byte[] data = client.getData().usingWatcher((Watcher) e -> {
                        if (e.getType() == Watcher.Event.EventType.NodeDataChanged) {
                            watchesFired.incrementAndGet();
                            rearm.submit(this::arm);
                        }
                    }).forPath(ROOT + "/ping");
                    armedOn = new String(data, StandardCharsets.UTF_8);
                    watchesSet.incrementAndGet();
                    return;
                } catch (Exception e) {
                    // Connection loss while setting it: Curator retries the operation itself
                    // (RetryForever); anything else is counted and tried again.
                    watchErrors.incrementAndGet();
                    sleep(200);
                }
            }
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public static void main(String[] args) throws Exception {
        String connect = args[0];
        int n = Integer.parseInt(args[1]);
        int sessionTimeoutMs = args.length > 2 ? Integer.parseInt(args[2]) : 10000;

        Session pinger = new Session(-1, connect, sessionTimeoutMs);
        pinger.client.start();
        pinger.client.blockUntilConnected(60, TimeUnit.SECONDS);
        try {
            pinger.client.create().creatingParentsIfNeeded().forPath(ROOT + "/ping", "0".getBytes(StandardCharsets.UTF_8));
        } catch (KeeperException.NodeExistsException e) {
            // a rerun
        }
        List<Session> sessions = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Session s = new Session(i, connect, sessionTimeoutMs);
            s.start();
            sessions.add(s);
        }
        AtomicLong pings = new AtomicLong();
        AtomicLong pingErrors = new AtomicLong();
        Thread ping = new Thread(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                try {
                    pinger.client.setData().forPath(ROOT + "/ping", Long.toString(pings.get() + 1).getBytes(StandardCharsets.UTF_8));
                    pings.incrementAndGet();
                } catch (Exception e) {
                    pingErrors.incrementAndGet();
                }
                sleep(500);
            }
        });
        ping.setDaemon(true);
        ping.start();
        System.out.println("{\"ready\":true,\"sessions\":" + n + "}");
        System.out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
            if (line.trim().equals("status")) {
                System.out.println(summary(sessions, pinger, pings.get(), pingErrors.get(), -1, false));
                System.out.flush();
            }
        }
        ping.interrupt();
        ping.join();
        // One last change: the watch every session has armed must fire, wherever its
        // connection went meanwhile (ZooKeeper re-registers watches on reconnect).
        long[] before = new long[sessions.size()];
        for (int i = 0; i < sessions.size(); i++) before[i] = sessions.get(i).watchesFired.get();
        for (;;) {
            try {
                pinger.client.setData().forPath(ROOT + "/ping", "last".getBytes(StandardCharsets.UTF_8));
                break;
            } catch (Exception e) {
                sleep(200);
            }
        }
        long deadline = System.currentTimeMillis() + 60_000;
        int missing = sessions.size();
        while (System.currentTimeMillis() < deadline) {
            missing = 0;
            // Seen through the watch, or by the read re-arming it (a watch fired on the change
            // before, re-armed after it: the read returns the new value, the standard pattern).
            for (int i = 0; i < sessions.size(); i++) {
                Session s = sessions.get(i);
                if (s.watchesFired.get() <= before[i] && !"last".equals(s.armedOn)) missing++;
            }
            if (missing == 0) break;
            sleep(100);
        }
        lastWatchMissing = missing;
        int ownedEphemerals = 0;
        for (Session s : sessions) {
            Stat st = pinger.client.checkExists().forPath(ROOT + "/e/" + s.id);
            long now = s.client.getZookeeperClient().getZooKeeper().getSessionId();
            if (st != null && st.getEphemeralOwner() == s.sessionId && now == s.sessionId) ownedEphemerals++;
        }
        System.out.println(summary(sessions, pinger, pings.get(), pingErrors.get(), ownedEphemerals, true));
        System.out.flush();
        for (Session s : sessions) {
            s.rearm.shutdownNow();
            s.client.close();
        }
        pinger.client.close();
    }

    static long minFired(List<Session> sessions) {
        long min = Long.MAX_VALUE;
        for (Session s : sessions) min = Math.min(min, s.watchesFired.get());
        return sessions.isEmpty() ? 0 : min;
    }

    static String summary(List<Session> sessions, Session pinger, long pings, long pingErrors, int owned, boolean done) {
        long suspended = 0, reconnected = 0, lost = 0, expired = 0, set = 0, fired = 0, errors = 0;
        for (Session s : sessions) {
            suspended += s.suspended.get();
            reconnected += s.reconnected.get();
            lost += s.lost.get();
            expired += s.expired.get();
            set += s.watchesSet.get();
            fired += s.watchesFired.get();
            errors += s.watchErrors.get();
        }
        String cs;
        try {
            cs = sessions.get(0).client.getZookeeperClient().getCurrentConnectionString();
        } catch (Exception e) {
            cs = "";
        }
        return "{\"done\":" + done + ",\"sessions\":" + sessions.size() + ",\"suspended\":" + suspended
                + ",\"reconnected\":" + reconnected + ",\"lost\":" + lost + ",\"expired\":" + expired
                + ",\"watches_set\":" + set + ",\"watches_fired\":" + fired + ",\"watch_errors\":" + errors
                + ",\"pings\":" + pings + ",\"ping_errors\":" + pingErrors + ",\"ephemerals_owned\":" + owned
                + ",\"last_watch_missing\":" + lastWatchMissing + ",\"min_watches_fired\":" + minFired(sessions)
                + ",\"pinger_suspended\":" + pinger.suspended.get() + ",\"connect_string\":\"" + cs + "\"}";
    }
}
