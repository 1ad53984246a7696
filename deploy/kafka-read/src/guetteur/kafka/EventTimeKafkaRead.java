package guetteur.kafka;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.io.kafka.KafkaIO;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.joda.time.Instant;

/**
 * KafkaIO's read, as a cross-language transform whose event time and watermark follow the records'
 * CreateTime ({@link EventTimePolicy}): (key, value) byte pairs, nullable both.
 *
 * <p>Registered with the expansion service through META-INF/services (deploy/local/fetch.sh builds
 * the jar). Guetteur's Python side calls it from transforms/kafka_io.py.
 */
public final class EventTimeKafkaRead implements ExternalTransformRegistrar {

  public static final String URN = "beam:transform:guetteur:kafka_read_event_time:v1";

  @Override
  public Map<String, Class<? extends ExternalTransformBuilder<?, ?, ?>>> knownBuilders() {
    Map<String, Class<? extends ExternalTransformBuilder<?, ?, ?>>> builders = new HashMap<>();
    builders.put(URN, Builder.class);
    return builders;
  }

  /** The payload's fields, set by name (snake_case in Python, setters here). */
  public static final class Configuration {
    private Map<String, String> consumerConfig;
    private List<String> topics;
    private Long maxDisorderMs;
    private Long idleAdvanceMs;
    private Long startReadTime;
    private Boolean commitOffsetInFinalize;

    public void setConsumerConfig(Map<String, String> consumerConfig) {
      this.consumerConfig = consumerConfig;
    }

    public void setTopics(List<String> topics) {
      this.topics = topics;
    }

    public void setMaxDisorderMs(Long maxDisorderMs) {
      this.maxDisorderMs = maxDisorderMs;
    }

    public void setIdleAdvanceMs(Long idleAdvanceMs) {
      this.idleAdvanceMs = idleAdvanceMs;
    }

    public void setStartReadTime(Long startReadTime) {
      this.startReadTime = startReadTime;
    }

    public void setCommitOffsetInFinalize(Boolean commitOffsetInFinalize) {
      this.commitOffsetInFinalize = commitOffsetInFinalize;
    }
  }

  public static final class Builder
      implements ExternalTransformBuilder<Configuration, PBegin, PCollection<KV<byte[], byte[]>>> {

    @Override
    public PTransform<PBegin, PCollection<KV<byte[], byte[]>>> buildExternal(Configuration config) {
      Map<String, Object> consumerConfig = new HashMap<>(config.consumerConfig);
      KafkaIO.Read<byte[], byte[]> read =
          KafkaIO.<byte[], byte[]>read()
              .withConsumerConfigUpdates(consumerConfig)
              .withTopics(config.topics)
              .withKeyDeserializerAndCoder(
                  ByteArrayDeserializer.class, NullableCoder.of(ByteArrayCoder.of()))
              .withValueDeserializerAndCoder(
                  ByteArrayDeserializer.class, NullableCoder.of(ByteArrayCoder.of()))
              .withTimestampPolicyFactory(
                  new EventTimePolicy.Factory(
                      config.maxDisorderMs == null ? 0L : config.maxDisorderMs,
                      config.idleAdvanceMs == null ? 0L : config.idleAdvanceMs));
      if (config.startReadTime != null) {
        read = read.withStartReadTime(Instant.ofEpochMilli(config.startReadTime));
      }
      if (Boolean.TRUE.equals(config.commitOffsetInFinalize)) {
        read = read.commitOffsetsInFinalize();
      }
      return read.withoutMetadata();
    }
  }
}
