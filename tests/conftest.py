"""Session-wide services (Kafka, Beam's job server, a Flink session cluster): see tests/runner_services.py."""

from tests.runner_services import flink_session_cluster, shared_beam_services, shared_kafka  # noqa: F401
