package zkpilot;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A Kafka producer and consumer on brokers in ZooKeeper mode whose ensemble zkpilot manages, driven
 * by a test over stdin/stdout (one JSON object per line).
 *
 * <p>In ZooKeeper mode the brokers depend on the ensemble for the controller election, ISR changes
 * and leader elections, so an ensemble change that a broker's ZooKeeper session does not ride through
 * shows up as produce requests that time out, acknowledged records that are lost (acks=all with
 * min.insync.replicas=2 must never lose one) or idempotent sends that are written twice. The probe
 * keeps producing at a steady rate while the test changes the ensemble and, at the end, checks that
 * every acknowledged record can be read back.
 *
 * <p>Args: bootstrap servers, topic. Prints {"ready":true} once the topic (3 partitions, RF 3,
 * min.insync.replicas=2) is led and the consumer has its partitions. stdin "status" answers with the
 * progress; "stop" (or end of input) stops producing, waits for the sends in flight, reads until
 * every acknowledged record was seen or 60 s passed, prints one summary line and exits 0.
 */
public final class KafkaProbe {
    static final int PARTITIONS = 3;

    // Sequence numbers are dense from 0, so bit sets hold them; guarded by their own monitor.
    static final BitSet acked = new BitSet();
    static final BitSet received = new BitSet();
    static final AtomicLong sent = new AtomicLong();
    static final AtomicLong failed = new AtomicLong();
    static final Map<String, AtomicLong> failureKinds = new ConcurrentHashMap<>();
    /** First (partition, offset) each sequence number was read at; consumer thread only. */
    static final Map<Long, Long> firstSeenAt = new HashMap<>();
    /** The same sequence number at a second offset: a write the idempotent producer should have prevented. */
    static final AtomicLong duplicates = new AtomicLong();
    /** The same record read again (a rebalance before the offset commit); harmless, kept apart. */
    static final AtomicLong redelivered = new AtomicLong();
    static final AtomicLong consumerErrors = new AtomicLong();
    static volatile boolean producing = true;
    static volatile boolean consuming = true;
    static volatile int assigned = 0;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];

        createTopic(bootstrap, topic);

        Thread consumer = new Thread(() -> consume(bootstrap, topic), "probe-consumer");
        consumer.start();
        long deadline = System.currentTimeMillis() + 120_000;
        // Records sent before the consumer has its partitions are read anyway (earliest), but
        // a group that never forms would only show up at the end as everything missing.
        while (assigned < PARTITIONS) {
            if (System.currentTimeMillis() > deadline) fail("consumer never got its " + PARTITIONS + " partitions");
            sleep(100);
        }

        KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap));
        Thread produce = new Thread(() -> produce(producer, topic), "probe-producer");
        produce.start();
        System.out.println("{\"ready\":true}");
        System.out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
            if (line.trim().equals("status")) {
                System.out.println("{\"acked\":" + card(acked) + ",\"received\":" + card(received) + ",\"failed\":"
                        + failed.get() + ",\"sent\":" + sent.get() + "}");
                System.out.flush();
            }
        }

        producing = false;
        produce.join();
        // Every send ends in its callback within delivery.timeout.ms, acknowledged or failed.
        producer.flush();
        deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline && !missing(1).isEmpty()) sleep(100);
        consuming = false;
        consumer.join(10_000);

        List<Long> firstMissing = missing(10);
        long ackedNotReceived;
        synchronized (acked) {
            BitSet m = (BitSet) acked.clone();
            synchronized (received) {
                m.andNot(received);
            }
            ackedNotReceived = m.cardinality();
        }
        StringBuilder kinds = new StringBuilder("{");
        for (Map.Entry<String, AtomicLong> e : new TreeMap<>(failureKinds).entrySet()) {
            if (kinds.length() > 1) kinds.append(',');
            kinds.append('"').append(e.getKey()).append("\":").append(e.getValue().get());
        }
        kinds.append('}');
        System.out.println("{\"done\":true,\"acked\":" + card(acked) + ",\"failed\":" + failed.get()
                + ",\"failure_kinds\":" + kinds + ",\"received\":" + card(received)
                + ",\"acked_not_received\":" + ackedNotReceived + ",\"first_missing\":" + firstMissing
                + ",\"duplicates\":" + duplicates.get() + ",\"sent\":" + sent.get()
                + ",\"redelivered\":" + redelivered.get() + ",\"consumer_errors\":" + consumerErrors.get() + "}");
        System.out.flush();
        producer.close(Duration.ofSeconds(5));
        // The consumer thread may still be inside a poll that outlives the join above.
        System.exit(0);
    }

    static void createTopic(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            long deadline = System.currentTimeMillis() + 120_000;
            // The brokers may still be registering; fewer than 3 fail the creation, so retry.
            for (;;) {
                try {
                    NewTopic t = new NewTopic(topic, PARTITIONS, (short) 3).configs(Map.of("min.insync.replicas", "2"));
                    admin.createTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
                    break;
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof TopicExistsException) break;
                    if (System.currentTimeMillis() > deadline) fail("creating " + topic + ": " + e.getCause());
                    sleep(1000);
                }
            }
            for (;;) {
                try {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
                    boolean ok = d.partitions().size() == PARTITIONS;
                    for (TopicPartitionInfo pi : d.partitions()) ok &= pi.leader() != null && pi.isr().size() >= 2;
                    if (ok) return;
                } catch (ExecutionException e) {
                    // Metadata not propagated to the broker asked yet.
                }
                if (System.currentTimeMillis() > deadline) fail(topic + " never got a leader and an ISR of 2 for every partition");
                sleep(200);
            }
        }
    }

    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        // Long enough for a controller failover and ISR changes while ZooKeeper itself recovers:
        // a send failing inside it would hide what the ensemble change did.
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "120000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return p;
    }

    static void produce(KafkaProducer<String, String> producer, String topic) {
        long seq = 0;
        while (producing) {
            final long s = seq++;
            String v = Long.toString(s);
            sent.incrementAndGet();
            try {
                producer.send(new ProducerRecord<>(topic, v, v), (md, e) -> {
                    if (e == null) {
                        synchronized (acked) {
                            acked.set((int) s);
                        }
                    } else {
                        countFailure(e);
                    }
                });
            } catch (Exception e) {
                // send() itself throws only when it blocked past max.block.ms (no metadata, full buffer).
                countFailure(e);
            }
            sleep(20);
        }
    }

    static void countFailure(Throwable e) {
        failed.incrementAndGet();
        failureKinds.computeIfAbsent(e.getClass().getSimpleName(), k -> new AtomicLong()).incrementAndGet();
    }

    static void consume(String bootstrap, String topic) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // A group of its own: a rerun on the same topic reads everything again.
        p.put(ConsumerConfig.GROUP_ID_CONFIG, "kafka-probe-" + topic + "-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    assigned = 0;
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    assigned = c.assignment().size();
                }
            });
            while (consuming) {
                try {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        long s = Long.parseLong(r.value());
                        long at = ((long) r.partition() << 48) | r.offset();
                        Long first = firstSeenAt.putIfAbsent(s, at);
                        if (first == null) {
                            synchronized (received) {
                                received.set((int) s);
                            }
                        } else if (first == at) {
                            redelivered.incrementAndGet();
                        } else {
                            duplicates.incrementAndGet();
                        }
                    }
                } catch (Exception e) {
                    consumerErrors.incrementAndGet();
                    sleep(200);
                }
            }
        }
    }

    /** Up to n acknowledged sequence numbers not read (yet). */
    static List<Long> missing(int n) {
        List<Long> out = new ArrayList<>();
        synchronized (acked) {
            synchronized (received) {
                for (int i = acked.nextSetBit(0); i >= 0 && out.size() < n; i = acked.nextSetBit(i + 1)) {
                    if (!received.get(i)) out.add((long) i);
                }
            }
        }
        return out;
    }

    static int card(BitSet b) {
        synchronized (b) {
            return b.cardinality();
        }
    }

    static void fail(String why) {
        System.out.println("{\"ready\":false,\"error\":\"" + why.replace("\\", "\\\\").replace("\"", "'") + "\"}");
        System.out.flush();
        System.exit(1);
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
