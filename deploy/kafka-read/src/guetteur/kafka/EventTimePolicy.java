package guetteur.kafka;

import java.io.Serializable;
import java.util.Optional;
import org.apache.beam.sdk.io.kafka.KafkaRecord;
import org.apache.beam.sdk.io.kafka.TimestampPolicy;
import org.apache.beam.sdk.io.kafka.TimestampPolicyFactory;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.kafka.common.TopicPartition;
import org.joda.time.Duration;
import org.joda.time.Instant;

/**
 * Event time = the record's CreateTime; watermark = the newest CreateTime read minus a bounded
 * disorder, per partition.
 *
 * <p>Why not KafkaIO's own {@code withCreateTime}: once a reader has caught up with its partition
 * (backlog 0, which under a steady stream is most of the time), that policy moves the watermark to
 * the wall clock. That is right for live events, but a replayed month, or a stream that is behind,
 * carries CreateTimes in the past: every following record is then behind the watermark, its window
 * already closed. Here event time moves with the records only, so windows close as soon as a record
 * of a later time has been read, whatever the wall clock says.
 *
 * <p>An idle partition would hold event time still. With {@code idleAdvance} set, once no record has
 * come for that long and the reader has caught up, the watermark moves on with the wall clock from
 * the newest CreateTime (what a live source needs at night); never past the wall clock itself.
 * A CreateTime ahead of the wall clock (a producer's broken clock) never drags the watermark
 * into the future: the watermark is capped at now.
 */
final class EventTimePolicy extends TimestampPolicy<byte[], byte[]> {

  static final class Factory implements TimestampPolicyFactory<byte[], byte[]>, Serializable {
    private static final long serialVersionUID = 1L;
    private final long maxDisorderMs;
    private final long idleAdvanceMs;

    Factory(long maxDisorderMs, long idleAdvanceMs) {
      this.maxDisorderMs = maxDisorderMs;
      this.idleAdvanceMs = idleAdvanceMs;
    }

    @Override
    public TimestampPolicy<byte[], byte[]> createTimestampPolicy(
        TopicPartition tp, Optional<Instant> previousWatermark) {
      return new EventTimePolicy(
          Duration.millis(maxDisorderMs), Duration.millis(idleAdvanceMs), previousWatermark);
    }
  }

  private final Duration maxDisorder;
  private final Duration idleAdvance;
  private Instant newestEventTime = BoundedWindow.TIMESTAMP_MIN_VALUE;
  private Instant lastRecordWallTime = null;
  private Instant watermark;

  EventTimePolicy(Duration maxDisorder, Duration idleAdvance, Optional<Instant> previousWatermark) {
    this.maxDisorder = maxDisorder;
    this.idleAdvance = idleAdvance;
    // Resuming from a checkpoint: never go back behind what was already published.
    this.watermark = previousWatermark.orElse(BoundedWindow.TIMESTAMP_MIN_VALUE);
  }

  @Override
  public Instant getTimestampForRecord(PartitionContext ctx, KafkaRecord<byte[], byte[]> record) {
    Instant eventTime = new Instant(record.getTimestamp());
    if (eventTime.isAfter(newestEventTime)) {
      newestEventTime = eventTime;
    }
    lastRecordWallTime = Instant.now();
    return eventTime;
  }

  @Override
  public Instant getWatermark(PartitionContext ctx) {
    return watermarkAt(ctx.getMessageBacklog(), Instant.now());
  }

  Instant watermarkAt(long backlog, Instant now) {
    if (lastRecordWallTime == null) {
      return watermark; // nothing read yet (or only the checkpointed watermark)
    }
    Instant candidate = newestEventTime.minus(maxDisorder);
    if (idleAdvance.getMillis() > 0 && backlog == 0) {
      Duration idle = new Duration(lastRecordWallTime, now);
      if (idle.isLongerThan(idleAdvance)) {
        candidate = candidate.plus(idle.minus(idleAdvance));
      }
    }
    if (candidate.isAfter(now)) {
      candidate = now;
    }
    if (candidate.isAfter(watermark)) {
      watermark = candidate;
    }
    return watermark;
  }
}
