"""Real services for the tests (S3, GCS, Kafka, a Ray cluster), started on 127.0.0.1 and stopped by PID."""
